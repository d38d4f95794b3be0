// `kiln check MODEL`: parse, verify, infer shapes, print the summary.
#include <cstdio>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Summary.h"

namespace kiln::driver {

int runCheck(const std::vector<std::string>& args) {
  ArgParser p("check MODEL [options]",
              "Parses and verifies a model (an op-level graph in protobuf text .pbtxt or binary .pb),\n"
              "infers every shape, and prints a summary: each node with its output shape and\n"
              "parameter count, then the total, trainable and non-trainable parameters.\n"
              "Exits 0 if the model is valid, 1 with every error found otherwise.");
  p.positional("MODEL", "The model file (.pbtxt or .pb)");
  p.flag("quiet", "Print nothing on success (only the exit status tells)");
  if (Status s = p.parse(args); !s) {
    std::fprintf(stderr, "%s\n", s.error().str().c_str());
    return 2;
  }
  if (p.helpRequested()) {
    std::fputs(p.helpText().c_str(), stdout);
    return 0;
  }
  auto g = loadModel(p.positionals()[0]);
  if (!g) {
    std::fprintf(stderr, "%s\n", g.error().str().c_str());
    return 1;
  }
  if (!p.has("quiet")) std::fputs(summarizeGraph(**g).c_str(), stdout);
  return 0;
}

}  // namespace kiln::driver
