// Layer-level model -> op-level graph: names, the layer kinds, and the evaluation outputs.
#include "frontend/Expand.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "frontend/LayerContext.h"
#include "frontend/Names.h"
#include "ir/ShapeInference.h"
#include "ir/Verifier.h"

namespace kiln::frontend {

int64_t LayerInfo::paramCount() const {
  int64_t n = 0;
  for (Node* p : parameters) n += numElements(p->result()->type().shape);
  return n;
}

int64_t LayerInfo::trainableParamCount() const {
  int64_t n = 0;
  for (Node* p : parameters)
    if (p->b("trainable")) n += numElements(p->result()->type().shape);
  return n;
}

namespace {

struct KindNames {
  std::string_view field, keras, type;
};
// Each layer kind: its model-file field, Keras's default-name stem and Keras's class name.
constexpr KindNames kKinds[] = {
    {"dense", "dense", "Dense"},
    {"batch_norm", "batch_normalization", "BatchNormalization"},
    {"activation", "activation", "Activation"},
    {"dropout", "dropout", "Dropout"},
    {"alpha_dropout", "alpha_dropout", "AlphaDropout"},
    {"flatten", "flatten", "Flatten"},
    {"reshape", "reshape", "Reshape"},
};

const KindNames* kindOf(const proto::Layer& l) {
  switch (l.kind_case()) {
    case proto::Layer::kDense: return &kKinds[0];
    case proto::Layer::kBatchNorm: return &kKinds[1];
    case proto::Layer::kActivation: return &kKinds[2];
    case proto::Layer::kDropout: return &kKinds[3];
    case proto::Layer::kAlphaDropout: return &kKinds[4];
    case proto::Layer::kFlatten: return &kKinds[5];
    case proto::Layer::kReshape: return &kKinds[6];
    case proto::Layer::KIND_NOT_SET: break;
  }
  return nullptr;
}

// Why a user's name for a layer (or the input) cannot be used, or "".
std::string badName(const char* what, const std::string& name) {
  for (char ch : name)
    if (ch == '/' || ch == ':' || std::isspace(static_cast<unsigned char>(ch)))
      return std::string(what) + " name '" + name +
             "' must not contain '/', ':' or spaces "
             "(parameters are named '<layer>/kernel', tensors 'node:index')";
  return "";
}

Value* expandDense(LayerContext& c, Value* x, const proto::DenseLayer& d) {
  const Shape& in = x->type().shape;
  if (!d.has_units()) {
    c.fail({}, "units is required");
    return nullptr;
  }
  if (d.units() <= 0) {
    c.fail({"units"}, "units must be positive, found " + std::to_string(d.units()));
    return nullptr;
  }
  if (in.size() != 2 || in[1] == kBatch) {
    c.fail({}, "dense needs a (None, features) input, found " + kerasShape(in) +
                   (in.size() > 2 ? "; put a flatten layer before it" : ""));
    return nullptr;
  }
  bool ok = true;
  // `sub` is a field of `field` (kernel_regularizer's l1) or empty (max_norm itself).
  auto check = [&](bool given, std::string_view field, std::string_view sub, double v, bool inRange,
                   const char* rule) {
    if (!given) return false;
    if (std::isfinite(v) && inRange) return true;
    std::string what =
        sub.empty() ? std::string(field) : std::string(field) + "." + std::string(sub);
    if (sub.empty())
      c.fail({field}, what + " must be " + rule + ", found " + numStr(v));
    else
      c.fail({field, sub}, what + " must be " + rule + ", found " + numStr(v));
    ok = false;
    return false;
  };
  std::optional<ActivationSpec> act = [&] {
    proto::ActivationLayer a;
    a.set_kind(d.activation());
    return resolveActivation(c, a, /*fromDense=*/true);
  }();
  Shape kshape = {in[1], d.units()};
  std::optional<Builder::Attrs> kernelAttrs =
      initializerAttrs(c, "kernel_initializer", d.kernel_initializer(), d.has_kernel_initializer(),
                       "glorot_uniform", kshape);
  std::optional<Builder::Attrs> biasAttrs = initializerAttrs(
      c, "bias_initializer", d.bias_initializer(), d.has_bias_initializer(), "zeros", {d.units()});
  bool useBias = !d.has_use_bias() || d.use_bias();
  if (!useBias && d.has_bias_initializer()) {
    c.fail({"bias_initializer"}, "bias_initializer given but use_bias is false");
    ok = false;
  }
  if (kernelAttrs) {
    const proto::Regularizer& r = d.kernel_regularizer();
    if (check(r.has_l1(), "kernel_regularizer", "l1", r.l1(), r.l1() >= 0, "at least 0") &&
        r.l1() > 0)
      kernelAttrs->push_back({"l1", r.l1()});
    if (check(r.has_l2(), "kernel_regularizer", "l2", r.l2(), r.l2() >= 0, "at least 0") &&
        r.l2() > 0)
      kernelAttrs->push_back({"l2", r.l2()});
    if (check(d.has_max_norm(), "max_norm", "", d.max_norm(), d.max_norm() > 0, "positive"))
      kernelAttrs->push_back({"max_norm", d.max_norm()});
  }
  if (!ok || !act || !kernelAttrs || !biasAttrs) return nullptr;

  Builder& b = c.b;
  b.setPrefix(c.name + "/");
  Value* kernel = c.parameter("kernel", kshape, std::move(*kernelAttrs));
  Value* y = b.op(OpKind::MatMul, {x, kernel}, {}, "matmul");
  if (useBias) {
    Value* bias = c.parameter("bias", {d.units()}, std::move(*biasAttrs));
    y = b.op(OpKind::Add, {y, bias}, {}, "bias_add");
  }
  return applyActivation(c, y, *act, {"activation"});
}

Value* expandBatchNorm(LayerContext& c, Value* x, const proto::BatchNormLayer& p) {
  const Shape& in = x->type().shape;
  bool ok = true;
  double momentum = 0.99, epsilon = 1e-3;
  if (p.has_momentum()) {
    if (std::isfinite(p.momentum()) && p.momentum() >= 0 && p.momentum() < 1)
      momentum = p.momentum();
    else
      ok = false, c.fail({"momentum"}, "momentum must be in [0, 1), found " + numStr(p.momentum()));
  }
  if (p.has_epsilon()) {
    if (std::isfinite(p.epsilon()) && p.epsilon() > 0)
      epsilon = p.epsilon();
    else
      ok = false, c.fail({"epsilon"}, "epsilon must be positive, found " + numStr(p.epsilon()));
  }
  int64_t axis = p.has_axis() ? p.axis() : -1;
  int64_t rank = static_cast<int64_t>(in.size());
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    c.fail({"axis"}, "axis " + std::to_string(axis) + " is out of range for the input " +
                         kerasShape(in) + " (rank " + std::to_string(rank) + ")");
    return nullptr;
  }
  if (in[a] == kBatch) {
    c.fail({"axis"}, "axis " + std::to_string(axis) + " is the batch axis of the input " +
                         kerasShape(in) + "; batch norm normalizes a feature axis");
    return nullptr;
  }
  if (!ok) return nullptr;
  int64_t n = in[a];
  Builder& b = c.b;
  b.setPrefix(c.name + "/");
  std::vector<double> ones(static_cast<size_t>(n), 1.0), zeros(static_cast<size_t>(n), 0.0);
  // Without scale (or center) the op still takes gamma (beta): a constant 1 (0), not a parameter.
  Value* gamma =
      !p.has_scale() || p.scale()
          ? c.parameter("gamma", {n}, {{"init", std::string("ones")}})
          : b.op(OpKind::Constant, {}, {{"dtype", c.dtype}, {"shape", Shape{n}}, {"value", ones}},
                 "unit_gamma");
  Value* beta =
      !p.has_center() || p.center()
          ? c.parameter("beta", {n}, {{"init", std::string("zeros")}})
          : b.op(OpKind::Constant, {}, {{"dtype", c.dtype}, {"shape", Shape{n}}, {"value", zeros}},
                 "zero_beta");
  Value* mean = c.parameter("moving_mean", {n}, {{"init", std::string("zeros")}}, false);
  Value* var = c.parameter("moving_variance", {n}, {{"init", std::string("ones")}}, false);
  b.setPrefix("");
  return b.op(OpKind::BatchNorm, {x, gamma, beta, mean, var},
              {{"epsilon", epsilon}, {"momentum", momentum}, {"training", false}, {"axis", axis}},
              c.name);
}

Value* expandDropout(LayerContext& c, Value* x, const proto::DropoutLayer& p, OpKind op) {
  if (!p.has_rate()) {
    c.fail({}, "rate is required (the fraction of units dropped, in [0, 1))");
    return nullptr;
  }
  if (!(std::isfinite(p.rate()) && p.rate() >= 0 && p.rate() < 1)) {
    c.fail({"rate"}, "rate must be in [0, 1), found " + numStr(p.rate()));
    return nullptr;
  }
  c.b.setPrefix("");
  return c.b.op(op, {x}, {{"rate", p.rate()}, {"training", false}}, c.name);
}

Value* expandFlatten(LayerContext& c, Value* x) {
  const Shape& in = x->type().shape;
  for (size_t k = 1; k < in.size(); ++k)
    if (in[k] == kBatch) {
      c.fail({},
             "cannot flatten the input " + kerasShape(in) + ": it has more than one batch axis");
      return nullptr;
    }
  if (in.size() < 2) {
    c.fail({}, "flatten needs features to flatten, found input " + kerasShape(in));
    return nullptr;
  }
  c.b.setPrefix("");
  return c.b.op(OpKind::Flatten, {x}, {{"axis", int64_t{1}}}, c.name);
}

Value* expandReshape(LayerContext& c, Value* x, const proto::ReshapeLayer& p) {
  const Shape& in = x->type().shape;
  Shape target(p.target_shape().dim().begin(), p.target_shape().dim().end());
  if (target.empty()) {
    c.fail({}, "target_shape is required (the shape of one example, without the batch axis)");
    return nullptr;
  }
  int64_t perExample = 1;
  for (size_t k = 1; k < in.size(); ++k) perExample *= in[k];
  int wild = -1;
  int64_t known = 1;
  bool fits = true;
  for (size_t k = 0; k < target.size(); ++k) {
    if (target[k] == -1 && wild < 0) {
      wild = static_cast<int>(k);
    } else if (target[k] <= 0) {
      c.fail({"target_shape"}, "target_shape " + shapeStr(target) +
                                   " must have positive dimensions and at most one -1");
      return nullptr;
    } else if ((known *= target[k]) > perExample) {
      fits = false;  // Too many already (which also keeps the product from overflowing).
      break;
    }
  }
  if (fits && wild >= 0 && perExample % known == 0)
    target[wild] = perExample / known;
  else if (wild >= 0 || known != perExample)
    fits = false;
  if (!fits) {
    Shape out = {kBatch};
    out.insert(out.end(), p.target_shape().dim().begin(), p.target_shape().dim().end());
    c.fail({"target_shape"}, "cannot reshape the input " + kerasShape(in) + " (" +
                                 std::to_string(perExample) + " values per example) to " +
                                 kerasShape(out));
    return nullptr;
  }
  Shape shape = {kBatch};
  shape.insert(shape.end(), target.begin(), target.end());
  c.b.setPrefix("");
  return c.b.op(OpKind::Reshape, {x}, {{"shape", shape}}, c.name);
}

// The loss's second operand for `logits`: checks that the loss fits the last layer. `labels`
// is null (the targets are the input) or receives the labels input's type.
Status checkLossFits(const TrainingSpec& t, const ModelSource& src, const LayerInfo& last,
                     const Node* input, TensorType* labelsType) {
  const TensorType& out = last.output->type();
  auto fail = [&](const std::string& msg) {
    return Error(Diagnostic{src.at({{"training"}, {"loss"}}), {}, {}, "training: " + msg});
  };
  std::string lossStr(lossName(t.loss));
  if (t.targets == Targets::Inputs) {
    const TensorType& in = input->result()->type();
    if (out != in)
      return fail("targets \"inputs\": the last layer '" + last.name + "' gives " +
                  kerasShape(out.shape) + " but the input '" + input->name() + "' is " +
                  kerasShape(in.shape) + " (an autoencoder reconstructs its input)");
    return Status::ok();
  }
  if (t.loss == LossKind::SparseSoftmaxCrossEntropy) {
    if (out.rank() != 2)
      return fail(lossStr + " needs (None, classes) logits; the last layer '" + last.name +
                  "' gives " + kerasShape(out.shape));
    *labelsType = {DType::Int64, {kBatch}};
  } else {
    *labelsType = out;  // Per-unit 0/1 labels (binary) or regression targets.
  }
  return Status::ok();
}

// Adds the targets, the loss and the metrics (Expansion::Evaluation).
Status addEvaluation(Builder& b, const TrainingSpec& t, const ModelSource& src,
                     const LayerInfo& last, Node* input) {
  TensorType labelsType;
  KILN_RETURN_IF_ERROR(checkLossFits(t, src, last, input, &labelsType));
  Graph& g = b.graph();
  if (t.targets == Targets::Labels && g.findNode("labels"))
    return src.error({{"input"}, {"name"}},
                     "the model's input is named 'labels', which is the "
                     "name of the targets input of the evaluation graph; rename it");
  b.setPrefix("");
  b.setLoc(src.at({{"training"}, {"loss"}}));
  Value* logits = last.output;
  Value* targets = t.targets == Targets::Inputs
                       ? input->result()
                       : b.input("labels", labelsType.dtype, labelsType.shape);
  OpKind lossOp = t.loss == LossKind::SparseSoftmaxCrossEntropy ? OpKind::SparseSoftmaxCrossEntropy
                  : t.loss == LossKind::BinaryCrossEntropyWithLogits
                      ? OpKind::BinaryCrossEntropyWithLogits
                      : OpKind::MeanSquaredError;
  Value* loss = b.op(lossOp, {logits, targets}, {}, "loss");
  std::vector<std::pair<std::string, Value*>> metrics;
  for (MetricKind m : t.metrics) {
    // validateTraining() admits accuracy with the two classification losses only.
    if (m != MetricKind::Accuracy) continue;
    if (t.loss == LossKind::SparseSoftmaxCrossEntropy) {
      metrics.push_back({"accuracy", b.op(OpKind::Accuracy, {logits, targets}, {}, "accuracy")});
      continue;
    }
    // Binary accuracy (Keras's, threshold 0.5 on sigmoid(logits)): the fraction of units where
    // (logits > 0) == (labels > 0.5).
    DType dt = logits->type().dtype;
    b.setPrefix("accuracy/");
    Value* predicted = b.op(OpKind::Greater, {logits, b.scalar(0.0, dt)}, {}, "predicted");
    Value* actual = b.op(OpKind::Greater, {targets, b.scalar(0.5, dt)}, {}, "actual");
    Value* hit = b.op(OpKind::Equal, {predicted, actual}, {}, "hit");
    Value* hits = b.op(OpKind::Select, {hit, b.scalar(1.0, dt), b.scalar(0.0, dt)}, {}, "hits");
    b.setPrefix("");
    metrics.push_back({"accuracy", b.op(OpKind::ReduceMean, {hits}, {}, "accuracy")});
  }
  if (!b.ok()) return b.takeStatus();
  g.addOutput("loss", loss);
  for (auto& [name, v] : metrics) g.addOutput(name, v);
  return Status::ok();
}

}  // namespace

std::string defaultLayerName(const proto::Layer& layer, int n) {
  const KindNames* k = kindOf(layer);
  return std::string(k ? k->keras : "layer") + "_" + std::to_string(n);
}

Expected<ExpandedModel> expandModel(const ParsedModel& pm, Expansion mode) {
  const proto::Model& m = pm.model;
  const ModelSource& src = pm.source;
  std::vector<Diagnostic> diags;
  auto fail = [&](std::initializer_list<FieldStep> path, std::string msg) {
    diags.push_back(Diagnostic{src.at(path), {}, {}, std::move(msg)});
  };

  ExpandedModel out;
  out.name = m.name();
  if (out.name.empty() && !src.file().empty())
    out.name = std::filesystem::path(src.file()).stem().stem().string();  // x.model.pbtxt -> x
  out.graph = std::make_unique<Graph>(out.name);
  out.graph->setSourceFile(src.file());
  // Training errors do not stop the layers from being checked: they are independent.
  std::vector<Diagnostic> trainingDiags;
  if (m.has_training()) {
    Expected<TrainingSpec> t = validateTraining(pm);
    if (t)
      out.training = std::move(*t);
    else
      trainingDiags = t.error().diagnostics();
  } else if (mode == Expansion::Evaluation) {
    fail({}, "the model has no training block, so no loss to evaluate");
  }
  // Every error found, in file order.
  auto failed = [&]() {
    diags.insert(diags.end(), trainingDiags.begin(), trainingDiags.end());
    std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::pair(a.loc.line, a.loc.column) < std::pair(b.loc.line, b.loc.column);
    });
    return Error(std::move(diags));
  };

  // The input.
  const proto::ModelInput& in = m.input();
  std::string inputName = in.name().empty() ? "x" : in.name();
  DType dtype = DType::Float32;
  if (in.dtype() == proto::FLOAT64)
    dtype = DType::Float64;
  else if (in.dtype() != proto::FLOAT32 && in.dtype() != proto::DTYPE_UNSPECIFIED)
    fail({{"input"}, {"dtype"}},
         "the input dtype must be FLOAT32 or FLOAT64 (layers compute in "
         "floating point), found " +
             proto::DType_Name(in.dtype()));
  Shape shape = {kBatch};
  if (!m.has_input() || !in.has_shape() || in.shape().dim_size() == 0) {
    fail({{"input"}},
         "the input needs a shape (of one example, without the batch axis), e.g. "
         "input { shape { dim: 784 } }");
  } else {
    for (int64_t d : in.shape().dim()) {
      if (d <= 0) {
        fail({{"input"}, {"shape"}},
             "input shape " + shapeStr({in.shape().dim().begin(), in.shape().dim().end()}) +
                 " must have positive dimensions (the batch axis is implied)");
        break;
      }
      shape.push_back(d);
    }
    if (std::string e = checkTensorLimits(shape, "input shape"); !e.empty() && diags.empty())
      fail({{"input"}, {"shape"}}, e);
  }
  if (std::string e = badName("input", inputName); !e.empty()) fail({{"input"}, {"name"}}, e);
  if (m.layer_size() == 0) fail({}, "the model has no layers");

  // Names: the user's first, then defaults that skip them (Keras counts per kind from 1).
  std::vector<std::string> names(static_cast<size_t>(m.layer_size()));
  std::map<std::string, int, std::less<>> taken;  // name -> layer index
  for (int i = 0; i < m.layer_size(); ++i) {
    const proto::Layer& l = m.layer(i);
    if (!kindOf(l)) {
      fail({{"layer", i}}, "layer " + std::to_string(i + 1) +
                               (l.name().empty() ? "" : " ('" + l.name() + "')") +
                               " has no kind (one of dense, batch_norm, activation, dropout, "
                               "alpha_dropout, flatten, reshape)");
      continue;
    }
    if (l.name().empty()) continue;
    if (std::string e = badName("layer", l.name()); !e.empty())
      fail({{"layer", i}, {"name"}}, e);
    else if (l.name() == inputName)
      fail({{"layer", i}, {"name"}}, "layer name '" + l.name() + "' is the input's name");
    else if (auto [it, fresh] = taken.emplace(l.name(), i); !fresh)
      fail({{"layer", i}, {"name"}}, "layer name '" + l.name() + "' is already used by layer " +
                                         std::to_string(it->second + 1) + " (line " +
                                         std::to_string(src.at({{"layer", it->second}}).line) +
                                         ")");
    names[static_cast<size_t>(i)] = l.name();
  }
  std::map<std::string_view, int> counters;
  for (int i = 0; i < m.layer_size(); ++i) {
    const KindNames* k = kindOf(m.layer(i));
    if (!k || !m.layer(i).name().empty()) continue;
    std::string name;
    do name = defaultLayerName(m.layer(i), ++counters[k->keras]);
    while (taken.count(name) || name == inputName);
    taken.emplace(name, i);
    names[static_cast<size_t>(i)] = name;
  }
  if (!diags.empty()) return failed();

  Builder b(*out.graph);
  b.setLoc(src.at({{"input"}}));
  Value* x = b.input(inputName, dtype, shape);
  if (!x) return b.takeStatus().takeError();
  out.input = x->node();
  for (int i = 0; i < m.layer_size(); ++i) {
    const proto::Layer& l = m.layer(i);
    const KindNames* k = kindOf(l);
    LayerContext c{src, diags, b, i, names[static_cast<size_t>(i)], std::string(k->field), dtype};
    b.setLoc(src.at({{"layer", i}}));
    size_t before = out.graph->nodes().size();
    Value* y = nullptr;
    switch (l.kind_case()) {
      case proto::Layer::kDense: y = expandDense(c, x, l.dense()); break;
      case proto::Layer::kBatchNorm: y = expandBatchNorm(c, x, l.batch_norm()); break;
      case proto::Layer::kActivation: {
        std::optional<ActivationSpec> a = resolveActivation(c, l.activation(), /*fromDense=*/false);
        if (a) y = applyActivation(c, x, *a, {"kind"});
        break;
      }
      case proto::Layer::kDropout: y = expandDropout(c, x, l.dropout(), OpKind::Dropout); break;
      case proto::Layer::kAlphaDropout:
        y = expandDropout(c, x, l.alpha_dropout(), OpKind::AlphaDropout);
        break;
      case proto::Layer::kFlatten: y = expandFlatten(c, x); break;
      case proto::Layer::kReshape: y = expandReshape(c, x, l.reshape()); break;
      case proto::Layer::KIND_NOT_SET: break;
    }
    if (!b.ok()) {
      // The builder's checks caught what the layer's did not: same error, said of the layer.
      Status failed = b.takeStatus();
      for (const Diagnostic& d : failed.error().diagnostics())
        diags.push_back(Diagnostic{c.at(), {}, {}, c.title() + ": " + d.message});
    }
    if (!y || !diags.empty()) {
      if (diags.empty()) c.fail({}, "internal: the layer produced no output");
      return failed();  // Later layers' shapes cannot follow.
    }
    LayerInfo info{c.name, c.field, std::string(k->type), c.at(), y, {}, {}};
    std::vector<Node*> all = out.graph->nodes();
    for (size_t j = before; j < all.size(); ++j)
      (all[j]->op() == OpKind::Parameter ? info.parameters : info.nodes).push_back(all[j]);
    out.layers.push_back(std::move(info));
    x = y;
  }
  out.graph->addOutput("logits", x);
  if (!trainingDiags.empty()) return failed();

  if (out.training) {
    if (mode == Expansion::Evaluation) {
      KILN_RETURN_IF_ERROR(addEvaluation(b, *out.training, src, out.layers.back(), out.input));
    } else {
      TensorType unused;
      KILN_RETURN_IF_ERROR(
          checkLossFits(*out.training, src, out.layers.back(), out.input, &unused));
    }
  }
  // Every node was typed as it was built; the verifier checks the whole graph once more.
  KILN_RETURN_IF_ERROR(verifyGraph(*out.graph));
  return out;
}

Expected<ExpandedModel> loadModelFile(const std::string& path, Expansion mode) {
  KILN_ASSIGN_OR_RETURN(ParsedModel m, readModelFile(path));
  return expandModel(m, mode);
}

}  // namespace kiln::frontend
