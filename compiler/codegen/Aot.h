// Ahead-of-time compilation: one or more graphs (predict; or train_step and evaluate) lowered into
// one LLVM module with their weights, optimized for a chosen target, and written as an ELF object
// plus a C/C++ header describing the entry points (runtime/KilnABI.h), their tensors and state.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/codegen/Target.h"
#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"

namespace kiln::codegen {

/// One entry point of the object: NAME_ENTRY, compiled from `graph` (verified).
struct AotFunction {
  std::string entry;  // KILN_ENTRY_PREDICT, KILN_ENTRY_TRAIN_STEP or KILN_ENTRY_EVALUATE
  const Graph* graph = nullptr;
  /// A training step that writes the new state into params (outputs named after a parameter).
  bool updatesState = false;
};

struct AotOptions {
  TargetChoice target;
  /// Write the state to DIR/NAME.safetensors for the wrapper to load at run time, instead of
  /// embedding it in the object's read-only data.
  bool externalWeights = false;
  /// Where the weights came from, for the header's comment ("checkpoint X", "initializers, seed
  /// 0").
  std::string weightsOrigin;
  /// The model file, for the header's comment.
  std::string source;
  /// Also write DIR/NAME.ll: the optimized LLVM IR the object is generated from.
  bool emitLLVM = false;
};

/// Seconds per stage. Scheduling and memory planning happen inside IR emission.
struct AotTimes {
  double irEmission = 0, optimization = 0, objectEmission = 0;
};

struct AotResult {
  std::string objectPath, headerPath, weightsPath;  // weightsPath: "" when embedded
  std::string irPath;                                // "" unless AotOptions::emitLLVM
  TargetDescription target;
  int64_t objectBytes = 0;
  /// State tensors and their total bytes.
  int64_t stateTensors = 0, stateBytes = 0;
  AotTimes times;
  /// Arena bytes of each function at batch 1, by entry.
  std::map<std::string, std::pair<int64_t, int64_t>> arenaStaticAndPerBatch;
};

/// Compiles `functions` into DIR/NAME.o and DIR/NAME.h (DIR is created if missing). `state`
/// holds the value of every parameter of every function, by name, with the graphs' dtypes and
/// shapes (the caller checks a checkpoint against the model: see checkState). `name` becomes a C
/// identifier (Lowering's cIdentifier).
Expected<AotResult> compileAot(const std::string& name, const std::vector<AotFunction>& functions,
                               const std::map<std::string, Tensor>& state, const AotOptions& opts,
                               const std::string& outDir);

/// The parameters of every function, in order of first appearance: train_step's list first in
/// train mode, so the state block is laid out as the training step sees it.
std::vector<const Node*> stateParameters(const std::vector<AotFunction>& functions);

/// Picks from `tensors` (a checkpoint's, read from `path`) the value of every parameter of
/// `functions`; extra tensors (e.g. optimizer slots for an inference object) are ignored. A
/// missing parameter, or one whose dtype or shape differs from the model's, is an error naming
/// the tensor, the checkpoint and both types.
Expected<std::map<std::string, Tensor>> checkState(const std::vector<AotFunction>& functions,
                                                   const std::map<std::string, Tensor>& tensors,
                                                   const std::string& path);

}  // namespace kiln::codegen
