// The op table: one OpDef per op, generated from ir/Ops.def.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/Types.h"

namespace kiln {

enum class OpKind : uint8_t {
#define KILN_OP(Enum, ...) Enum,
#include "ir/Ops.def"
#undef KILN_OP
};

inline constexpr int kNumOps = 0
#define KILN_OP(...) +1
#include "ir/Ops.def"
#undef KILN_OP
    ;

/// TVM-style fusion classes: what a fusion pass may merge without per-op special cases.
enum class FusionClass : uint8_t {
  Leaf,             // input, parameter, constant
  Elementwise,      // one output element from the same element of one operand
  Broadcast,        // elementwise with NumPy broadcasting of several operands
  Injective,        // each output element is one input element (reshape, transpose, slice)
  Reduction,        // reduces axes
  OutEwiseFusable,  // an elementwise epilogue may fuse into it (matmul)
  Opaque,           // none of the above
};
std::string_view fusionClassName(FusionClass c);

enum class AttrType : uint8_t { Int, Float, String, Bool, Ints, Floats, DType };
std::string_view attrTypeName(AttrType t);

struct AttrSpec {
  std::string_view name;
  AttrType type;
  bool required = false;
  double defaultNumber = 0;       // Int, Float, Bool (0/1), DType (enum value)
  std::string_view defaultString; // String
  double lo = -std::numeric_limits<double>::infinity();  // Int, Float: allowed closed range
  double hi = std::numeric_limits<double>::infinity();
  std::string_view choices;       // String: "a|b|c"; empty allows any
};

struct OperandSpec {
  std::string_view name;
  bool optional = false;
  bool variadic = false;
  OperandSpec(const char* spec);  // NOLINT(google-explicit-constructor): "x", "x?", "xs*"
};

struct OpDef {
  OpKind kind;
  std::string_view name;
  FusionClass fusion;
  std::vector<OperandSpec> operands;
  std::vector<std::string_view> results;
  std::vector<AttrSpec> attrs;

  /// The smallest and largest operand counts (max is SIZE_MAX for variadic ops).
  size_t minOperands() const;
  size_t maxOperands() const;
  const AttrSpec* findAttr(std::string_view attrName) const;
};

const OpDef& opDef(OpKind kind);
std::span<const OpDef> allOpDefs();
std::optional<OpKind> lookupOp(std::string_view name);
inline std::string_view opName(OpKind kind) { return opDef(kind).name; }

}  // namespace kiln
