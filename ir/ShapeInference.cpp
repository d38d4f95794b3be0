// Shape and dtype inference for every op (the switch has no default: a new op that lacks a rule
// fails to compile with -Werror=switch).
#include "ir/ShapeInference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <set>

namespace kiln {
namespace {

const TensorType& operandType(const Node& n, size_t i) { return n.operand(i)->type(); }

std::string numberStr(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", d);
  return buf;
}

std::string nth(size_t i, const Node& n) {
  return "operand " + std::to_string(i) + " ('" + std::string(n.def().operands[std::min(
                                                      i, n.def().operands.size() - 1)].name) +
         "')";
}

Status requireFloat(const Node& n, size_t i) {
  const TensorType& t = operandType(n, i);
  if (!isFloat(t.dtype))
    return n.error(nth(i, n) + " must be float32 or float64, found " + t.str());
  return Status::ok();
}

Status requireNumeric(const Node& n, size_t i) {
  const TensorType& t = operandType(n, i);
  if (t.dtype == DType::Bool) return n.error(nth(i, n) + " must be numeric, found " + t.str());
  return Status::ok();
}

Status requireSameDType(const Node& n, size_t i, size_t j) {
  const TensorType& a = operandType(n, i);
  const TensorType& b = operandType(n, j);
  if (a.dtype != b.dtype)
    return n.error("dtype mismatch: " + nth(i, n) + " is " + a.str() + " but " + nth(j, n) +
                   " is " + b.str());
  return Status::ok();
}

bool dimsEqual(int64_t a, int64_t b) { return a == b; }

Expected<std::vector<TensorType>> one(TensorType t) { return std::vector<TensorType>{std::move(t)}; }

Expected<TensorType> broadcastBinary(const Node& n, size_t i, size_t j) {
  const TensorType& a = operandType(n, i);
  const TensorType& b = operandType(n, j);
  Expected<Shape> s = broadcastShapes(a.shape, b.shape);
  if (!s)
    return n.error("shapes do not broadcast: " + nth(i, n) + " is " + a.str() + " and " +
                   nth(j, n) + " is " + b.str());
  return TensorType{a.dtype, *s};
}

Expected<std::vector<TensorType>> inferReduction(const Node& n, const TensorType& x) {
  std::vector<int64_t> axes = n.ints("axes");
  std::set<int64_t> reduce;
  for (int64_t a : axes) {
    auto ax = normalizeAxis(a, x.rank());
    if (!ax)
      return n.error("axis " + std::to_string(a) + " is out of range for " + x.str());
    if (!reduce.insert(*ax).second)
      return n.error("axis " + std::to_string(a) + " is listed twice in axes " + shapeStr(axes));
  }
  if (axes.empty())
    for (int64_t k = 0; k < x.rank(); ++k) reduce.insert(k);
  Shape out;
  for (int64_t k = 0; k < x.rank(); ++k) {
    if (!reduce.count(k)) out.push_back(x.shape[k]);
    else if (n.b("keepdims")) out.push_back(1);
  }
  return one({x.dtype, out});
}

Expected<std::vector<TensorType>> inferReshape(const Node& n, const TensorType& x) {
  Shape target = n.ints("shape");
  int wild = -1;
  int64_t known = 1;
  for (size_t k = 0; k < target.size(); ++k) {
    if (target[k] == -1) {
      if (wild >= 0) return n.error("shape " + shapeStr(target) + " has more than one -1");
      wild = static_cast<int>(k);
    } else if (target[k] <= 0) {
      return n.error("shape " + shapeStr(target) + " has a dimension that is not positive or -1");
    }
  }
  if (std::string e = checkTensorLimits(target, "target shape"); !e.empty()) return n.error(e);
  known = *boundedElementCount(target);
  int64_t staticIn = 1;
  int batchDims = 0;
  for (int64_t d : x.shape) {
    if (d == kBatch) ++batchDims;
    else staticIn *= d;
  }
  auto mismatch = [&] {
    return n.error("cannot reshape " + x.str() + " to " + shapeStr(target) +
                   ": the element counts differ");
  };
  if (batchDims > 1) return n.error("cannot reshape " + x.str() + ": more than one batch dimension");
  if (batchDims == 1) {
    // The batch dimension must survive as the target's -1 with the other sizes matching.
    if (wild < 0 || known != staticIn) return mismatch();
    return one({x.dtype, target});
  }
  if (wild >= 0) {
    if (known == 0 || staticIn % known != 0) return mismatch();
    target[wild] = staticIn / known;
  } else if (known != staticIn) {
    return mismatch();
  }
  return one({x.dtype, target});
}

Expected<std::vector<TensorType>> inferConcat(const Node& n) {
  const TensorType& first = operandType(n, 0);
  auto ax = normalizeAxis(n.i("axis"), first.rank());
  if (!ax) return n.error("axis " + std::to_string(n.i("axis")) + " is out of range for " + first.str());
  Shape out = first.shape;
  for (size_t k = 1; k < n.numOperands(); ++k) {
    const TensorType& t = operandType(n, k);
    if (t.dtype != first.dtype || t.rank() != first.rank())
      return n.error("operand " + std::to_string(k) + " is " + t.str() + " but operand 0 is " +
                     first.str() + " (concat needs the same dtype and rank)");
    for (int64_t d = 0; d < first.rank(); ++d) {
      if (d == *ax) continue;
      if (t.shape[d] != first.shape[d])
        return n.error("operand " + std::to_string(k) + " is " + t.str() + " but operand 0 is " +
                       first.str() + ": dimension " + std::to_string(d) +
                       " differs off the concat axis");
    }
    if (t.shape[*ax] == kBatch || out[*ax] == kBatch)
      return n.error("cannot concatenate along the batch dimension");
    out[*ax] += t.shape[*ax];
    if (out[*ax] > kMaxTensorElements)  // Checked here too, so that the sum cannot overflow.
      return n.error("the concatenation has more than 2^31 elements along axis " +
                     std::to_string(*ax));
  }
  if (out[*ax] == kBatch) return n.error("cannot concatenate along the batch dimension");
  return one({first.dtype, out});
}

Expected<std::vector<TensorType>> inferSlice(const Node& n, const TensorType& x) {
  Shape starts = n.ints("starts"), ends = n.ints("ends"), axes = n.ints("axes");
  if (starts.size() != ends.size())
    return n.error("starts " + shapeStr(starts) + " and ends " + shapeStr(ends) +
                   " must have the same length");
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
  if (axes.size() != starts.size())
    return n.error("axes " + shapeStr(axes) + " must have one entry per start " + shapeStr(starts));
  Shape out = x.shape;
  std::set<int64_t> seen;
  for (size_t k = 0; k < axes.size(); ++k) {
    auto ax = normalizeAxis(axes[k], x.rank());
    if (!ax) return n.error("axis " + std::to_string(axes[k]) + " is out of range for " + x.str());
    if (!seen.insert(*ax).second) return n.error("axis " + std::to_string(axes[k]) + " is sliced twice");
    int64_t dim = x.shape[*ax];
    if (dim == kBatch) return n.error("cannot slice the batch dimension of " + x.str());
    auto clampIndex = [dim](int64_t i) {
      if (i < 0) i += dim;
      return std::clamp<int64_t>(i, 0, dim);
    };
    int64_t b = clampIndex(starts[k]), e = clampIndex(ends[k]);
    if (e <= b)
      return n.error("slice [" + std::to_string(starts[k]) + ", " + std::to_string(ends[k]) +
                     ") of axis " + std::to_string(*ax) + " of " + x.str() + " is empty");
    out[*ax] = e - b;
  }
  return one({x.dtype, out});
}

Expected<std::vector<TensorType>> inferBatchNorm(const Node& n) {
  const TensorType& x = operandType(n, 0);
  KILN_RETURN_IF_ERROR(requireFloat(n, 0));
  auto ax = normalizeAxis(n.i("axis"), x.rank());
  if (!ax) return n.error("axis " + std::to_string(n.i("axis")) + " is out of range for " + x.str());
  int64_t c = x.shape[*ax];
  if (c == kBatch) return n.error("cannot normalize along the batch dimension of " + x.str());
  for (size_t k = 1; k < 5; ++k) {
    const TensorType& t = operandType(n, k);
    KILN_RETURN_IF_ERROR(requireSameDType(n, 0, k));
    if (t.shape != Shape{c})
      return n.error(nth(k, n) + " must have shape [" + std::to_string(c) + "] (the size of axis " +
                     std::to_string(*ax) + " of x, which is " + x.str() + "), found " + t.str());
  }
  return std::vector<TensorType>{x, {x.dtype, {c}}, {x.dtype, {c}}};
}

// logits [N, C] and per-row labels [N] (integer for sparse, same as logits for binary).
Status checkClassification(const Node& n, bool sparseLabels) {
  const TensorType& logits = operandType(n, 0);
  const TensorType& labels = operandType(n, 1);
  KILN_RETURN_IF_ERROR(requireFloat(n, 0));
  if (!sparseLabels) {
    KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
    if (logits.shape != labels.shape)
      return n.error("logits are " + logits.str() + " but labels are " + labels.str() +
                     " (they must have the same shape)");
    return Status::ok();
  }
  if (logits.rank() != 2) return n.error("logits must be [batch, classes], found " + logits.str());
  if (!isInteger(labels.dtype) || labels.rank() != 1)
    return n.error("labels must be int32 or int64 [batch] class indices, found " + labels.str());
  if (!dimsEqual(labels.shape[0], logits.shape[0]))
    return n.error("labels are " + labels.str() + " but logits are " + logits.str() +
                   " (one label per row of logits)");
  return Status::ok();
}

Expected<std::vector<TensorType>> inferLeaf(const Node& n) {
  if (n.op() == OpKind::Constant) {
    std::vector<double> v = n.floats("value");
    if (v.empty()) return n.error("constant has no value (attribute 'value', a float list)");
    Shape s = n.hasAttr("shape") ? n.ints("shape") : (v.size() == 1 ? Shape{} : Shape{int64_t(v.size())});
    for (int64_t d : s)
      if (d <= 0) return n.error("constant shape " + shapeStr(s) + " must have positive dimensions");
    if (std::string e = checkTensorLimits(s, "constant shape"); !e.empty()) return n.error(e);
    int64_t count = numElements(s);
    if (static_cast<int64_t>(v.size()) != 1 && static_cast<int64_t>(v.size()) != count)
      return n.error("constant of shape " + shapeStr(s) + " needs 1 or " + std::to_string(count) +
                     " values, found " + std::to_string(v.size()));
    return one({n.dtype("dtype"), s});
  }
  Shape s = n.ints("shape");
  DType dt = n.dtype("dtype");
  if (n.op() == OpKind::Input) {
    if (dt == DType::Bool) return n.error("inputs cannot be bool");
    for (size_t k = 0; k < s.size(); ++k)
      if (s[k] == 0 || s[k] < -1 || (s[k] == -1 && k != 0))
        return n.error("input shape " + shapeStr(s) +
                       ": dimensions must be positive; only the first may be -1 (the batch)");
    if (std::string e = checkTensorLimits(s, "input shape"); !e.empty()) return n.error(e);
    return one({dt, s});
  }
  // Parameter.
  if (!isFloat(dt)) return n.error("parameters must be float32 or float64, found " + std::string(dtypeName(dt)));
  for (int64_t d : s)
    if (d <= 0) return n.error("parameter shape " + shapeStr(s) + " must have positive dimensions");
  if (std::string e = checkTensorLimits(s, "parameter shape"); !e.empty()) return n.error(e);
  // A float32 parameter would silently turn such a value into infinity.
  if (dt == DType::Float32)
    for (double v : n.floats("init_values"))
      if (std::fabs(v) > std::numeric_limits<float>::max())
        return n.error("init 'values' holds " + numberStr(v) + ", which is outside the range of float32");
  if (n.s("init") == "values") {
    size_t count = n.floats("init_values").size();
    if (static_cast<int64_t>(count) != numElements(s))
      return n.error("init 'values' has " + std::to_string(count) + " numbers but shape " +
                     shapeStr(s) + " needs " + std::to_string(numElements(s)));
  }
  return one({dt, s});
}

}  // namespace

std::optional<int64_t> boundedElementCount(const Shape& s) {
  int64_t count = 1;
  for (int64_t d : s) {
    if (d == kBatch) continue;
    if (d <= 0 || d > kMaxTensorElements / count) return std::nullopt;
    count *= d;
  }
  return count;
}

std::string checkTensorLimits(const Shape& s, const std::string& what) {
  if (static_cast<int64_t>(s.size()) > kMaxTensorRank)
    return what + " has rank " + std::to_string(s.size()) + "; at most " +
           std::to_string(kMaxTensorRank) + " dimensions are supported";
  for (int64_t d : s)
    if (d <= 0 && d != kBatch)
      return what + " " + shapeStr(s) + " has a dimension that is not positive";
  if (!boundedElementCount(s))
    return what + " " + shapeStr(s) + " has more than 2^31 (" +
           std::to_string(kMaxTensorElements) + ") elements, the limit for one tensor" +
           (hasBatchDim(s) ? " (not counting the batch dimension)" : "");
  return {};
}

std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

Expected<Shape> broadcastShapes(const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t k = 0; k < r; ++k) {
    int64_t da = k < r - a.size() ? 1 : a[k - (r - a.size())];
    int64_t db = k < r - b.size() ? 1 : b[k - (r - b.size())];
    if (da == db) out[k] = da;
    else if (da == 1) out[k] = db;
    else if (db == 1) out[k] = da;
    else return Error::msg("incompatible dimensions");
  }
  return out;
}

Expected<std::vector<TensorType>> inferResultTypes(const Node& n) {
  auto x = [&]() -> const TensorType& { return operandType(n, 0); };
  switch (n.op()) {
    case OpKind::Input:
    case OpKind::Parameter:
    case OpKind::Constant:
      return inferLeaf(n);

    case OpKind::MatMul: {
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      const TensorType& a = operandType(n, 0);
      const TensorType& b = operandType(n, 1);
      if (a.rank() != 2 || b.rank() != 2)
        return n.error("matmul needs two matrices, found a " + a.str() + " and b " + b.str());
      bool ta = n.b("transpose_a"), tb = n.b("transpose_b");
      int64_t m = a.shape[ta ? 1 : 0], ka = a.shape[ta ? 0 : 1];
      int64_t kb = b.shape[tb ? 1 : 0], nn = b.shape[tb ? 0 : 1];
      if (!dimsEqual(ka, kb))
        return n.error("matmul shapes do not match: a is " + a.str() + (ta ? " (transposed)" : "") +
                       " and b is " + b.str() + (tb ? " (transposed)" : "") +
                       "; the contraction dimensions are " + std::to_string(ka) + " and " +
                       std::to_string(kb));
      return one({a.dtype, {m, nn}});
    }

    case OpKind::Add: case OpKind::Sub: case OpKind::Mul: case OpKind::Div:
    case OpKind::Maximum: case OpKind::Minimum: {
      KILN_RETURN_IF_ERROR(requireNumeric(n, 0));
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      KILN_ASSIGN_OR_RETURN(TensorType t, broadcastBinary(n, 0, 1));
      return one(t);
    }
    case OpKind::Pow: {
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      KILN_ASSIGN_OR_RETURN(TensorType t, broadcastBinary(n, 0, 1));
      return one(t);
    }
    case OpKind::Cast:
      return one({n.dtype("dtype"), x().shape});
    case OpKind::Neg: case OpKind::Abs:
      KILN_RETURN_IF_ERROR(requireNumeric(n, 0));
      return one(x());
    case OpKind::Exp: case OpKind::Log: case OpKind::Sqrt: case OpKind::Rsqrt:
    case OpKind::Square: case OpKind::Erf:
    case OpKind::Sigmoid: case OpKind::Tanh: case OpKind::Relu: case OpKind::LeakyRelu:
    case OpKind::Elu: case OpKind::Selu: case OpKind::Gelu: case OpKind::Mish:
    case OpKind::Softplus: case OpKind::Dropout: case OpKind::AlphaDropout:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      return one(x());
    case OpKind::RRelu:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      if (n.f("lower") > n.f("upper"))
        return n.error("lower (" + numberStr(n.f("lower")) + ") must not exceed upper (" +
                       numberStr(n.f("upper")) + ")");
      return one(x());

    case OpKind::Equal: case OpKind::NotEqual: case OpKind::Less: case OpKind::LessEqual:
    case OpKind::Greater: case OpKind::GreaterEqual: {
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      KILN_ASSIGN_OR_RETURN(TensorType t, broadcastBinary(n, 0, 1));
      return one({DType::Bool, t.shape});
    }
    case OpKind::Select: {
      if (operandType(n, 0).dtype != DType::Bool)
        return n.error("condition must be bool (a comparison's result), found " +
                       operandType(n, 0).str());
      KILN_RETURN_IF_ERROR(requireSameDType(n, 1, 2));
      KILN_ASSIGN_OR_RETURN(TensorType t, broadcastBinary(n, 1, 2));
      Expected<Shape> s = broadcastShapes(operandType(n, 0).shape, t.shape);
      if (!s)
        return n.error("condition " + operandType(n, 0).str() + " does not broadcast with " + t.str());
      return one({t.dtype, *s});
    }

    case OpKind::PRelu: {
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      KILN_ASSIGN_OR_RETURN(TensorType t, broadcastBinary(n, 0, 1));
      if (t.shape != x().shape)
        return n.error("alpha " + operandType(n, 1).str() + " must broadcast to x " + x().str() +
                       " without growing it");
      return one(x());
    }
    case OpKind::Swish:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      if (n.numOperands() == 2) {
        KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
        const TensorType& beta = operandType(n, 1);
        if (beta.rank() > 1 || (beta.rank() == 1 && beta.shape[0] != 1))
          return n.error("beta must be a scalar ([] or [1]), found " + beta.str());
      }
      return one(x());
    case OpKind::Softmax: case OpKind::LogSoftmax:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      if (!normalizeAxis(n.i("axis"), x().rank()))
        return n.error("axis " + std::to_string(n.i("axis")) + " is out of range for " + x().str());
      return one(x());

    case OpKind::ReduceSum: case OpKind::ReduceMax:
      KILN_RETURN_IF_ERROR(requireNumeric(n, 0));
      return inferReduction(n, x());
    case OpKind::ReduceMean:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      return inferReduction(n, x());

    case OpKind::Reshape:
      return inferReshape(n, x());
    case OpKind::Flatten: {
      int64_t axis = n.i("axis");
      if (axis > x().rank())
        return n.error("axis " + std::to_string(axis) + " is out of range for " + x().str());
      Shape out(x().shape.begin(), x().shape.begin() + axis);
      int64_t rest = 1;
      for (int64_t k = axis; k < x().rank(); ++k) {
        if (x().shape[k] == kBatch) return n.error("cannot flatten the batch dimension of " + x().str());
        rest *= x().shape[k];
      }
      out.push_back(rest);
      return one({x().dtype, out});
    }
    case OpKind::Transpose: {
      Shape perm = n.ints("perm");
      if (perm.empty())
        for (int64_t k = x().rank() - 1; k >= 0; --k) perm.push_back(k);
      Shape sorted = perm;
      std::sort(sorted.begin(), sorted.end());
      Shape iota(x().shape.size());
      std::iota(iota.begin(), iota.end(), 0);
      if (sorted != iota)
        return n.error("perm " + shapeStr(perm) + " is not a permutation of the " +
                       std::to_string(x().rank()) + " axes of " + x().str());
      Shape out;
      for (int64_t p : perm) out.push_back(x().shape[p]);
      return one({x().dtype, out});
    }
    case OpKind::Concat:
      return inferConcat(n);
    case OpKind::Slice:
      return inferSlice(n, x());
    case OpKind::Pad: {
      Shape before = n.ints("before"), after = n.ints("after");
      if (static_cast<int64_t>(before.size()) != x().rank() || static_cast<int64_t>(after.size()) != x().rank())
        return n.error("before " + shapeStr(before) + " and after " + shapeStr(after) +
                       " need one entry per axis of " + x().str());
      Shape out = x().shape;
      for (int64_t k = 0; k < x().rank(); ++k) {
        if (before[k] < 0 || after[k] < 0)
          return n.error("padding must not be negative, found before " + shapeStr(before) +
                         " after " + shapeStr(after));
        // Bounded here so that the sum below cannot overflow; the verifier checks the result.
        if (before[k] > kMaxTensorElements || after[k] > kMaxTensorElements)
          return n.error("padding before " + shapeStr(before) + " after " + shapeStr(after) +
                         " is more than a tensor may hold (2^31 elements)");
        if (before[k] + after[k] == 0) continue;
        if (out[k] == kBatch) return n.error("cannot pad the batch dimension of " + x().str());
        out[k] += before[k] + after[k];
      }
      return one({x().dtype, out});
    }
    case OpKind::OneHot: {
      if (!isInteger(x().dtype))
        return n.error("indices must be int32 or int64, found " + x().str());
      DType dt = n.dtype("dtype");
      if (!isFloat(dt)) return n.error("dtype must be float32 or float64, found " + std::string(dtypeName(dt)));
      Shape out = x().shape;
      out.push_back(n.i("depth"));
      return one({dt, out});
    }

    case OpKind::BatchNorm:
      return inferBatchNorm(n);

    case OpKind::SparseSoftmaxCrossEntropy:
    case OpKind::Accuracy:
      KILN_RETURN_IF_ERROR(checkClassification(n, /*sparseLabels=*/true));
      return one({x().dtype, {}});
    case OpKind::BinaryCrossEntropyWithLogits:
      KILN_RETURN_IF_ERROR(checkClassification(n, /*sparseLabels=*/false));
      return one({x().dtype, {}});
    case OpKind::MeanSquaredError:
      KILN_RETURN_IF_ERROR(requireFloat(n, 0));
      KILN_RETURN_IF_ERROR(requireSameDType(n, 0, 1));
      if (x().shape != operandType(n, 1).shape)
        return n.error("predictions are " + x().str() + " but targets are " +
                       operandType(n, 1).str() + " (they must have the same shape)");
      return one({x().dtype, {}});
    case OpKind::ArgMax: {
      KILN_RETURN_IF_ERROR(requireNumeric(n, 0));
      auto ax = normalizeAxis(n.i("axis"), x().rank());
      if (!ax) return n.error("axis " + std::to_string(n.i("axis")) + " is out of range for " + x().str());
      Shape out = x().shape;
      out.erase(out.begin() + *ax);
      return one({DType::Int64, out});
    }
  }
  return n.error("internal: no shape rule for this op");
}

}  // namespace kiln
