// Expanding a layer-level model into the op-level graph: each layer becomes its parameters
// (named `<layer>/kernel`, `<layer>/gamma`, ... as chapter11.md says) and nodes, built and typed
// through ir/Builder, in inference form; the evaluation form adds the targets, the loss and the
// metrics.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frontend/ModelFile.h"
#include "frontend/TrainingSpec.h"
#include "ir/Graph.h"

namespace kiln::frontend {

enum class Expansion {
  /// Input `x` (or the model's input name) -> output `logits` (the last layer's output), with
  /// batch_norm, dropout, alpha_dropout and rrelu nodes in inference mode (training: false).
  Inference,
  /// Inference plus the targets input (`labels`: int64 [batch] for sparse softmax
  /// cross-entropy, the logits' type for binary cross-entropy and MSE; none when the targets
  /// are the model's own input) and the outputs `loss` and each metric (`accuracy`). The loss
  /// is the data loss: kernel l1/l2 terms are on the kernels' attributes for training to add.
  Evaluation,
};

/// What one layer became.
struct LayerInfo {
  std::string name;      // "hidden1", "batch_normalization_1"
  std::string kind;      // The model file's field: dense, batch_norm, activation, ...
  std::string typeName;  // Keras's class name, for summaries: Dense, BatchNormalization, ...
  SourceLoc loc;
  Value* output = nullptr;
  std::vector<Node*> parameters;  // Its parameter nodes, in creation order.
  std::vector<Node*> nodes;       // Its other nodes (none for a linear activation).

  /// Elements of its parameters: all, or only the trainable ones.
  int64_t paramCount() const;
  int64_t trainableParamCount() const;
};

/// A model expanded into a verified graph.
struct ExpandedModel {
  std::string name;
  std::unique_ptr<Graph> graph;
  Node* input = nullptr;
  std::vector<LayerInfo> layers;
  /// The validated training spec; absent when the model has no `training` block.
  std::optional<TrainingSpec> training;
};

/// Validates and expands `m`. Errors name the file, the line and the layer or field:
/// unknown names (with a suggestion), values out of range, and layers whose input shape does
/// not fit (e.g. a batch_norm axis out of range, a reshape to a different element count). The
/// training spec is validated too, and whether the loss fits the last layer's output, in both
/// modes; Evaluation requires a training block (for its loss).
Expected<ExpandedModel> expandModel(const ParsedModel& m, Expansion mode = Expansion::Inference);

/// readModelFile() then expandModel().
Expected<ExpandedModel> loadModelFile(const std::string& path,
                                      Expansion mode = Expansion::Inference);

/// The default name of the n-th (from 1) unnamed layer of a kind: dense_1,
/// batch_normalization_2, ... (Keras's names).
std::string defaultLayerName(const proto::Layer& layer, int n);

}  // namespace kiln::frontend
