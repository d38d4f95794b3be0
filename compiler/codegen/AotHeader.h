// The C/C++ header kiln compile writes beside an object: entry-point declarations, tensor and
// state descriptions as constants, the arena formula, and a small RAII C++ wrapper class.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/codegen/Aot.h"

namespace kiln::codegen {

/// What the header says about one entry point.
struct HeaderFunction {
  std::string entry, symbol, arenaSizeSymbol;
  const Graph* graph = nullptr;
  bool updatesState = false;
  /// The graph outputs the entry point returns through `outputs`, in order.
  std::vector<const GraphOutput*> returned;
  /// For each parameter of the graph (params[i]), its index in the state list.
  std::vector<int> paramIndex;
  int64_t arenaStatic = 0, arenaPerBatch = 0;
  std::vector<std::string> checkMessages;
};

struct HeaderSpec {
  std::string name;  // the C identifier
  std::vector<HeaderFunction> functions;
  std::vector<const Node*> state;
  bool externalWeights = false;
  std::string source, weightsOrigin;
  TargetDescription target;
};

/// The largest rank the header's tensor descriptions hold.
inline constexpr int kHeaderMaxRank = 8;

/// The header's text. Requires every tensor's rank <= kHeaderMaxRank.
std::string generateHeader(const HeaderSpec& spec);

}  // namespace kiln::codegen
