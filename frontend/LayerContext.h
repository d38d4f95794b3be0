// Internal to the frontend: what expanding one layer needs (the builder, the layer's name, where
// its fields are) and the pieces shared by the layer kinds (activations, initializers).
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/ModelFile.h"
#include "ir/Builder.h"

namespace kiln::frontend {

/// One layer being expanded. Errors go to `diags`, at the layer's field they are about, and
/// read "layer 'hidden1' (dense): units must be positive, found 0".
struct LayerContext {
  const ModelSource& src;
  std::vector<Diagnostic>& diags;
  Builder& b;
  int index;          // In the model's layer list.
  std::string name;   // Resolved (user's or default).
  std::string field;  // The layer's kind as its model-file field: dense, batch_norm, ...
  DType dtype;        // The model's float type; parameters share it.

  /// The position of layer[index].<field>.<sub...> (or the nearest written enclosing field).
  SourceLoc at(std::initializer_list<std::string_view> sub = {}) const;
  void fail(std::initializer_list<std::string_view> sub, const std::string& message);
  std::string title() const { return "layer '" + name + "' (" + field + ")"; }

  /// A parameter `<layer>/<suffix>` with the model's dtype and `attrs` (init first).
  Value* parameter(const std::string& suffix, Shape shape, Builder::Attrs attrs,
                   bool trainable = true);
};

/// An activation with every parameter resolved (defaults of chapter11.md filled in).
struct ActivationSpec {
  std::string kind = "linear";
  double alpha = 0;                  // leaky_relu 0.01, elu 1, prelu (initial) 0.25
  double lower = 1.0 / 8;            // rrelu
  double upper = 1.0 / 3;            // rrelu
  std::string approximate = "none";  // gelu
  double beta = 1;                   // swish (initial value when learnable)
  bool learnableBeta = false;        // swish
  int64_t axis = -1;                 // softmax, log_softmax
};

/// Checks an activation (its kind, and the parameters that kind takes) and fills in defaults.
/// `fromDense`: the activation is a dense layer's `activation` string (errors point at it).
std::optional<ActivationSpec> resolveActivation(LayerContext& c, const proto::ActivationLayer& a,
                                                bool fromDense);

/// Applies `a` to `x` as nodes `<layer>/<kind>` (no node for linear), with parameters
/// `<layer>/alpha` (prelu) or `<layer>/beta_swish` (learnable swish). Null after an error.
Value* applyActivation(LayerContext& c, Value* x, const ActivationSpec& a,
                       std::initializer_list<std::string_view> where);

/// The init attributes of a parameter of `shape` from `init` (the model's initializer at
/// layer field `field`), or `fallback` (e.g. "glorot_uniform") when `given` is false. Checks
/// the names (with suggestions), that each field applies to the kind, and value counts.
std::optional<Builder::Attrs> initializerAttrs(LayerContext& c, std::string_view field,
                                               const proto::Initializer& init, bool given,
                                               std::string_view fallback, const Shape& shape);

/// A dimension list as Keras prints it: (None, 300).
std::string kerasShape(const Shape& s);
/// Shortest text that reads back as the same double.
std::string numStr(double v);

}  // namespace kiln::frontend
