// What the `main` that `kiln build` generates hands to the runner: the embedded model and the
// description of the AOT-compiled functions linked into the program (from the object's header).
// Only standard types and runtime/KilnABI.h here: the generated main.cpp includes this file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/KilnABI.h"

namespace kiln::runner {

/// One parameter of a compiled function, as the object's header lists it.
struct BuiltTensor {
  std::string name;
  std::string dtype;  // "float32", ...
  std::vector<int64_t> shape;
};

struct BuiltFunction {
  kiln_entry_fn entry = nullptr;
  kiln_arena_size_fn arenaSize = nullptr;
  std::vector<BuiltTensor> params;    // params[i] of a call, in order
  std::vector<std::string> returned;  // the outputs array's graph outputs, in order
  std::vector<std::string> messages;  // status s -> messages[s - 1]
};

struct BuiltModel {
  std::string modelFile;  // the model file kiln build read (for messages)
  std::string modelData;  // its bytes
  bool binary = false;    // a .pb file
  /// The graph-changing flags kiln build was given ("" and -1: none).
  std::string freeze;
  double learningRate = -1;
  BuiltFunction trainStep, evaluate;
};

/// The program's main: `kiln train`'s flags (those that would change the compiled graph are
/// refused), the step and evaluation graphs rebuilt from the embedded model and checked against
/// the compiled functions' parameters, training on the linked-in functions.
int runBuiltProgram(int argc, char** argv, const BuiltModel& m);

}  // namespace kiln::runner
