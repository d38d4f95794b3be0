// `kiln run MODEL --input NAME=FILE.npy ...`: runs the reference interpreter and writes each
// output as .npy.
#include <cstdio>
#include <filesystem>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/interpreter/Interpreter.h"

namespace kiln::driver {

int runRun(const std::vector<std::string>& args) {
  ArgParser p("run MODEL --input NAME=FILE.npy ... [options]",
              "Runs a model with the reference interpreter and writes each output as a NumPy\n"
              ".npy file named after the output ('/' in names becomes '_'). Parameters take\n"
              "their initializers' values, drawn from --seed.");
  p.positional("MODEL", "The model file (.pbtxt or .pb)");
  p.repeated("input", "NAME=FILE.npy", "The value of input NAME; every graph input needs one");
  p.option("output-dir", "DIR", "Where to write the outputs", ".");
  p.option("seed", "N", "Seed for initializers and random ops (default: a layer-level model's "
           "training.seed, else 0)");
  p.flag("evaluation", "Run a layer-level model's evaluation graph (inputs: x and labels; outputs: "
         "logits, loss and the metrics)");
  p.option("precision", "float32|float64", "Compute in this precision", "float32");
  p.option("step", "N", "The step that selects the noise of dropout/rrelu nodes with training: true",
           "0");
  if (auto exit = p.parseOrExit(args)) return *exit;
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "%s\n", e.str().c_str());
    return 1;
  };
  RunOptions opts;
  try {
    opts.seed = p.has("seed") ? std::stoull(p.get("seed")) : 0;
    opts.step = std::stoll(p.get("step"));
  } catch (const std::exception&) {
    return fail(Error::msg("kiln run: --seed and --step take non-negative integers"));
  }
  std::string precision = p.get("precision");
  if (precision != "float32" && precision != "float64")
    return fail(Error::msg("kiln run: --precision must be float32 or float64, found '" + precision + "'"));
  opts.precision = precision == "float64" ? Precision::Float64 : Precision::Float32;

  auto loaded = loadAnyModel(p.positionals()[0], p.has("evaluation")
                                                     ? frontend::Expansion::Evaluation
                                                     : frontend::Expansion::Inference);
  if (!loaded) return fail(loaded.error());
  if (!p.has("seed") && loaded->model.training) opts.seed = loaded->model.training->seed;
  const Graph& graph = *loaded->model.graph;
  std::map<std::string, Tensor> inputs;
  for (const std::string& spec : p.getAll("input")) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(Error::msg("kiln run: --input takes NAME=FILE.npy, found '" + spec + "'"));
    std::string name = spec.substr(0, eq), file = spec.substr(eq + 1);
    Node* in = graph.findNode(name);
    if (!in || in->op() != OpKind::Input) {
      std::string names;
      for (Node* n : graph.inputs()) names += (names.empty() ? "" : ", ") + n->name();
      return fail(Error::msg("kiln run: the model has no input '" + name + "' (its inputs: " + names + ")"));
    }
    auto t = readTensorNpy(file);
    if (!t) return fail(t.error());
    inputs[name] = std::move(*t);
  }
  Interpreter interp(graph);
  if (Status s = interp.initializeParameters(opts.seed); !s) return fail(s.error());
  auto outputs = interp.run(inputs, opts);
  if (!outputs) return fail(outputs.error());
  std::filesystem::path dir(p.get("output-dir"));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Error::msg("kiln run: cannot create " + dir.string() + ": " + ec.message()));
  for (const auto& [name, t] : *outputs) {
    std::string file = name;
    for (char& c : file)
      if (c == '/' || c == ':') c = '_';
    std::string path = (dir / (file + ".npy")).string();
    if (Status s = writeTensorNpy(t, path); !s) return fail(s.error());
    std::printf("%s: %s -> %s\n", name.c_str(), t.type().str().c_str(), path.c_str());
  }
  return 0;
}

}  // namespace kiln::driver
