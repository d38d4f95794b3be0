// Element types, shapes and tensor types of the IR.
#include "ir/Types.h"

#include <cassert>

namespace kiln {

std::string_view dtypeName(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "invalid";
}

std::optional<DType> parseDType(std::string_view name) {
  for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::Bool})
    if (dtypeName(t) == name) return t;
  return std::nullopt;
}

bool isFloat(DType t) { return t == DType::Float32 || t == DType::Float64; }
bool isInteger(DType t) { return t == DType::Int32 || t == DType::Int64; }

int64_t dtypeSize(DType t) {
  switch (t) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

std::string shapeStr(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t numElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    assert(d >= 0 && "numElements of a shape with a batch dimension");
    n *= d;
  }
  return n;
}

bool hasBatchDim(const Shape& s) {
  for (int64_t d : s)
    if (d == kBatch) return true;
  return false;
}

Shape bindBatch(Shape s, int64_t batch) {
  for (int64_t& d : s)
    if (d == kBatch) d = batch;
  return s;
}

std::string TensorType::str() const { return std::string(dtypeName(dtype)) + shapeStr(shape); }

}  // namespace kiln
