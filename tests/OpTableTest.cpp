// The op table is complete: every op has a name, a shape rule and an interpreter kernel.
#include <gtest/gtest.h>

#include <set>

#include "compiler/autodiff/GradRules.h"
#include "compiler/interpreter/Kernels.h"
#include "ir/OpTable.h"

namespace kiln {
namespace {

TEST(OpTableTest, NamesAreUniqueAndLookUp) {
  std::set<std::string_view> names;
  for (const OpDef& d : allOpDefs()) {
    EXPECT_TRUE(names.insert(d.name).second) << "duplicate op name " << d.name;
    ASSERT_TRUE(lookupOp(d.name).has_value()) << d.name;
    EXPECT_EQ(*lookupOp(d.name), d.kind);
    EXPECT_FALSE(d.results.empty()) << d.name << " has no results";
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kNumOps));
  EXPECT_FALSE(lookupOp("no_such_op").has_value());
}

TEST(OpTableTest, EveryOpHasAnInterpreterKernel) {
  const KernelTable& t = kernelTable();
  for (const OpDef& d : allOpDefs()) {
    if (d.kind == OpKind::Input || d.kind == OpKind::Parameter) continue;  // values, not kernels
    EXPECT_NE(t[static_cast<size_t>(d.kind)], nullptr) << "no interpreter kernel for " << d.name;
  }
}

TEST(OpTableTest, EveryOpHasAGradientRuleOrSaysItHasNone) {
  const GradTable& t = gradTable();
  for (const OpDef& d : allOpDefs()) {
    if (d.fusion == FusionClass::Leaf) continue;  // values: the pass starts and stops at them
    const GradRule& r = t[static_cast<size_t>(d.kind)];
    EXPECT_TRUE(r.fn != nullptr || r.notDifferentiable) << "no gradient rule for " << d.name;
    EXPECT_FALSE(r.fn != nullptr && r.notDifferentiable) << d.name << " has a rule and says it has none";
  }
}

TEST(OpTableTest, OperandSpecsAreWellFormed) {
  for (const OpDef& d : allOpDefs()) {
    bool seenOptional = false;
    for (size_t i = 0; i < d.operands.size(); ++i) {
      const OperandSpec& o = d.operands[i];
      if (o.variadic) {
        EXPECT_EQ(i + 1, d.operands.size()) << d.name << ": variadic operand must be last";
      }
      if (seenOptional) {
        EXPECT_TRUE(o.optional) << d.name << ": required operand after an optional one";
      }
      seenOptional |= o.optional;
    }
    for (const AttrSpec& a : d.attrs) {
      if ((a.type == AttrType::Float || a.type == AttrType::Int) && !a.required) {
        EXPECT_GE(a.defaultNumber, a.lo) << d.name << "." << a.name;
        EXPECT_LE(a.defaultNumber, a.hi) << d.name << "." << a.name;
      }
    }
  }
}

TEST(OpTableTest, ChapterElevenDefaults) {
  // The defaults chapter11.md fixes, read back from the table.
  EXPECT_DOUBLE_EQ(opDef(OpKind::LeakyRelu).findAttr("alpha")->defaultNumber, 0.01);
  EXPECT_DOUBLE_EQ(opDef(OpKind::Elu).findAttr("alpha")->defaultNumber, 1.0);
  EXPECT_DOUBLE_EQ(opDef(OpKind::RRelu).findAttr("lower")->defaultNumber, 1.0 / 8);
  EXPECT_DOUBLE_EQ(opDef(OpKind::RRelu).findAttr("upper")->defaultNumber, 1.0 / 3);
  EXPECT_DOUBLE_EQ(opDef(OpKind::BatchNorm).findAttr("momentum")->defaultNumber, 0.99);
  EXPECT_DOUBLE_EQ(opDef(OpKind::BatchNorm).findAttr("epsilon")->defaultNumber, 1e-3);
  EXPECT_EQ(opDef(OpKind::Gelu).findAttr("approximate")->defaultString, "none");
  EXPECT_DOUBLE_EQ(opDef(OpKind::Swish).findAttr("beta")->defaultNumber, 1.0);
}

}  // namespace
}  // namespace kiln
