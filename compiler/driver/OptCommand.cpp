// `kiln opt MODEL --mode infer|eval|train [--passes=...]`: prints the graph the compiler builds
// for a mode, optionally after graph passes, so people can see exactly what will run (for
// train: the whole training step).
#include <cstdio>
#include <sstream>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/passes/Pass.h"
#include "compiler/passes/Prepare.h"
#include "compiler/training/TrainingGraph.h"
#include "ir/ProtoIO.h"

namespace kiln::driver {

namespace {

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string listPasses() {
  std::string out =
      "Passes (--passes=a,b,c runs them in order; 'default' is the mode's pipeline):\n";
  for (const passes::PassInfo& p : passes::passRegistry())
    out += "  " + std::string(p.name) + std::string(18 - std::min<size_t>(17, p.name.size()), ' ') +
           std::string(p.summary) + "\n";
  return out;
}

}  // namespace

int runOpt(const std::vector<std::string>& args) {
  ArgParser p("opt MODEL [--mode infer|eval|train] [--passes=a,b,c] [-o FILE] [options]",
              "Builds the graph the compiler runs for a mode and prints it as protobuf text (the\n"
              "op-level format kiln check and kiln run read back):\n"
              "  infer  the prediction graph (batch norm uses moving statistics, dropout is off)\n"
              "  eval   prediction plus the targets input, the loss and the metrics\n"
              "  train  one training step: forward in training mode, loss and regularization,\n"
              "         gradients, clipping, optimizer updates, constraints, batch-norm moving\n"
              "         averages; its outputs are the new value of every piece of state\n"
              "--passes runs graph passes on it first ('default': the mode's pipeline: clean-ups,\n"
              "plus fold-batch-norm for infer and eval; insert-clipping and clean-ups for train).\n"
              "A .pb output path writes binary protobuf.");
  p.optionalPositional("MODEL", "A model file (layer-level) or an op-level graph (.pbtxt or .pb)");
  p.option("mode", "infer|eval|train", "Which graph to build", "infer");
  p.option("output", "FILE", "Write here instead of to standard output");
  p.alias('o', "output");
  p.option("total-steps", "N",
           "Steps of the whole run, for one_cycle's T when the model leaves it unset", "0");
  p.option("passes", "a,b,c", "Graph passes to run, in order, or 'default'");
  p.repeated("disable-pass", "NAME", "Skip this pass wherever the pipeline runs it");
  p.flag("print-after-all", "Print the graph to stderr after every pass that changed it");
  p.flag("verify-each", "Verify the graph after every pass (on in debug builds)");
  p.option("freeze", "REGEX",
           "prune-frozen: freeze the parameters whose name matches (train mode)");
  p.flag("list-passes", "List the registered passes and exit");
  p.option(
      "prepare-output", "FILE",
      "infer: move parameter-only work (folded weights) into a prepare graph written here, run "
      "once at load time; the printed graph reads its outputs as parameters");
  if (auto exit = p.parseOrExit(args)) return *exit;
  if (p.has("list-passes")) {
    std::fputs(listPasses().c_str(), stdout);
    return 0;
  }
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  if (p.positionals().empty()) {
    std::fprintf(stderr, "error: kiln opt: missing MODEL (usage: kiln %s)\n",
                 "opt MODEL [--mode infer|eval|train] [--passes=a,b,c] [-o FILE] [options]");
    return 2;
  }
  std::string mode = p.get("mode");
  if (mode != "infer" && mode != "eval" && mode != "train")
    return fail(Error::msg("kiln opt: --mode must be infer, eval or train, found '" + mode + "'"));
  int64_t totalSteps = 0;
  try {
    totalSteps = std::stoll(p.get("total-steps"));
  } catch (const std::exception&) {
    return fail(Error::msg("kiln opt: --total-steps takes an integer"));
  }

  // The pass pipeline (checked before loading, so a typo fails fast).
  passes::PassManagerOptions pmo;
  if (p.has("verify-each")) pmo.verifyEach = true;
  if (p.has("print-after-all")) pmo.printAfterAll = stderr;
  for (const std::string& d : p.getAll("disable-pass")) pmo.disabled.insert(d);
  passes::PassManager pm(pmo);
  if (Status s = pm.checkDisabled(); !s) return fail(s.error());
  std::vector<std::string> names = splitList(p.get("passes"));
  const bool defaultPipeline = names.size() == 1 && names[0] == "default";
  bool wantsClipping = defaultPipeline && mode == "train";
  if (defaultPipeline) {
    if (mode == "train") {
      pm.add(passes::createInsertClipping());
      passes::buildTrainingPipeline(pm);
    } else {
      // Evaluation runs batch norm and dropout in inference form too, so it folds the same way.
      passes::buildInferencePipeline(pm);
    }
  } else {
    for (const std::string& n : names) {
      if (n == "prune-frozen") {
        // Freezing decides what the step graph contains, so it runs before the step is built.
        if (!p.has("freeze"))
          return fail(Error::msg("kiln opt: pass 'prune-frozen' needs --freeze REGEX"));
        continue;
      }
      if (Status s = pm.add(n); !s) return fail(s.error());
      wantsClipping |= n == "insert-clipping";
    }
  }
  const bool freezing = p.has("freeze");
  if (freezing && mode != "train")
    return fail(Error::msg(
        "kiln opt: --freeze applies to --mode train (it decides which parameters get no update)"));

  auto m = loadAnyModel(p.positionals()[0], mode == "infer" ? frontend::Expansion::Inference
                                                            : frontend::Expansion::Evaluation);
  if (!m) return fail(m.error());
  Graph& g = *m->model.graph;
  std::string header = "# " + mode + " graph of " + m->model.name + "\n";
  if (mode == "eval" && !m->layerLevel)
    return fail(
        Error::msg("kiln opt: --mode eval needs a layer-level model file (an op-level graph has no "
                   "training block to take the loss from); write the loss into the graph and use "
                   "--mode infer"));
  passes::PassContext ctx;
  TrainingGraphInfo info;
  if (mode == "train") {
    if (!m->model.training)
      return fail(Error::msg(p.positionals()[0] +
                             ": --mode train needs a model file with a training block "
                             "(loss, optimizer, ...)"));
    if (freezing && !pmo.disabled.count("prune-frozen")) {
      ctx.freezeRegex = p.get("freeze");
      passes::PassManager freeze(pmo);
      freeze.add(passes::createPruneFrozen());
      if (auto r = freeze.run(g, ctx); !r) return fail(r.error());
    }
    TrainingGraphOptions tgo{totalSteps};
    // When a pipeline inserts the clipping, the builder must not clip a second time.
    tgo.clipGradients = !wantsClipping;
    auto built = buildTrainingGraph(g, *m->model.training, tgo);
    if (!built) return fail(built.error());
    info = *built;
    ctx.clipping = &m->model.training->clipping;
    ctx.gradients = &info.gradients;
    header += "# " + std::to_string(g.nodes().size()) + " nodes, " +
              std::to_string(info.gradientNodes) + " of them gradients; " +
              std::to_string(info.trainable.size()) + " trainable parameters; " +
              std::to_string(info.state.size()) + " state tensors updated per step\n";
  }
  if (!names.empty()) {
    size_t before = g.nodes().size();
    auto r = pm.run(g, ctx);
    if (!r) return fail(r.error());
    header += "# passes " + p.get("passes") + ": " + std::to_string(before) + " -> " +
              std::to_string(g.nodes().size()) + " nodes\n";
  }
  if (p.has("prepare-output")) {
    if (mode != "infer")
      return fail(
          Error::msg("kiln opt: --prepare-output applies to --mode infer (training updates its "
                     "parameters every step, so nothing can be computed once)"));
    auto prepare = passes::hoistParameterMath(g);
    if (!prepare) return fail(prepare.error());
    if (Status s = writeGraphFile(**prepare, p.get("prepare-output")); !s) return fail(s.error());
    header += "# parameter-only work moved to " + p.get("prepare-output") + " (" +
              std::to_string((*prepare)->nodes().size()) +
              " nodes, run once at load): " + std::to_string(g.nodes().size()) +
              " nodes per prediction\n";
  }
  std::string text = header + graphToText(g);
  if (!p.has("output")) {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  std::string out = p.get("output");
  Status s = formatForPath(out) == GraphFormat::Binary ? writeFileAtomic(out, graphToBinary(g))
                                                       : writeFileAtomic(out, text);
  return s ? 0 : fail(s.error());
}

}  // namespace kiln::driver
