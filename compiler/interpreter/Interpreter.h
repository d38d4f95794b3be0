// The reference interpreter: executes any verified graph on the CPU, in float32 or (for
// gradient checks) float64. It is the oracle that compiled code is tested against, so it is
// written for clarity and exactness first.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "compiler/interpreter/Tensor.h"
#include "ir/Graph.h"

namespace kiln {

enum class Precision { Float32, Float64 };

struct RunOptions {
  /// Float64 computes every float32 value in float64 (inputs and parameters are widened).
  Precision precision = Precision::Float32;
  /// Seed of the run's random numbers (dropout, rrelu); with `step`, it fixes them all.
  uint64_t seed = 0;
  int64_t step = 0;
};

class Interpreter {
 public:
  /// `g` must be verified and outlive the interpreter.
  explicit Interpreter(const Graph& g);

  /// Gives every parameter its initializer's value, drawn from `seed` (the stream of each
  /// parameter is its name, so adding a parameter does not change the others).
  Status initializeParameters(uint64_t seed);
  /// Sets one parameter; its shape and dtype must match the graph's.
  Status setParameter(const std::string& name, const Tensor& value);
  /// The current value of a parameter, or null.
  const Tensor* parameter(const std::string& name) const;
  const std::map<std::string, Tensor>& parameters() const { return params_; }
  /// Sets every parameter that has a same-named entry in `values` (a training step's outputs
  /// carry each piece of state's new value under its name), converting to its dtype.
  /// Returns how many were set.
  int updateParameters(const std::map<std::string, Tensor>& values);

  /// Runs the graph on `inputs` (by input name; every input is required) and returns the graph
  /// outputs by output name. Input dtypes and shapes must match (the batch dimension binds
  /// to the first input's size and must agree everywhere).
  Expected<std::map<std::string, Tensor>> run(const std::map<std::string, Tensor>& inputs,
                                               const RunOptions& opts = {});
  /// Like run(), but returns every value of the graph by tensor name (for debugging and tests).
  Expected<std::map<std::string, Tensor>> runAll(const std::map<std::string, Tensor>& inputs,
                                                  const RunOptions& opts = {});

 private:
  Expected<std::map<const Value*, Tensor>> execute(const std::map<std::string, Tensor>& inputs,
                                                    const RunOptions& opts);
  const Graph& graph_;
  std::map<std::string, Tensor> params_;
};

}  // namespace kiln
