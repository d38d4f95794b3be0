// The inline float32 transcendentals (compiler/codegen/MathEmitter.h) against double-precision
// libm over a wide range, extremes and special values included: the maximum relative error and
// the maximum error in ulps stated in MathEmitter.h must hold for every normal result.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>

#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>

#include <tuple>

#include "CodegenTestUtil.h"
#include "compiler/codegen/Optimize.h"
#include "compiler/codegen/Target.h"
#include "compiler/interpreter/Kernels.h"
#include "ir/Builder.h"

namespace kiln {
namespace {

/// Arguments: a dense linear sweep of [lo, hi], log-spaced magnitudes from the smallest
/// subnormal to the largest float (both signs unless `positiveOnly`), and the special values.
std::vector<float> arguments(double lo, double hi, bool positiveOnly) {
  std::vector<float> v;
  for (int i = 0; i <= 200000; ++i) v.push_back(float(lo + (hi - lo) * i / 200000.0));
  for (double e = -149; e <= 128; e += 0.01) {
    float m = float(std::ldexp(1.0, int(std::floor(e))) * std::exp2(e - std::floor(e)));
    if (std::isinf(m)) continue;
    v.push_back(m);
    if (!positiveOnly) v.push_back(-m);
  }
  for (float s : {0.0f, -0.0f, FLT_MIN, FLT_MAX, -FLT_MAX, FLT_TRUE_MIN, INFINITY, -INFINITY, NAN})
    v.push_back(s);
  return v;
}

struct MathCase {
  const char* name;
  OpKind op;
  double (*ref)(double);
  double lo, hi;
  bool positiveOnly;
  double maxRelError;  // As stated in MathEmitter.h.
  double maxUlps;      // Likewise, in units of the float spacing at the true result.
};

double sigmoidRef(double x) { return stableSigmoid(x); }
double softplusRef(double x) { return stableSoftplus(x); }
double expm1Ref(double x) { return x < 0 ? std::expm1(x) : x; }  // elu with alpha 1

/// The distance between float(want) and its neighbour away from zero: an error of one ulp.
double ulpOf(double want) {
  float w = std::abs(float(want));
  return double(std::nextafter(w, INFINITY)) - double(w);
}

class CodegenMathTest : public ::testing::TestWithParam<MathCase> {};

TEST_P(CodegenMathTest, RelativeErrorOverTheWholeRange) {
  const MathCase& mc = GetParam();
  Graph g(mc.name);
  Builder b(g);
  g.addOutput("y", b.op(mc.op, {b.input("x", DType::Float32, {-1})}));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(verifyGraph(g));
  auto jit = codegen::JitGraph::compile(g);
  ASSERT_TRUE(jit) << jit.error().str();
  std::vector<float> xs = arguments(mc.lo, mc.hi, mc.positiveOnly);
  Tensor x = Tensor::fromVector<float>({int64_t(xs.size())}, xs);
  auto r = (*jit)->run({{"x", x}}, {});
  ASSERT_TRUE(r) << r.error().str();
  const float* y = r->at("y").data<float>();
  double worst = 0, worstUlps = 0;
  float worstAt = 0, worstUlpsAt = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    double want = mc.ref(double(xs[i]));
    double got = y[i];
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << mc.name << "(" << xs[i] << ") = " << got;
      continue;
    }
    // The true value rounded to float: infinities and zeros must come out exactly.
    float wantF = float(want);
    if (std::isinf(wantF) || wantF == 0) {
      EXPECT_EQ(got, double(wantF)) << mc.name << "(" << xs[i] << ")";
      continue;
    }
    if (std::abs(want) < FLT_MIN) {  // Subnormal results: within two subnormal steps.
      EXPECT_LE(std::abs(got - want), 2 * double(FLT_TRUE_MIN)) << mc.name << "(" << xs[i] << ")";
      continue;
    }
    double rel = std::abs(got - want) / std::abs(want);
    if (rel > worst) worst = rel, worstAt = xs[i];
    double ulps = std::abs(got - want) / ulpOf(want);
    if (ulps > worstUlps) worstUlps = ulps, worstUlpsAt = xs[i];
  }
  EXPECT_LE(worst, mc.maxRelError) << mc.name << " worst at x = " << worstAt;
  EXPECT_LE(worstUlps, mc.maxUlps) << mc.name << " worst at x = " << worstUlpsAt;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%.3g at %.9g, %.3g ulp at %.9g", worst, double(worstAt), worstUlps,
                double(worstUlpsAt));
  RecordProperty("max_error", buf);
  std::printf("%s: max relative error %s\n", mc.name, buf);
}

constexpr double kUlp = 1.0 / (1 << 24);  // Half the float epsilon: the unit of rounding.

INSTANTIATE_TEST_SUITE_P(
    Codegen, CodegenMathTest,
    ::testing::Values(
        MathCase{"exp", OpKind::Exp, [](double x) { return std::exp(x); }, -105, 90, false, 2 * 2 * kUlp, 2},
        MathCase{"expm1", OpKind::Elu, expm1Ref, -20, 1, false, 2 * 2 * kUlp, 2},
        MathCase{"log", OpKind::Log, [](double x) { return std::log(x); }, 0, 100, true, 2 * 2 * kUlp, 2},
        MathCase{"tanh", OpKind::Tanh, [](double x) { return std::tanh(x); }, -12, 12, false, 3 * 2 * kUlp, 3},
        MathCase{"sigmoid", OpKind::Sigmoid, sigmoidRef, -110, 110, false, 3 * 2 * kUlp, 3},
        MathCase{"softplus", OpKind::Softplus, softplusRef, -110, 110, false, 3 * 2 * kUlp, 3},
        MathCase{"erf", OpKind::Erf, [](double x) { return std::erf(x); }, -6, 6, false, 4e-7, 3}),
    [](const ::testing::TestParamInfo<MathCase>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

/// Whether preferWidestVectors marks a one-function module for `triple`/`cpu` as 512 bits wide.
Expected<bool> prefers512(const std::string& triple, const std::string& cpu) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<llvm::TargetMachine> tm,
                        codegen::createTargetMachine({triple, cpu, 3}));
  llvm::LLVMContext ctx;
  llvm::Module m("m", ctx);
  auto* f = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), false),
                                   llvm::GlobalValue::ExternalLinkage, "f", m);
  llvm::BasicBlock::Create(ctx, "entry", f);
  codegen::preferWidestVectors(m, *tm);
  return f->getFnAttribute("prefer-vector-width").getValueAsString() == "512";
}

// The 512-bit preference goes only to x86 CPUs with AVX-512F: AVX2-only and generic x86-64 and
// AArch64 CPUs keep LLVM's choice.
TEST(CodegenVectorWidthTest, WideVectorsOnlyWithAvx512) {
  for (auto [triple, cpu, want] : {std::tuple{"x86_64-linux-gnu", "skylake-avx512", true},
                                   std::tuple{"x86_64-linux-gnu", "rocketlake", true},
                                   std::tuple{"x86_64-linux-gnu", "x86-64-v3", false},
                                   std::tuple{"x86_64-linux-gnu", "generic", false},
                                   std::tuple{"aarch64-linux-gnu", "neoverse-v1", false},
                                   std::tuple{"aarch64-linux-gnu", "generic", false}}) {
    auto got = prefers512(triple, cpu);
    ASSERT_TRUE(got) << got.error().str();
    EXPECT_EQ(*got, want) << triple << " " << cpu;
  }
}

}  // namespace
}  // namespace kiln
