// The in-memory graph, protobuf round trips and the op-level example.
#include <gtest/gtest.h>

#include "TestUtil.h"

namespace kiln {
namespace {

TEST(GraphTest, ExampleMlpVerifiesAndInfersShapes) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g) << g.error().str();
  Status s = verifyGraph(**g);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_EQ((*g)->outputs().size(), 1u);
  EXPECT_EQ((*g)->outputs()[0].value->type().str(), "float32[-1,10]");
  EXPECT_EQ((*g)->findValue("batch_normalization_1:1")->type().str(), "float32[300]");
}

TEST(GraphTest, TextRoundTripIsStable) {
  auto g = readGraphFile(test::sourcePath("examples/fashion_mlp/fashion_mlp.graph.pbtxt"));
  ASSERT_TRUE(g);
  std::string once = graphToText(**g);
  auto g2 = parseGraph(once, GraphFormat::Text, "once.pbtxt");
  ASSERT_TRUE(g2) << g2.error().str();
  EXPECT_EQ(graphToText(**g2), once);
  // Binary round trip gives the same graph.
  auto g3 = parseGraph(graphToBinary(**g2), GraphFormat::Binary, "once.pb");
  ASSERT_TRUE(g3) << g3.error().str();
  EXPECT_EQ(graphToText(**g3), once);
}

TEST(GraphTest, RegularizationAttributesRoundTrip) {
  const char* text = R"(
    parameter { name: "w" shape { dim: 3 dim: 2 } trainable: true l1: 0.001 l2: 0.01 max_norm: 2 }
    output { name: "w" })";
  auto g = test::parseVerified(text);
  ASSERT_TRUE(g);
  Node* w = g->findNode("w");
  EXPECT_DOUBLE_EQ(w->f("l1"), 0.001);
  EXPECT_DOUBLE_EQ(w->f("l2"), 0.01);
  EXPECT_DOUBLE_EQ(w->f("max_norm"), 2.0);
  for (GraphFormat f : {GraphFormat::Text, GraphFormat::Binary}) {
    auto back = parseGraph(f == GraphFormat::Text ? graphToText(*g) : graphToBinary(*g), f, "w");
    ASSERT_TRUE(back) << back.error().str();
    EXPECT_DOUBLE_EQ((*back)->findNode("w")->f("l2"), 0.01);
    EXPECT_DOUBLE_EQ((*back)->findNode("w")->f("max_norm"), 2.0);
  }
}

TEST(GraphTest, UseListsFollowEdits) {
  Graph g("t");
  Node* x = g.addNode(OpKind::Input, "x");
  Node* a = g.addNode(OpKind::Relu, "a", {x->result()});
  Node* b = g.addNode(OpKind::Add, "b", {a->result(), a->result()});
  EXPECT_EQ(a->result()->users().size(), 2u);
  Node* c = g.addNode(OpKind::Tanh, "c", {x->result()});
  g.replaceAllUsesWith(a->result(), c->result());
  EXPECT_TRUE(a->result()->users().empty());
  EXPECT_EQ(c->result()->users().size(), 2u);
  EXPECT_EQ(b->operand(1), c->result());
  g.eraseNode(a);
  EXPECT_EQ(g.findNode("a"), nullptr);
  EXPECT_EQ(x->result()->users().size(), 1u);
}

}  // namespace
}  // namespace kiln
