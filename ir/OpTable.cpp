// Builds the op table from ir/Ops.def.
#include "ir/OpTable.h"

#include <array>
#include <cassert>
#include <cstring>

namespace kiln {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = std::numeric_limits<double>::min();        // strictly positive
constexpr double kBelowOne = 1.0 - std::numeric_limits<double>::epsilon() / 2;  // [0, 1)

AttrSpec attrF(std::string_view n, double d, double lo, double hi) {
  return {n, AttrType::Float, false, d, {}, lo, hi, {}};
}
AttrSpec attrFR(std::string_view n, double lo, double hi) {
  return {n, AttrType::Float, true, 0, {}, lo, hi, {}};
}
AttrSpec attrI(std::string_view n, double d, double lo, double hi) {
  return {n, AttrType::Int, false, d, {}, lo, hi, {}};
}
AttrSpec attrB(std::string_view n, bool d) { return {n, AttrType::Bool, false, d ? 1.0 : 0.0}; }
AttrSpec attrS(std::string_view n, std::string_view d, std::string_view choices) {
  return {n, AttrType::String, false, 0, d, -kInf, kInf, choices};
}
AttrSpec attrInts(std::string_view n, bool required) { return {n, AttrType::Ints, required}; }
AttrSpec attrFloats(std::string_view n) { return {n, AttrType::Floats, false}; }
AttrSpec attrDT(std::string_view n, DType d) {
  return {n, AttrType::DType, false, static_cast<double>(d)};
}

std::array<OpDef, kNumOps> buildTable() {
#define OPERANDS(...) std::vector<OperandSpec>{__VA_ARGS__}
#define RESULTS(...) std::vector<std::string_view>{__VA_ARGS__}
#define ATTRS(...) std::vector<AttrSpec>{__VA_ARGS__}
#define F(n, d, lo, hi) attrF(n, d, lo, hi)
#define FR(n, lo, hi) attrFR(n, lo, hi)
#define I(n, d, lo, hi) attrI(n, d, lo, hi)
#define B(n, d) attrB(n, d)
#define S(n, d, c) attrS(n, d, c)
#define INTS(n) attrInts(n, false)
#define INTSR(n) attrInts(n, true)
#define FLOATS(n) attrFloats(n)
#define DT(n, d) attrDT(n, DType::d)
#define KILN_OP(Enum, Name, Fusion, Operands, Results, Attrs) \
  OpDef{OpKind::Enum, Name, FusionClass::Fusion, Operands, Results, Attrs},
  return {{
#include "ir/Ops.def"
  }};
#undef KILN_OP
#undef OPERANDS
#undef RESULTS
#undef ATTRS
#undef F
#undef FR
#undef I
#undef B
#undef S
#undef INTS
#undef INTSR
#undef FLOATS
#undef DT
}

const std::array<OpDef, kNumOps>& table() {
  static const std::array<OpDef, kNumOps> t = buildTable();
  return t;
}

}  // namespace

OperandSpec::OperandSpec(const char* spec) : name(spec) {
  if (name.ends_with('?')) {
    optional = true;
    name.remove_suffix(1);
  } else if (name.ends_with('*')) {
    variadic = true;
    name.remove_suffix(1);
  }
}

size_t OpDef::minOperands() const {
  size_t n = 0;
  for (const OperandSpec& o : operands)
    if (!o.optional) ++n;
  return n;
}

size_t OpDef::maxOperands() const {
  for (const OperandSpec& o : operands)
    if (o.variadic) return SIZE_MAX;
  return operands.size();
}

const AttrSpec* OpDef::findAttr(std::string_view attrName) const {
  for (const AttrSpec& a : attrs)
    if (a.name == attrName) return &a;
  return nullptr;
}

const OpDef& opDef(OpKind kind) {
  const OpDef& d = table()[static_cast<size_t>(kind)];
  assert(d.kind == kind);
  return d;
}

std::span<const OpDef> allOpDefs() { return table(); }

std::optional<OpKind> lookupOp(std::string_view name) {
  for (const OpDef& d : table())
    if (d.name == name) return d.kind;
  return std::nullopt;
}

std::string_view fusionClassName(FusionClass c) {
  switch (c) {
    case FusionClass::Leaf: return "leaf";
    case FusionClass::Elementwise: return "elementwise";
    case FusionClass::Broadcast: return "broadcast";
    case FusionClass::Injective: return "injective";
    case FusionClass::Reduction: return "reduction";
    case FusionClass::OutEwiseFusable: return "out-elementwise-fusable";
    case FusionClass::Opaque: return "opaque";
  }
  return "?";
}

std::string_view attrTypeName(AttrType t) {
  switch (t) {
    case AttrType::Int: return "int";
    case AttrType::Float: return "float";
    case AttrType::String: return "string";
    case AttrType::Bool: return "bool";
    case AttrType::Ints: return "int list";
    case AttrType::Floats: return "float list";
    case AttrType::DType: return "dtype";
  }
  return "?";
}

}  // namespace kiln
