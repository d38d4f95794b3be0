// Layer-level model files (kiln.proto's Model message) in protobuf text or binary: reading them
// with the source position of every field, and telling them apart from op-level graphs.
#pragma once

#include <google/protobuf/text_format.h>

#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ir/ProtoIO.h"
#include "ir/Support.h"
#include "ir/kiln.pb.h"

namespace kiln::frontend {

/// One step of a path to a field of a Model: a field name and, for repeated fields, the index.
struct FieldStep {
  std::string_view field;
  int index = -1;
};

/// Where the fields of a parsed model are in its file. Positions are unknown (line 0) for
/// binary files and for models built in code.
class ModelSource {
 public:
  /// A model built in code: `file` (may be empty) names it in diagnostics.
  explicit ModelSource(std::string file = "");
  using Tree = google::protobuf::TextFormat::ParseInfoTree;
  /// The positions recorded while parsing `file`.
  ModelSource(std::string file, std::shared_ptr<const Tree> tree);

  const std::string& file() const { return file_; }
  /// The position of the field at `path` from the Model message, e.g.
  /// {{"training"}, {"optimizer"}, {"momentum"}}. When that field was not written, the position
  /// of the nearest enclosing field that was (so "missing x" errors point at x's message). An
  /// empty path is the model as a whole: line 1 of a text file.
  SourceLoc at(std::span<const FieldStep> path) const;
  SourceLoc at(std::initializer_list<FieldStep> path) const {
    return at(std::span<const FieldStep>(path.begin(), path.size()));
  }
  /// An error at `path`.
  Error error(std::initializer_list<FieldStep> path, std::string message) const {
    return Error(Diagnostic{at(path), {}, {}, std::move(message)});
  }

 private:
  std::string file_;
  std::shared_ptr<const Tree> tree_;  // Shared: ParsedModel is copyable, the tree is not.
};

/// A model message and where its fields came from.
struct ParsedModel {
  proto::Model model;
  ModelSource source;
};

/// Whether `data` is a layer-level model rather than an op-level graph. Text: the top-level
/// fields decide (`layer` or `training` mean a model), so a model with a syntax error still
/// reads as a model and gets the model's errors. Binary: it parses as a Model with layers and
/// no fields a Model does not have.
bool isModelData(std::string_view data, GraphFormat format);

/// Parses a model file; syntax errors name the line, and inside a layer, the layer.
Expected<ParsedModel> parseModel(std::string_view data, GraphFormat format,
                                 const std::string& file);
Expected<ParsedModel> readModelFile(const std::string& path);

/// The model as protobuf text (for tests and tools that write model files).
std::string modelToText(const proto::Model& m);

}  // namespace kiln::frontend
