// The verifier: op-table conformance, acyclicity and type inference over the whole graph.
#include "ir/Verifier.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <deque>
#include <set>
#include <tuple>
#include <unordered_map>

#include "ir/ShapeInference.h"

namespace kiln {
namespace {

std::string numberStr(double d) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", d);
  return buf;
}

std::string rangeStr(const AttrSpec& s) {
  // kBelowOne / kTiny bounds read as half-open intervals.
  std::string lo = s.lo > 0 && s.lo < 1e-300 ? "(0" : "[" + numberStr(s.lo);
  std::string hi = s.hi < 1 && s.hi > 0.999999 ? "1)" : numberStr(s.hi) + "]";
  return lo + ", " + hi;
}

Status checkOperandCount(const Node& n) {
  const OpDef& d = n.def();
  size_t count = n.numOperands(), lo = d.minOperands(), hi = d.maxOperands();
  if (count >= lo && count <= hi) return Status::ok();
  std::string expected;
  if (hi == SIZE_MAX) expected = "at least " + std::to_string(lo);
  else if (lo == hi) expected = std::to_string(lo);
  else expected = std::to_string(lo) + " or " + std::to_string(hi);
  std::string names;
  for (const OperandSpec& o : d.operands)
    names += (names.empty() ? "" : ", ") + std::string(o.name) + (o.optional ? "?" : "") +
             (o.variadic ? "..." : "");
  return n.error("expected " + expected + " operand" + (hi == 1 && lo == 1 ? "" : "s") + " (" +
                 names + "), found " + std::to_string(count));
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as protobuf
// requires of string fields: anything else could be held in memory but not written to a file.
bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // Allowed range of the second byte.
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return false;
    if (i + len > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return false;
    i += len;
  }
  return true;
}

const char kNotUtf8[] = " is not valid UTF-8 (the file format's strings must be)";

// Orders the nodes so that operands come first (Kahn's algorithm, file order among the ready
// ones). Nodes on a cycle, and nodes reading one, are left out; each cycle is reported once, at
// its node that comes first in the file. Linear in the size of the graph.
std::vector<Node*> orderAndReportCycles(const Graph& g, std::vector<Diagnostic>& errs) {
  std::vector<Node*> nodes = g.nodes();
  std::unordered_map<const Node*, size_t> index;
  std::vector<size_t> pending(nodes.size(), 0);  // operand slots not yet ordered
  for (size_t k = 0; k < nodes.size(); ++k) index[nodes[k]] = k;
  std::deque<Node*> ready;
  for (size_t k = 0; k < nodes.size(); ++k) {
    for (Value* v : nodes[k]->operands())
      if (v) ++pending[k];
    if (pending[k] == 0) ready.push_back(nodes[k]);
  }
  std::vector<Node*> order;
  order.reserve(nodes.size());
  while (!ready.empty()) {
    Node* n = ready.front();
    ready.pop_front();
    order.push_back(n);
    for (size_t r = 0; r < n->numResults(); ++r)
      for (Node* user : n->result(r)->users())  // Once per operand slot, like `pending`.
        if (--pending[index.at(user)] == 0) ready.push_back(user);
  }
  if (order.size() == nodes.size()) return order;

  // Every left-over node reads a left-over node, so following such operands from any of them
  // must come back to a node already on the walk (a new cycle) or reach an earlier walk (a
  // cycle already reported, or a node reading one: not reported again).
  std::vector<size_t> walkOf(nodes.size(), 0);
  size_t walk = 0;
  for (size_t start = 0; start < nodes.size(); ++start) {
    if (pending[start] == 0 || walkOf[start] != 0) continue;
    ++walk;
    std::vector<size_t> path;
    size_t cur = start;
    while (walkOf[cur] == 0) {
      walkOf[cur] = walk;
      path.push_back(cur);
      size_t next = cur;
      for (Value* v : nodes[cur]->operands()) {
        if (!v) continue;
        size_t m = index.at(v->node());
        if (pending[m] != 0) {
          next = m;
          break;
        }
      }
      assert(next != cur || pending[cur] != 0);
      cur = next;
    }
    if (walkOf[cur] != walk) continue;  // Reached an earlier walk.
    std::vector<size_t> cycle(std::find(path.begin(), path.end(), cur), path.end());
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    const Node* first = nodes[cycle[0]];
    std::string text;
    if (cycle.size() == 1) {
      text = "'" + first->name() + "' reads its own result";
    } else {
      constexpr size_t kShown = 8;
      for (size_t k = 0; k < cycle.size() && k < kShown; ++k)
        text += (k == 0 ? "'" : k == 1 ? " reads '" : ", which reads '") +
                nodes[cycle[k]]->name() + "'";
      if (cycle.size() > kShown)
        text += ", ... (" + std::to_string(cycle.size()) + " nodes in all)";
      text += ", which reads '" + first->name() + "'";
    }
    errs.push_back(first->diag("the graph has a cycle: " + text));
  }
  return order;
}

}  // namespace

Status verifyAttrs(Node& n) {
  const OpDef& d = n.def();
  std::vector<Diagnostic> errs;
  std::vector<std::pair<std::string, AttrValue>> coerced;
  for (const auto& [name, value] : n.attrs()) {
    if (name == kFusionGroupAttr) {
      // Generic to every op (not in the op table): the fuse-elementwise pass's group id.
      if (!std::holds_alternative<int64_t>(value) || std::get<int64_t>(value) < 0)
        errs.push_back(n.diag("attribute '" + name + "' must be a non-negative int (a fusion group id), found " +
                              std::string(attrTypeName(attrValueType(value))) + " " + attrValueStr(value)));
      continue;
    }
    const AttrSpec* spec = d.findAttr(name);
    if (!spec) {
      std::string known;
      for (const AttrSpec& a : d.attrs) known += (known.empty() ? "" : ", ") + std::string(a.name);
      errs.push_back(n.diag("unknown attribute '" + name + "'" +
                            (known.empty() ? " (this op takes none)" : " (expected one of: " + known + ")")));
      continue;
    }
    AttrType got = attrValueType(value);
    if (spec->type == AttrType::Float && got == AttrType::Int) {
      coerced.push_back({name, static_cast<double>(std::get<int64_t>(value))});
      got = AttrType::Float;
    }
    if (got != spec->type) {
      errs.push_back(n.diag("attribute '" + name + "' must be " +
                            std::string(attrTypeName(spec->type)) + ", found " +
                            std::string(attrTypeName(got)) + " " + attrValueStr(value)));
      continue;
    }
    if (spec->type == AttrType::Float || spec->type == AttrType::Int) {
      double v = spec->type == AttrType::Float
                     ? (std::holds_alternative<double>(value) ? std::get<double>(value)
                                                              : double(std::get<int64_t>(value)))
                     : static_cast<double>(std::get<int64_t>(value));
      if (!std::isfinite(v))
        errs.push_back(n.diag("attribute '" + name + "' is " + numberStr(v) +
                              "; it must be a finite number"));
      else if (!(v >= spec->lo && v <= spec->hi))
        errs.push_back(n.diag("attribute '" + name + "' is " + numberStr(v) +
                              ", outside its allowed range " + rangeStr(*spec)));
    }
    if (spec->type == AttrType::String && !isValidUtf8(std::get<std::string>(value)))
      errs.push_back(n.diag("attribute '" + name + "'" + kNotUtf8));
    else if (spec->type == AttrType::String && !spec->choices.empty()) {
      const std::string& v = std::get<std::string>(value);
      bool ok = false;
      std::string_view rest = spec->choices;
      while (true) {
        size_t bar = rest.find('|');
        if (rest.substr(0, bar) == v) ok = true;
        if (bar == std::string_view::npos) break;
        rest.remove_prefix(bar + 1);
      }
      if (!ok) {
        std::string shown(spec->choices);
        if (shown.starts_with('|')) shown = shown.substr(1);
        errs.push_back(n.diag("attribute '" + name + "' is \"" + v + "\", expected one of " + shown));
      }
    }
    if (spec->type == AttrType::Floats)
      for (double v : std::get<std::vector<double>>(value))
        if (!std::isfinite(v)) {
          errs.push_back(n.diag("attribute '" + name + "' holds a non-finite number"));
          break;
        }
  }
  for (auto& [name, v] : coerced) n.setAttr(name, std::move(v));
  for (const AttrSpec& spec : d.attrs)
    if (spec.required && !n.hasAttr(spec.name))
      errs.push_back(n.diag("missing required attribute '" + std::string(spec.name) + "' (" +
                            std::string(attrTypeName(spec.type)) + ")"));
  if (!errs.empty()) return Error(std::move(errs));
  return Status::ok();
}

Status verifyGraph(Graph& g) {
  std::vector<Diagnostic> errs;
  auto absorb = [&errs](Status s) {
    if (s.isOk()) return true;
    for (const Diagnostic& d : s.error().diagnostics()) errs.push_back(d);
    return false;
  };
  std::set<const Node*> bad;
  if (!isValidUtf8(g.name()))
    errs.push_back(Diagnostic{{g.sourceFile()}, {}, {}, "the graph's name" + std::string(kNotUtf8)});
  for (const GraphOutput& o : g.outputs())
    if (!isValidUtf8(o.name))
      errs.push_back(Diagnostic{{g.sourceFile()}, {}, {}, "output name '" + o.name + "'" + kNotUtf8});
  for (Node* n : g.nodes()) {
    bool ok = absorb(checkOperandCount(*n));
    if (!isValidUtf8(n->name())) {
      errs.push_back(n->diag("the node's name" + std::string(kNotUtf8)));
      ok = false;
    }
    for (Value* v : n->operands())
      if (!v) {
        errs.push_back(n->diag("has an unset operand"));
        ok = false;
      }
    ok = absorb(verifyAttrs(*n)) && ok;
    if (!ok) bad.insert(n);
  }
  if (g.outputs().empty())
    errs.push_back(Diagnostic{{g.sourceFile()}, {}, {}, "the graph has no outputs"});
  for (Node* n : orderAndReportCycles(g, errs)) {
    if (bad.count(n)) continue;
    bool skip = false;
    for (Value* v : n->operands())
      if (bad.count(v->node())) skip = true;
    if (skip) {
      bad.insert(n);  // Its operand's error was reported; do not pile on.
      continue;
    }
    Expected<std::vector<TensorType>> types = inferResultTypes(*n);
    if (!types) {
      absorb(types.takeError());
      bad.insert(n);
      continue;
    }
    bool fits = true;
    for (size_t i = 0; i < types->size() && fits; ++i) {
      const TensorType& t = (*types)[i];
      std::string e = checkTensorLimits(
          t.shape, "result '" + n->result(i)->name() + "' (" + std::string(dtypeName(t.dtype)) + ")");
      if (!e.empty()) {
        errs.push_back(n->diag(e));
        fits = false;
      }
    }
    if (!fits) {
      bad.insert(n);
      continue;
    }
    for (size_t i = 0; i < types->size(); ++i) n->result(i)->setType((*types)[i]);
  }
  if (errs.empty()) return Status::ok();
  // In file order (the checks above run in several sweeps); unlocated ones last.
  std::stable_sort(errs.begin(), errs.end(), [](const Diagnostic& a, const Diagnostic& b) {
    auto key = [](const Diagnostic& d) {
      return std::make_tuple(d.loc.line == 0, d.loc.line, d.loc.column);
    };
    return key(a) < key(b);
  });
  return Error(std::move(errs));
}

}  // namespace kiln
