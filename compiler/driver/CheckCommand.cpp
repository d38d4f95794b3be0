// `kiln check MODEL`: parse, verify, infer shapes, print the summary.
#include <cstdio>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Summary.h"
#include "ir/ProtoIO.h"

namespace kiln::driver {

int runCheck(const std::vector<std::string>& args) {
  ArgParser p("check MODEL [options]",
              "Parses and verifies a model and prints a summary. A layer-level model file (layers\n"
              "and a training spec) is validated and expanded into an op-level graph, and the\n"
              "summary lists each layer with its output shape and parameter count, then the\n"
              "training spec with every default filled in; an op-level graph's summary lists each\n"
              "node. Both end with the total, trainable and non-trainable parameters.\n"
              "Exits 0 if the model is valid, 1 with every error found otherwise.");
  p.positional("MODEL", "The model file: a layer-level model or an op-level graph (.pbtxt or .pb)");
  p.flag("quiet", "Print nothing on success (only the exit status tells)");
  p.flag("ops", "For a layer-level model, print the op-level summary of its expansion instead");
  p.flag("evaluation", "Expand a layer-level model with its targets, loss and metrics");
  p.option("emit-graph", "FILE", "Also write the op-level graph (.pbtxt text, .pb binary)");
  if (auto exit = p.parseOrExit(args)) return *exit;
  auto m = loadAnyModel(p.positionals()[0], p.has("evaluation") ? frontend::Expansion::Evaluation
                                                                 : frontend::Expansion::Inference);
  if (!m) {
    std::fprintf(stderr, "%s\n", m.error().str().c_str());
    return 1;
  }
  const frontend::ExpandedModel& model = m->model;
  if (p.has("emit-graph")) {
    if (Status s = writeGraphFile(*model.graph, p.get("emit-graph")); !s) {
      std::fprintf(stderr, "%s\n", s.error().str().c_str());
      return 1;
    }
  }
  if (p.has("quiet")) return 0;
  if (!m->layerLevel || p.has("ops")) {
    std::fputs(summarizeGraph(*model.graph).c_str(), stdout);
    return 0;
  }
  std::fputs(summarizeModel(model).c_str(), stdout);
  if (model.training) std::fputs(model.training->describe().c_str(), stdout);
  return 0;
}

}  // namespace kiln::driver
