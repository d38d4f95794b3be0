// libFuzzer target for the graph reader and the verifier. Whatever the bytes, parsing and
// verifying must come back with a graph or an Error: never crash, hang, leak or abort.
//
// The first byte picks the mode (the rest of the input is its data):
//   xxxxxx0  protobuf text, as in a .pbtxt file
//   xxxxx01  binary protobuf, as in a .pb file
//   xxxxx11  a graph built in memory from the bytes (ops, operands, shapes and attributes
//            chosen by them, with huge, negative and wrong-typed values and the odd cycle).
//            Byte mutations rarely turn text into a graph that gets past the parser; this mode
//            reaches shape inference directly.
// In every mode, a graph that verifies must also survive a text and a binary round trip and
// verify again with the same types.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ProtoIO.h"
#include "ir/Verifier.h"

namespace {

using namespace kiln;

int64_t pickInt(FuzzedDataProvider& p) {
  static constexpr int64_t kInteresting[] = {
      -1, 0, 1, 2, -2, 3, 784, int64_t{1} << 16, int64_t{1} << 31, (int64_t{1} << 31) + 1,
      int64_t{1} << 32, 3037000500, int64_t{1} << 62, std::numeric_limits<int64_t>::max(),
      std::numeric_limits<int64_t>::min()};
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: return p.PickValueInArray(kInteresting);
    case 1: return p.ConsumeIntegral<int64_t>();
    case 2: return -1;
    default: return p.ConsumeIntegralInRange<int64_t>(1, 6);
  }
}

double pickDouble(FuzzedDataProvider& p) {
  static constexpr double kInteresting[] = {
      0.0, 1.0, -1.0, 0.5, 1e-3, 0.99, 1e300, -1e300, 1e-320, 3.5e38,
      std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()};
  if (p.ConsumeBool()) return p.PickValueInArray(kInteresting);
  return p.ConsumeFloatingPoint<double>();
}

std::vector<int64_t> pickInts(FuzzedDataProvider& p) {
  std::vector<int64_t> v(p.ConsumeIntegralInRange<size_t>(0, 5));
  for (int64_t& x : v) x = pickInt(p);
  return v;
}

DType pickDType(FuzzedDataProvider& p) {
  return static_cast<DType>(p.ConsumeIntegralInRange<int>(1, 5));
}

AttrValue pickAttr(FuzzedDataProvider& p, const AttrSpec& spec) {
  AttrType type = spec.type;
  if (p.ConsumeIntegralInRange<int>(0, 15) == 0)  // now and then the wrong type
    type = static_cast<AttrType>(p.ConsumeIntegralInRange<int>(0, 6));
  switch (type) {
    case AttrType::Int: return pickInt(p);
    case AttrType::Float: return pickDouble(p);
    case AttrType::Bool: return p.ConsumeBool();
    case AttrType::DType: return pickDType(p);
    case AttrType::Ints: return pickInts(p);
    case AttrType::Floats: {
      std::vector<double> v(p.ConsumeIntegralInRange<size_t>(0, 6));
      for (double& x : v) x = pickDouble(p);
      return v;
    }
    case AttrType::String: {
      // One of the choices, mostly.
      std::vector<std::string> choices;
      std::string_view rest = spec.choices;
      while (!rest.empty()) {
        size_t bar = rest.find('|');
        choices.emplace_back(rest.substr(0, bar));
        if (bar == std::string_view::npos) break;
        rest.remove_prefix(bar + 1);
      }
      if (!choices.empty() && p.ConsumeIntegralInRange<int>(0, 7) != 0)
        return choices[p.ConsumeIntegralInRange<size_t>(0, choices.size() - 1)];
      return p.ConsumeRandomLengthString(8);
    }
  }
  return int64_t{0};
}

void setAttrs(FuzzedDataProvider& p, Node* n) {
  for (const AttrSpec& spec : n->def().attrs)
    if (p.ConsumeIntegralInRange<int>(0, 3) != 0 || (spec.required && p.ConsumeBool()))
      n->setAttr(std::string(spec.name), pickAttr(p, spec));
  if (p.ConsumeIntegralInRange<int>(0, 31) == 0) n->setAttr("bogus", int64_t{1});
}

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s\n%s\n", what, detail.c_str());
  std::abort();
}

// A verified graph must read back from its own text and binary forms with the same types.
void checkRoundTrip(const Graph& g) {
  for (GraphFormat format : {GraphFormat::Text, GraphFormat::Binary}) {
    bool text = format == GraphFormat::Text;
    std::string bytes = text ? graphToText(g) : graphToBinary(g);
    auto back = parseGraph(bytes, format, text ? "roundtrip.pbtxt" : "roundtrip.pb");
    if (!back) fail("a verified graph does not parse back:", back.error().str() + "\n" + graphToText(g));
    Status s = verifyGraph(**back);
    if (!s) fail("a verified graph does not verify after a round trip:", s.error().str() + "\n" + graphToText(g));
    for (Node* n : g.nodes()) {
      Node* m = (*back)->findNode(n->name());
      if (!m || m->numResults() != n->numResults()) fail("round trip lost a node:", n->name());
      for (size_t r = 0; r < n->numResults(); ++r)
        if (n->result(r)->type() != m->result(r)->type())
          fail("round trip changed a type:", n->result(r)->name() + ": " +
                                                 n->result(r)->type().str() + " vs " +
                                                 m->result(r)->type().str());
    }
  }
}

void buildAndVerify(FuzzedDataProvider& p) {
  Graph g("fuzz");
  std::vector<Value*> values;
  std::vector<Node*> built;
  int counter = 0;
  auto name = [&] { return "n" + std::to_string(counter++); };
  for (int k = p.ConsumeIntegralInRange<int>(0, 3); k > 0; --k) {
    Node* n = g.addNode(OpKind::Input, name());
    if (p.ConsumeIntegralInRange<int>(0, 15) != 0) n->setAttr("shape", pickInts(p));
    if (p.ConsumeBool()) n->setAttr("dtype", pickDType(p));
    values.push_back(n->result());
  }
  for (int k = p.ConsumeIntegralInRange<int>(0, 3); k > 0; --k) {
    Node* n = g.addNode(OpKind::Parameter, name());
    setAttrs(p, n);
    if (!n->hasAttr("shape") && p.ConsumeBool()) n->setAttr("shape", pickInts(p));
    values.push_back(n->result());
  }
  std::span<const OpDef> ops = allOpDefs();
  for (int k = p.ConsumeIntegralInRange<int>(0, 12); k > 0 && p.remaining_bytes() > 0; --k) {
    const OpDef& def = ops[p.ConsumeIntegralInRange<size_t>(0, ops.size() - 1)];
    if (def.kind == OpKind::Input || def.kind == OpKind::Parameter) continue;
    size_t lo = def.minOperands();
    size_t hi = std::min<size_t>(def.maxOperands(), lo + 3);
    size_t count = p.ConsumeIntegralInRange<size_t>(lo, hi);
    if (p.ConsumeIntegralInRange<int>(0, 31) == 0) count = count ? count - 1 : 1;
    std::vector<Value*> operands;
    for (size_t i = 0; i < count && !values.empty(); ++i)
      operands.push_back(values[p.ConsumeIntegralInRange<size_t>(0, values.size() - 1)]);
    Node* n = g.addNode(def.kind, name(), operands);
    setAttrs(p, n);
    for (size_t r = 0; r < n->numResults(); ++r) values.push_back(n->result(r));
    built.push_back(n);
  }
  // Now and then an edge back to a later node: a cycle, or a self-loop.
  if (!built.empty() && p.ConsumeIntegralInRange<int>(0, 7) == 0) {
    Node* n = built[p.ConsumeIntegralInRange<size_t>(0, built.size() - 1)];
    if (n->numOperands() > 0)
      n->setOperand(p.ConsumeIntegralInRange<size_t>(0, n->numOperands() - 1),
                    built[p.ConsumeIntegralInRange<size_t>(0, built.size() - 1)]->result());
  }
  for (int k = p.ConsumeIntegralInRange<int>(0, 3); k > 0 && !values.empty(); --k)
    g.addOutput("out" + std::to_string(k),
                values[p.ConsumeIntegralInRange<size_t>(0, values.size() - 1)]);

  Status s = verifyGraph(g);
  if (!s) {
    (void)s.error().str();
    return;
  }
  checkRoundTrip(g);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  if ((mode & 3) == 3) {
    FuzzedDataProvider p(data + 1, size - 1);
    buildAndVerify(p);
    return 0;
  }
  const bool binary = (mode & 1) != 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto g = parseGraph(bytes, binary ? GraphFormat::Binary : GraphFormat::Text,
                      binary ? "fuzz.pb" : "fuzz.pbtxt");
  if (!g) {
    (void)g.error().str();
    return 0;
  }
  Status s = verifyGraph(**g);
  if (!s) {
    (void)s.error().str();
    return 0;
  }
  checkRoundTrip(**g);
  return 0;
}
