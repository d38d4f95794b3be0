// The in-memory graph: construction, use lists, lookups and topological order.
#include "ir/Graph.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstdio>

namespace kiln {

AttrType attrValueType(const AttrValue& v) {
  static constexpr AttrType kTypes[] = {AttrType::Int,  AttrType::Float,  AttrType::String,
                                        AttrType::Bool, AttrType::Ints,   AttrType::Floats,
                                        AttrType::DType};
  return kTypes[v.index()];
}

namespace {
std::string numberStr(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", d);
  return buf;
}
}  // namespace

std::string attrValueStr(const AttrValue& v) {
  struct Printer {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return numberStr(x); }
    std::string operator()(const std::string& x) const { return "\"" + x + "\""; }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(const std::vector<int64_t>& x) const { return shapeStr(x); }
    std::string operator()(const std::vector<double>& x) const {
      std::string out = "[";
      for (size_t i = 0; i < x.size(); ++i) out += (i ? "," : "") + numberStr(x[i]);
      return out + "]";
    }
    std::string operator()(DType x) const { return std::string(dtypeName(x)); }
  };
  return std::visit(Printer{}, v);
}

std::string Value::name() const {
  if (index_ == 0) return node_->name();
  return node_->name() + ":" + std::to_string(index_);
}

void Node::setOperand(size_t i, Value* v) {
  Value* old = operands_[i];
  if (old == v) return;
  if (old) {
    auto& u = old->users_;
    u.erase(std::find(u.begin(), u.end(), this));
  }
  operands_[i] = v;
  if (v) v->users_.push_back(this);
}

void Node::appendOperand(Value* v) {
  operands_.push_back(nullptr);
  setOperand(operands_.size() - 1, v);
}

int64_t fusionGroup(const Node& n) {
  auto it = n.attrs().find(std::string(kFusionGroupAttr));
  if (it == n.attrs().end()) return -1;
  const int64_t* v = std::get_if<int64_t>(&it->second);
  return v && *v >= 0 ? *v : -1;
}

namespace {
template <class T>
const T* attrOrNull(const Node& n, std::string_view name) {
  auto it = n.attrs().find(std::string(name));
  if (it == n.attrs().end()) return nullptr;
  return std::get_if<T>(&it->second);
}
const AttrSpec& specOf(const Node& n, std::string_view name) {
  const AttrSpec* s = n.def().findAttr(name);
  assert(s && "attribute not in the op table");
  return *s;
}
}  // namespace

double Node::f(std::string_view n) const {
  if (const double* v = attrOrNull<double>(*this, n)) return *v;
  if (const int64_t* v = attrOrNull<int64_t>(*this, n)) return static_cast<double>(*v);
  return specOf(*this, n).defaultNumber;
}
int64_t Node::i(std::string_view n) const {
  if (const int64_t* v = attrOrNull<int64_t>(*this, n)) return *v;
  return static_cast<int64_t>(specOf(*this, n).defaultNumber);
}
bool Node::b(std::string_view n) const {
  if (const bool* v = attrOrNull<bool>(*this, n)) return *v;
  return specOf(*this, n).defaultNumber != 0;
}
std::string Node::s(std::string_view n) const {
  if (const std::string* v = attrOrNull<std::string>(*this, n)) return *v;
  return std::string(specOf(*this, n).defaultString);
}
DType Node::dtype(std::string_view n) const {
  if (const DType* v = attrOrNull<DType>(*this, n)) return *v;
  return static_cast<DType>(static_cast<int>(specOf(*this, n).defaultNumber));
}
std::vector<int64_t> Node::ints(std::string_view n) const {
  if (const auto* v = attrOrNull<std::vector<int64_t>>(*this, n)) return *v;
  return {};
}
std::vector<double> Node::floats(std::string_view n) const {
  if (const auto* v = attrOrNull<std::vector<double>>(*this, n)) return *v;
  return {};
}

Diagnostic Node::diag(std::string message) const {
  return Diagnostic{loc_, name_, std::string(opName()), std::move(message)};
}

Node* Graph::addNode(OpKind op, std::string name, std::vector<Value*> operands) {
  assert(!byName_.count(name) && "duplicate node name");
  auto node = std::unique_ptr<Node>(new Node(op, std::move(name)));
  Node* n = node.get();
  n->operands_.resize(operands.size(), nullptr);
  for (size_t i = 0; i < operands.size(); ++i) n->setOperand(i, operands[i]);
  const size_t numResults = opDef(op).results.size();
  for (size_t i = 0; i < numResults; ++i)
    n->results_.push_back(std::unique_ptr<Value>(new Value(n, static_cast<unsigned>(i))));
  byName_[n->name()] = n;
  nodes_.push_back(std::move(node));
  return n;
}

void Graph::eraseNode(Node* n) {
  for (size_t r = 0; r < n->numResults(); ++r)
    assert(n->result(r)->users().empty() && "erasing a node that still has users");
  for (size_t i = 0; i < n->numOperands(); ++i) n->setOperand(i, nullptr);
  byName_.erase(n->name());
  auto it = std::find_if(nodes_.begin(), nodes_.end(), [n](auto& p) { return p.get() == n; });
  nodes_.erase(it);
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  assert(from != to);
  std::vector<Node*> users = from->users();
  for (Node* u : users)
    for (size_t i = 0; i < u->numOperands(); ++i)
      if (u->operand(i) == from) u->setOperand(i, to);
  for (GraphOutput& o : outputs_)
    if (o.value == from) o.value = to;
}

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

Node* Graph::findNode(std::string_view name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : it->second;
}

Value* Graph::findValue(std::string_view tensorName) const {
  if (Node* n = findNode(tensorName)) return n->result(0);
  size_t colon = tensorName.rfind(':');
  if (colon == std::string_view::npos) return nullptr;
  Node* n = findNode(tensorName.substr(0, colon));
  if (!n) return nullptr;
  std::string_view idx = tensorName.substr(colon + 1);
  unsigned i = 0;
  auto [end, ec] = std::from_chars(idx.data(), idx.data() + idx.size(), i);
  if (ec != std::errc() || end != idx.data() + idx.size() || idx.empty()) return nullptr;
  if (i >= n->numResults()) return nullptr;
  return n->result(i);
}

std::vector<Node*> Graph::inputs() const {
  std::vector<Node*> out;
  for (const auto& n : nodes_)
    if (n->op() == OpKind::Input) out.push_back(n.get());
  return out;
}

std::vector<Node*> Graph::parameters() const {
  std::vector<Node*> out;
  for (const auto& n : nodes_)
    if (n->op() == OpKind::Parameter) out.push_back(n.get());
  return out;
}

Expected<std::vector<Node*>> Graph::topologicalOrder() const {
  // Iterative DFS (deep graphs must not overflow the stack); 0 new, 1 on stack, 2 done.
  std::map<const Node*, int> state;
  std::vector<Node*> order;
  order.reserve(nodes_.size());
  for (const auto& root : nodes_) {
    if (state[root.get()] == 2) continue;
    std::vector<std::pair<Node*, size_t>> stack{{root.get(), 0}};
    state[root.get()] = 1;
    while (!stack.empty()) {
      auto& [n, next] = stack.back();
      if (next < n->numOperands()) {
        Value* v = n->operand(next++);
        if (!v) continue;
        Node* m = v->node();
        int& s = state[m];
        if (s == 1)
          return m->error("the graph has a cycle through this node (it depends on its own "
                          "result via '" + n->name() + "')");
        if (s == 0) {
          s = 1;
          stack.push_back({m, 0});
        }
        continue;
      }
      state[n] = 2;
      order.push_back(n);
      stack.pop_back();
    }
  }
  return order;
}

std::string Graph::uniqueName(std::string_view base) const {
  std::string name(base);
  for (int k = 1; byName_.count(name); ++k) name = std::string(base) + "_" + std::to_string(k);
  return name;
}

}  // namespace kiln
