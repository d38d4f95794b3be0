// The cast op: conversions between element types, and its gradient.
#include <gtest/gtest.h>

#include "GradCheck.h"

namespace kiln {
namespace {

TEST(CastTest, ConvertsAndTruncates) {
  auto g = test::parseVerified(R"(
    input { name: "x" dtype: FLOAT32 shape { dim: 4 } }
    input { name: "k" dtype: INT64 shape { dim: 2 } }
    node { name: "i" op: "cast" input: "x" attr { name: "dtype" dtype: INT32 } }
    node { name: "f" op: "cast" input: "k" attr { name: "dtype" dtype: FLOAT64 } }
    output { name: "i" } output { name: "f" })");
  ASSERT_TRUE(g);
  Interpreter interp(*g);
  auto out = interp.run({{"x", Tensor::fromVector<float>({4}, {1.9f, -1.9f, 0.0f, 7.0f})},
                         {"k", Tensor::fromVector<int64_t>({2}, {int64_t{1} << 40, -3})}});
  ASSERT_TRUE(out) << out.error().str();
  // Truncation toward zero: 1.9 -> 1, -1.9 -> -1.
  const Tensor& i = out->at("i");
  EXPECT_EQ(std::vector<int32_t>(i.data<int32_t>(), i.data<int32_t>() + 4), (std::vector<int32_t>{1, -1, 0, 7}));
  const Tensor& f = out->at("f");
  EXPECT_EQ(f.data<double>()[0], 1099511627776.0);  // 2^40 exactly
  EXPECT_EQ(f.data<double>()[1], -3.0);
  auto bad = interp.run({{"x", Tensor::fromVector<float>({4}, {3e9f, 0, 0, 0})},
                         {"k", Tensor::fromVector<int64_t>({2}, {0, 0})}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("cannot cast"), std::string::npos) << bad.error().str();
}

TEST(CastTest, GradientComesBackInTheInputType) {
  auto r = test::checkGradient(R"(
    input { name: "x" dtype: FLOAT64 shape { dim: 2 dim: 3 } }
    node { name: "c" op: "cast" input: "x" attr { name: "dtype" dtype: FLOAT32 } }
    node { name: "y" op: "cast" input: "c" attr { name: "dtype" dtype: FLOAT64 } }
    output { name: "y" })",
                               {{"x", test::randomTensor({2, 3}, 1)}}, {"x"}, 1e-6);
  test::reportGradCheck("cast", "float64->float32->float64", r);
}

}  // namespace
}  // namespace kiln
