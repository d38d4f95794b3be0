// Reading and writing graphs as protobuf text (.pbtxt) and binary (.pb), and the conversion
// between kiln.proto's Graph message and the in-memory Graph.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ir/Graph.h"
#include "ir/Support.h"

namespace kiln {

enum class GraphFormat { Text, Binary };

/// The format a path's extension implies: ".pb" is binary, anything else text.
GraphFormat formatForPath(std::string_view path);

/// Parses `data` (named `fileName` in diagnostics) and builds the in-memory graph. Checks only
/// what building needs (known ops, unique names, tensor names that resolve); run verify() next.
Expected<std::unique_ptr<Graph>> parseGraph(std::string_view data, GraphFormat format,
                                            const std::string& fileName);
/// Reads and parses a file.
Expected<std::unique_ptr<Graph>> readGraphFile(const std::string& path);

/// The graph as protobuf text; text -> graph -> text is stable.
std::string graphToText(const Graph& g);
/// The graph as binary protobuf.
std::string graphToBinary(const Graph& g);
/// Writes text or binary by the path's extension, atomically (temporary file, then rename).
Status writeGraphFile(const Graph& g, const std::string& path);

/// Reads a whole file; an error names the file and the reason.
Expected<std::string> readFileBytes(const std::string& path);
/// Writes a file atomically: a temporary file beside it, fsync, rename.
Status writeFileAtomic(const std::string& path, std::string_view data);

}  // namespace kiln
