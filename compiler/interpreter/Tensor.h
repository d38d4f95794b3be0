// A dense, row-major host tensor: the interpreter's values and the CLI's inputs and outputs.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "ir/Types.h"

namespace kiln {

template <class T> constexpr DType dtypeOf();
template <> constexpr DType dtypeOf<float>() { return DType::Float32; }
template <> constexpr DType dtypeOf<double>() { return DType::Float64; }
template <> constexpr DType dtypeOf<int32_t>() { return DType::Int32; }
template <> constexpr DType dtypeOf<int64_t>() { return DType::Int64; }
template <> constexpr DType dtypeOf<bool>() { return DType::Bool; }

class Tensor {
 public:
  Tensor() = default;
  /// A zero-filled tensor; `shape` must have no batch dimension.
  Tensor(DType dtype, Shape shape);

  template <class T>
  static Tensor fromVector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtypeOf<T>(), std::move(shape));
    assert(static_cast<int64_t>(values.size()) == t.size());
    for (int64_t i = 0; i < t.size(); ++i) t.data<T>()[i] = values[i];
    return t;
  }
  /// A scalar (rank 0).
  template <class T>
  static Tensor scalar(T v) { return fromVector<T>({}, {v}); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[i]; }
  int64_t size() const { return size_; }
  int64_t byteSize() const { return static_cast<int64_t>(bytes_.size()); }
  TensorType type() const { return {dtype_, shape_}; }

  template <class T>
  T* data() {
    assert(dtype_ == dtypeOf<T>() && "tensor accessed with the wrong element type");
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <class T>
  const T* data() const {
    assert(dtype_ == dtypeOf<T>() && "tensor accessed with the wrong element type");
    return reinterpret_cast<const T*>(bytes_.data());
  }
  template <class T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(size_)}; }
  template <class T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(size_)}; }
  void* raw() { return bytes_.data(); }
  const void* raw() const { return bytes_.data(); }

  /// Element i (row-major) of any dtype, as a double; and the reverse (rounding to the dtype).
  double getDouble(int64_t i) const;
  void setDouble(int64_t i, double v);
  /// A copy converted to `dtype` (float <-> float rounds; float -> int truncates).
  Tensor castTo(DType dtype) const;
  /// Same data, new shape (the element counts must agree).
  Tensor reshaped(Shape shape) const;

  /// "float32[2,3] {1, 2, 3, ...}" (at most `maxElements` values).
  std::string str(int64_t maxElements = 8) const;

 private:
  DType dtype_ = DType::Float32;
  Shape shape_;
  int64_t size_ = 0;
  std::vector<unsigned char> bytes_;
};

/// Row-major strides of a shape (in elements).
std::vector<int64_t> stridesOf(const Shape& shape);

}  // namespace kiln
