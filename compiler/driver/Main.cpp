// The kiln command: dispatches to the subcommands.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "compiler/driver/Commands.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(const std::vector<std::string>&);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"check", kiln::driver::runCheck, "Verify a model and print its summary"},
    {"run", kiln::driver::runRun, "Run a model with the reference interpreter (.npy in and out)"},
    {"train", kiln::driver::runTrain, "Train a model on real data with checkpoints (compiled steps, progress, resume)"},
    {"build", kiln::driver::runBuild, "Build a standalone native training program (no Kiln needed to run it)"},
    {"evaluate", kiln::driver::runEvaluate, "Evaluate a checkpoint on the validation and test sets"},
    {"predict", kiln::driver::runPredict, "Predict with a trained checkpoint (.npy in and out; Monte Carlo dropout)"},
    {"plot", kiln::driver::runPlot, "Draw learning curves and gradient statistics from a metrics file as SVG"},
    {"opt", kiln::driver::runOpt, "Print the graph built for inference, evaluation or a training step"},
    {"bench", kiln::driver::runBench, "Time a model's predictions: interpreter, unfused, fused, fused + BN folding"},
    {"compile", kiln::driver::runCompile, "Compile a model ahead of time to an object file and a C/C++ header"},
    {"ops", kiln::driver::runOps, "List the IR's ops with their operands and attributes"},
    {"dot", kiln::driver::runDot, "Write a model's graph as Graphviz DOT, clustered by layer"},
};

void printUsage(FILE* to) {
  std::fprintf(to,
               "Usage: kiln COMMAND [arguments]\n\n"
               "Kiln compiles neural-network models into small, fast native programs.\n\n"
               "Commands:\n");
  for (const Command& c : kCommands) std::fprintf(to, "  %-10s%s\n", c.name, c.summary);
  std::fprintf(to, "\nRun 'kiln COMMAND --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    printUsage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    printUsage(stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("kiln 0.1\n");
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const Command& c : kCommands)
    if (cmd == c.name) return c.fn(args);
  std::fprintf(stderr, "kiln: unknown command '%s'\n\n", cmd.c_str());
  printUsage(stderr);
  return 2;
}
