// The verifier on graphs that must pass, and on how it reports several errors: every independent
// one, none that only follows from another.
#include <gtest/gtest.h>

#include <string>

#include "TestUtil.h"
#include "ir/ShapeInference.h"

namespace kiln {
namespace {

using test::parseVerified;
using test::verifyError;

size_t countOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

size_t lines(const std::string& text) { return text.empty() ? 0 : countOf(text, "\n") + 1; }

TEST(VerifierTest, IntegerAdd) {
  auto g = parseVerified(R"(
    input { name: "a" dtype: INT32 shape { dim: -1 dim: 3 } }
    input { name: "b" dtype: INT32 shape { dim: 3 } }
    node { name: "s" op: "add" input: "a" input: "b" }
    output { name: "s" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->findValue("s")->type().str(), "int32[-1,3]");
}

TEST(VerifierTest, BroadcastingWithTheBatchDimension) {
  auto g = parseVerified(R"(
    input { name: "x" shape { dim: -1 dim: 1 } }
    input { name: "y" shape { dim: -1 dim: 4 } }
    parameter { name: "row" shape { dim: 1 dim: 5 } }
    node { name: "outer" op: "mul" input: "x" input: "row" }
    node { name: "same" op: "sub" input: "y" input: "y" }
    node { name: "scalar" op: "constant" attr { name: "value" floats { v: 2 } } }
    node { name: "scaled" op: "mul" input: "same" input: "scalar" }
    output { name: "outer" }
    output { name: "scaled" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->findValue("outer")->type().str(), "float32[-1,5]");
  EXPECT_EQ(g->findValue("scaled")->type().str(), "float32[-1,4]");
}

TEST(VerifierTest, BatchDimensionOnlyBroadcastsWithOneOrItself) {
  EXPECT_NE(verifyError(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    parameter { name: "p" shape { dim: 8 dim: 4 } }
    node { name: "s" op: "add" input: "x" input: "p" }
    output { name: "s" }
  )").find("shapes do not broadcast"), std::string::npos);
}

TEST(VerifierTest, ForwardReferencesToLaterNodesAreAllowed) {
  auto g = parseVerified(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "second" op: "tanh" input: "first" }
    node { name: "first" op: "relu" input: "x" }
    output { name: "second" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->findValue("second")->type().str(), "float32[-1,4]");
}

TEST(VerifierTest, IntegerGivenForFloatAttributeIsAccepted) {
  auto g = parseVerified(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "a" op: "leaky_relu" input: "x" attr { name: "alpha" i: 2 } }
    output { name: "a" }
  )");
  ASSERT_TRUE(g);
  Node* a = g->findNode("a");
  EXPECT_EQ(a->f("alpha"), 2.0);
  // The verifier stores it as a float, so later passes see the op table's type.
  EXPECT_EQ(attrValueType(a->attrs().at("alpha")), AttrType::Float);
}

TEST(VerifierTest, VerifyingTwiceIsFine) {
  auto g = parseVerified(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "a" op: "elu" input: "x" attr { name: "alpha" i: 1 } }
    output { name: "a" }
  )");
  ASSERT_TRUE(g);
  Status s = verifyGraph(*g);
  EXPECT_TRUE(s) << s.error().str();
}

TEST(VerifierTest, UnicodeNamesAreFine) {
  // Valid UTF-8 of every length (2, 3 and 4 bytes); only invalid sequences are rejected.
  auto g = parseVerified(R"(
    name: "modèle"
    input { name: "entrée" shape { dim: -1 dim: 4 } }
    node { name: "层1" op: "relu" input: "entrée" }
    node { name: "🔥" op: "tanh" input: "层1" }
    output { name: "sortie" tensor: "🔥" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->outputs()[0].value->type().str(), "float32[-1,4]");
}

TEST(VerifierTest, ReportsEveryIndependentErrorButNoCascades) {
  // Two bad nodes, each with a user that would fail too if it were checked with a guessed type.
  std::string err = verifyError(R"(
    input { name: "x" shape { dim: -1 dim: 784 } }
    parameter { name: "w" shape { dim: 300 dim: 100 } }
    node { name: "dense" op: "matmul" input: "x" input: "w" }
    node { name: "after_dense" op: "softmax" input: "dense" attr { name: "axis" f: 0.5 } }
    node { name: "drop" op: "dropout" input: "x" attr { name: "rate" f: 1.5 } }
    node { name: "after_drop" op: "add" input: "drop" input: "w" }
    node { name: "fine" op: "relu" input: "x" }
    output { name: "after_dense" }
    output { name: "after_drop" }
    output { name: "fine" }
  )", "multi.pbtxt");
  EXPECT_EQ(lines(err), 3u) << err;  // 'after_dense' has its own bad attribute.
  EXPECT_NE(err.find("multi.pbtxt:4:5: error: node 'dense' (matmul): matmul shapes do not match"),
            std::string::npos) << err;
  EXPECT_NE(err.find("multi.pbtxt:5:5: error: node 'after_dense' (softmax)"), std::string::npos)
      << err;
  EXPECT_NE(err.find("node 'drop' (dropout): attribute 'rate' is 1.5"), std::string::npos) << err;
  EXPECT_EQ(err.find("after_drop"), std::string::npos) << err;
  // Reported in file order.
  EXPECT_LT(err.find("'dense'"), err.find("'drop'")) << err;
}

TEST(VerifierTest, AttributeErrorsAreReportedEvenWhenShapesFailToo) {
  std::string err = verifyError(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "a" op: "softmax" input: "x" attr { name: "axis" f: 0.5 } attr { name: "bogus" i: 1 } }
    output { name: "a" }
  )");
  EXPECT_EQ(lines(err), 2u) << err;
  EXPECT_NE(err.find("attribute 'axis' must be int"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown attribute 'bogus'"), std::string::npos) << err;
}

TEST(VerifierTest, UnknownOpIsReportedOnceNotAtEveryUser) {
  std::string err = verifyError(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "a" op: "sigmod" input: "x" }
    node { name: "b" op: "relu" input: "a" }
    node { name: "c" op: "add" input: "a" input: "b" }
    output { name: "c" }
    output { name: "a" }
  )");
  EXPECT_EQ(lines(err), 1u) << err;
  EXPECT_NE(err.find("unknown op 'sigmod'; did you mean 'sigmoid'?"), std::string::npos) << err;
}

TEST(VerifierTest, EachCycleIsReportedOnceAndOtherErrorsStillAre) {
  std::string err = verifyError(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "a" op: "add" input: "x" input: "b" }
    node { name: "b" op: "relu" input: "a" }
    node { name: "reads_cycle" op: "tanh" input: "b" }
    node { name: "loop" op: "relu" input: "loop" }
    node { name: "bad" op: "softmax" input: "x" attr { name: "axis" i: 3 } }
    output { name: "reads_cycle" }
    output { name: "loop" }
    output { name: "bad" }
  )", "cycles.pbtxt");
  EXPECT_EQ(lines(err), 3u) << err;
  EXPECT_NE(err.find("cycles.pbtxt:3:5: error: node 'a' (add): the graph has a cycle: 'a' reads "
                     "'b', which reads 'a'"),
            std::string::npos) << err;
  EXPECT_NE(err.find("node 'loop' (relu): the graph has a cycle: 'loop' reads its own result"),
            std::string::npos) << err;
  EXPECT_NE(err.find("node 'bad' (softmax): axis 3 is out of range"), std::string::npos) << err;
  EXPECT_EQ(err.find("reads_cycle'"), std::string::npos) << err;
}

TEST(VerifierTest, LongCycleMessageIsShortened) {
  Graph g("ring");
  const int kLength = 1000;
  Node* in = g.addNode(OpKind::Input, "x");
  in->setAttr("shape", std::vector<int64_t>{-1, 4});
  std::vector<Node*> ring;
  for (int k = 0; k < kLength; ++k)
    ring.push_back(g.addNode(OpKind::Relu, "r" + std::to_string(k), {in->result()}));
  for (int k = 0; k < kLength; ++k) ring[k]->setOperand(0, ring[(k + 1) % kLength]->result());
  g.addOutput("y", ring[0]->result());
  Status s = verifyGraph(g);
  ASSERT_FALSE(s);
  ASSERT_EQ(s.error().diagnostics().size(), 1u) << s.error().str();
  EXPECT_NE(s.error().str().find("(1000 nodes in all)"), std::string::npos) << s.error().str();
}

TEST(VerifierTest, DeepChainVerifiesWithoutRecursion) {
  // Deep graphs must neither overflow the stack nor take more than linear time.
  Graph g("chain");
  Node* n = g.addNode(OpKind::Input, "x");
  n->setAttr("shape", std::vector<int64_t>{-1, 4});
  for (int k = 0; k < 100000; ++k) n = g.addNode(OpKind::Relu, "r" + std::to_string(k), {n->result()});
  g.addOutput("y", n->result());
  Status s = verifyGraph(g);
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(n->result()->type().str(), "float32[-1,4]");
}

TEST(VerifierTest, ElementCountLimit) {
  EXPECT_EQ(boundedElementCount({-1, 2, 3}), 6);
  EXPECT_EQ(boundedElementCount({}), 1);
  EXPECT_EQ(boundedElementCount({kMaxTensorElements}), kMaxTensorElements);
  EXPECT_EQ(boundedElementCount({kMaxTensorElements, 2}), std::nullopt);
  EXPECT_EQ(boundedElementCount({int64_t{1} << 32, int64_t{1} << 32}), std::nullopt);  // wraps to 0
  EXPECT_EQ(boundedElementCount({INT64_MAX, INT64_MAX}), std::nullopt);
  EXPECT_EQ(boundedElementCount({4, 0}), std::nullopt);
  EXPECT_EQ(boundedElementCount({4, -7}), std::nullopt);

  // Exactly at the limit is fine; one more is not, and the message says what the limit is.
  EXPECT_EQ(verifyError(R"(
    parameter { name: "w" shape { dim: 2147483648 } }
    output { name: "w" }
  )"), "");
  std::string err = verifyError(R"(
    parameter { name: "w" shape { dim: 2 dim: 1073741825 } }
    output { name: "w" }
  )");
  EXPECT_NE(err.find("has more than 2^31 (2147483648) elements, the limit for one tensor"),
            std::string::npos) << err;
}

TEST(VerifierTest, ConcatCannotGrowPastTheLimit) {
  std::string err = verifyError(R"(
    parameter { name: "w" shape { dim: 2147483000 } }
    node { name: "c" op: "concat" input: "w" input: "w" input: "w" attr { name: "axis" i: 0 } }
    output { name: "c" }
  )");
  EXPECT_NE(err.find("node 'c' (concat): the concatenation has more than 2^31 elements"),
            std::string::npos) << err;
}

TEST(VerifierTest, RankLimit) {
  auto withRank = [](int rank) {
    std::string dims;
    for (int k = 0; k < rank; ++k) dims += "dim: 1 ";
    return "input { name: \"x\" shape { dim: -1 " + dims + "} }\n"
           "node { name: \"r\" op: \"relu\" input: \"x\" }\noutput { name: \"r\" }\n";
  };
  EXPECT_EQ(verifyError(withRank(kMaxTensorRank - 1)), "");
  EXPECT_NE(verifyError(withRank(kMaxTensorRank)).find("at most 32 dimensions"), std::string::npos);
}

TEST(VerifierTest, ReshapeInfersTheMissingDimensionOfAStaticShape) {
  auto g = parseVerified(R"(
    parameter { name: "w" shape { dim: 6 dim: 4 } }
    node { name: "r" op: "reshape" input: "w" attr { name: "shape" ints { v: 3 v: -1 } } }
    output { name: "r" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->findValue("r")->type().str(), "float32[3,8]");
}

TEST(VerifierTest, BinaryGraphWithOutOfRangeDtypeIsRejected) {
  // proto3 enums are open: a binary file can carry any number where a dtype belongs, and 257
  // must not wrap around to float32. Spelled out in the wire format:
  //   input { name: "x" dtype: 257 shape { dim: 2 } }  output { name: "x" }
  const std::string bytes =
      "\x12\x0b"                  // Graph.input, 11 bytes
      "\x0a\x01x"                 //   name: "x"
      "\x10\x81\x02"              //   dtype: 257
      "\x1a\x03\x0a\x01\x02"      //   shape { dim: 2 } (packed)
      "\x2a\x03\x0a\x01x";        // Graph.output { name: "x" }
  auto parsed = parseGraph(bytes, GraphFormat::Binary, "t.pb");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().str(), "t.pb: error: node 'x' (input): invalid dtype (257)");
}

TEST(VerifierTest, InitValuesMustFitTheParameterType) {
  // A float32 parameter would hold 1e300 as inf; a float64 one holds it exactly and its file
  // (kiln.proto stores values as double) reads back the same.
  for (DType dt : {DType::Float32, DType::Float64}) {
    Graph g("t");
    Node* w = g.addNode(OpKind::Parameter, "w");
    w->setAttr("shape", std::vector<int64_t>{2});
    w->setAttr("dtype", dt);
    w->setAttr("init", std::string("values"));
    w->setAttr("init_values", std::vector<double>{1.0, 1e300});
    g.addOutput("w", w->result());
    Status s = verifyGraph(g);
    if (dt == DType::Float64) {
      ASSERT_TRUE(s) << s.error().str();
      auto back = parseGraph(graphToBinary(g), GraphFormat::Binary, "w.pb");
      ASSERT_TRUE(back) << back.error().str();
      EXPECT_EQ((*back)->findNode("w")->floats("init_values")[1], 1e300);
      continue;
    }
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().str().find("node 'w' (parameter): init 'values' holds 1e+300, which is "
                                   "outside the range of float32"),
              std::string::npos) << s.error().str();
  }
}

TEST(VerifierTest, EmptyListAttributeRoundTrips) {
  // Found by the fuzzer's round-trip check: `axes: []` was written as an attribute with no value.
  auto g = parseVerified(R"(
    input { name: "x" shape { dim: -1 dim: 4 } }
    node { name: "r" op: "reduce_max" input: "x" attr { name: "axes" ints { } } }
    output { name: "r" }
  )");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->findValue("r")->type().str(), "float32[]");
  for (GraphFormat format : {GraphFormat::Text, GraphFormat::Binary}) {
    std::string bytes = format == GraphFormat::Text ? graphToText(*g) : graphToBinary(*g);
    auto back = parseGraph(bytes, format, "back");
    ASSERT_TRUE(back) << back.error().str();
    Status s = verifyGraph(**back);
    ASSERT_TRUE(s) << s.error().str();
    EXPECT_EQ((*back)->findValue("r")->type().str(), "float32[]");
  }
}

}  // namespace
}  // namespace kiln
