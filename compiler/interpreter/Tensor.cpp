// A dense, row-major host tensor.
#include "compiler/interpreter/Tensor.h"

#include <cstdio>

namespace kiln {

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  size_ = numElements(shape_);
  bytes_.assign(static_cast<size_t>(size_ * dtypeSize(dtype_)), 0);
}

double Tensor::getDouble(int64_t i) const {
  switch (dtype_) {
    case DType::Float32: return data<float>()[i];
    case DType::Float64: return data<double>()[i];
    case DType::Int32: return data<int32_t>()[i];
    case DType::Int64: return static_cast<double>(data<int64_t>()[i]);
    case DType::Bool: return data<bool>()[i] ? 1.0 : 0.0;
  }
  return 0;
}

void Tensor::setDouble(int64_t i, double v) {
  switch (dtype_) {
    case DType::Float32: data<float>()[i] = static_cast<float>(v); return;
    case DType::Float64: data<double>()[i] = v; return;
    case DType::Int32: data<int32_t>()[i] = static_cast<int32_t>(v); return;
    case DType::Int64: data<int64_t>()[i] = static_cast<int64_t>(v); return;
    case DType::Bool: data<bool>()[i] = v != 0; return;
  }
}

Tensor Tensor::castTo(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t(dtype, shape_);
  if (isInteger(dtype_) && isInteger(dtype)) {
    // Through int64, not double: int64 values past 2^53 must survive.
    for (int64_t i = 0; i < size_; ++i) {
      int64_t v = dtype_ == DType::Int64 ? data<int64_t>()[i] : data<int32_t>()[i];
      if (dtype == DType::Int64) t.data<int64_t>()[i] = v;
      else t.data<int32_t>()[i] = static_cast<int32_t>(v);
    }
    return t;
  }
  for (int64_t i = 0; i < size_; ++i) t.setDouble(i, getDouble(i));
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  assert(numElements(shape) == size_);
  t.shape_ = std::move(shape);
  return t;
}

std::string Tensor::str(int64_t maxElements) const {
  std::string out = std::string(dtypeName(dtype_)) + shapeStr(shape_) + " {";
  for (int64_t i = 0; i < size_ && i < maxElements; ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", getDouble(i));
    out += buf;
  }
  if (size_ > maxElements) out += ", ...";
  return out + "}";
}

std::vector<int64_t> stridesOf(const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t k = static_cast<int64_t>(shape.size()) - 2; k >= 0; --k) s[k] = s[k + 1] * shape[k + 1];
  return s;
}

}  // namespace kiln
