// `kiln opt MODEL --mode infer|eval|train`: prints the graph the compiler builds for a mode, so
// people can see exactly what will run (for train: the whole training step).
#include <cstdio>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/training/TrainingGraph.h"
#include "ir/ProtoIO.h"

namespace kiln::driver {

int runOpt(const std::vector<std::string>& args) {
  ArgParser p("opt MODEL [--mode infer|eval|train] [-o FILE] [options]",
              "Builds the graph the compiler runs for a mode and prints it as protobuf text (the\n"
              "op-level format kiln check and kiln run read back):\n"
              "  infer  the prediction graph (batch norm uses moving statistics, dropout is off)\n"
              "  eval   prediction plus the targets input, the loss and the metrics\n"
              "  train  one training step: forward in training mode, loss and regularization,\n"
              "         gradients, clipping, optimizer updates, constraints, batch-norm moving\n"
              "         averages; its outputs are the new value of every piece of state\n"
              "A .pb output path writes binary protobuf.");
  p.positional("MODEL", "A model file (layer-level) or an op-level graph (.pbtxt or .pb)");
  p.option("mode", "infer|eval|train", "Which graph to build", "infer");
  p.option("output", "FILE", "Write here instead of to standard output");
  p.alias('o', "output");
  p.option("total-steps", "N", "Steps of the whole run, for one_cycle's T when the model leaves it unset", "0");
  if (Status s = p.parse(args); !s) {
    std::fprintf(stderr, "%s\n", s.error().str().c_str());
    return 2;
  }
  if (p.helpRequested()) {
    std::fputs(p.helpText().c_str(), stdout);
    return 0;
  }
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  std::string mode = p.get("mode");
  if (mode != "infer" && mode != "eval" && mode != "train")
    return fail(Error::msg("kiln opt: --mode must be infer, eval or train, found '" + mode + "'"));
  int64_t totalSteps = 0;
  try {
    totalSteps = std::stoll(p.get("total-steps"));
  } catch (const std::exception&) {
    return fail(Error::msg("kiln opt: --total-steps takes an integer"));
  }
  auto m = loadAnyModel(p.positionals()[0],
                        mode == "infer" ? frontend::Expansion::Inference : frontend::Expansion::Evaluation);
  if (!m) return fail(m.error());
  Graph& g = *m->model.graph;
  std::string header = "# " + mode + " graph of " + m->model.name + "\n";
  if (mode == "eval" && !m->layerLevel)
    return fail(Error::msg("kiln opt: --mode eval needs a layer-level model file (an op-level graph has no "
                           "training block to take the loss from); write the loss into the graph and use "
                           "--mode infer"));
  if (mode == "train") {
    if (!m->model.training)
      return fail(Error::msg(p.positionals()[0] + ": --mode train needs a model file with a training block "
                             "(loss, optimizer, ...)"));
    auto info = buildTrainingGraph(g, *m->model.training, {totalSteps});
    if (!info) return fail(info.error());
    header += "# " + std::to_string(g.nodes().size()) + " nodes, " + std::to_string(info->gradientNodes) +
              " of them gradients; " + std::to_string(info->trainable.size()) + " trainable parameters; " +
              std::to_string(info->state.size()) + " state tensors updated per step\n";
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
