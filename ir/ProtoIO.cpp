// Reading and writing graphs as protobuf text and binary; proto <-> in-memory conversion.
#include "ir/ProtoIO.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>

#include "ir/kiln.pb.h"

namespace kiln {
namespace pb = ::google::protobuf;

GraphFormat formatForPath(std::string_view path) {
  return path.ends_with(".pb") ? GraphFormat::Binary : GraphFormat::Text;
}

namespace {

class CollectErrors : public pb::io::ErrorCollector {
 public:
  explicit CollectErrors(std::string file) : file_(std::move(file)) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    diags_.push_back(Diagnostic{{file_, line + 1, column + 1}, {}, {}, message});
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  std::vector<Diagnostic> diags_;

 private:
  std::string file_;
};

// Locations of repeated entries of the Graph message, for diagnostics (text input only).
struct Locations {
  std::string file;
  const pb::TextFormat::ParseInfoTree* tree = nullptr;

  SourceLoc at(const char* field, int index) const {
    SourceLoc loc{file};
    if (!tree) return loc;
    const pb::FieldDescriptor* fd = proto::Graph::descriptor()->FindFieldByName(field);
    pb::TextFormat::ParseLocation p = tree->GetLocation(fd, index);
    if (p.line >= 0) {
      loc.line = p.line + 1;
      loc.column = p.column + 1;
    }
    return loc;
  }
};

// Names longer than this get no suggestion (the edit distance is quadratic in the length).
constexpr size_t kMaxSuggestedNameLength = 64;

// "; did you mean 'x'?" for the candidate closest to `name`, if one is close enough.
template <class Range, class NameOf>
std::string suggestion(std::string_view name, const Range& candidates, NameOf nameOf) {
  if (name.size() > kMaxSuggestedNameLength) return "";
  std::string_view best;
  // Only close matches: one edit for names of up to 3 characters, two for longer ones, and
  // never as many as the name has characters.
  size_t bestD = std::min<size_t>(name.size() <= 3 ? 2 : 3, name.size());
  for (const auto& c : candidates) {
    std::string_view cand = nameOf(c);
    if (cand.size() > kMaxSuggestedNameLength || cand.size() > name.size() + bestD ||
        name.size() > cand.size() + bestD)
      continue;
    size_t dist = editDistance(name, cand);
    if (dist < bestD) {
      bestD = dist;
      best = cand;
    }
  }
  return best.empty() ? "" : "; did you mean '" + std::string(best) + "'?";
}

std::string suggestOp(std::string_view name) {
  return suggestion(name, allOpDefs(), [](const OpDef& d) { return d.name; });
}

// Element types as kiln.proto numbers them; the enum is open, so a binary file (or a number in
// text) can hold any value.
std::optional<DType> dtypeFromProto(int v) {
  if (v < static_cast<int>(DType::Float32) || v > static_cast<int>(DType::Bool)) return std::nullopt;
  return static_cast<DType>(v);
}

Expected<AttrValue> attrFromProto(const proto::Attr& a) {
  switch (a.value_case()) {
    case proto::Attr::kI: return AttrValue(a.i());
    case proto::Attr::kF: return AttrValue(a.f());
    case proto::Attr::kS: return AttrValue(a.s());
    case proto::Attr::kB: return AttrValue(a.b());
    case proto::Attr::kInts:
      return AttrValue(std::vector<int64_t>(a.ints().v().begin(), a.ints().v().end()));
    case proto::Attr::kFloats:
      return AttrValue(std::vector<double>(a.floats().v().begin(), a.floats().v().end()));
    case proto::Attr::kDtype: {
      std::optional<DType> t = dtypeFromProto(a.dtype());
      if (!t)
        return Error::msg("attribute '" + a.name() + "' has an invalid dtype (" +
                          std::to_string(a.dtype()) + ")");
      return AttrValue(*t);
    }
    case proto::Attr::VALUE_NOT_SET: break;
  }
  return Error::msg("attribute '" + a.name() +
                    "' has no value (expected one of i, f, s, b, ints, floats, dtype)");
}

void attrToProto(const std::string& name, const AttrValue& v, proto::Attr* a) {
  a->set_name(name);
  switch (attrValueType(v)) {
    case AttrType::Int: a->set_i(std::get<int64_t>(v)); break;
    case AttrType::Float: a->set_f(std::get<double>(v)); break;
    case AttrType::String: a->set_s(std::get<std::string>(v)); break;
    case AttrType::Bool: a->set_b(std::get<bool>(v)); break;
    case AttrType::Ints: {
      proto::IntList* list = a->mutable_ints();  // Sets the oneof even for an empty list.
      for (int64_t x : std::get<std::vector<int64_t>>(v)) list->add_v(x);
      break;
    }
    case AttrType::Floats: {
      proto::FloatList* list = a->mutable_floats();
      for (double x : std::get<std::vector<double>>(v)) list->add_v(x);
      break;
    }
    case AttrType::DType:
      a->set_dtype(static_cast<proto::DType>(std::get<DType>(v)));
      break;
  }
}

// Builds the in-memory graph from the message; `locs` gives source positions.
Expected<std::unique_ptr<Graph>> graphFromProto(const proto::Graph& gp, const Locations& locs) {
  auto g = std::make_unique<Graph>(gp.name());
  g->setSourceFile(locs.file);
  std::vector<Diagnostic> errors;
  auto fail = [&](SourceLoc loc, std::string node, std::string op, std::string msg) {
    errors.push_back(Diagnostic{std::move(loc), std::move(node), std::move(op), std::move(msg)});
  };
  auto checkName = [&](const std::string& name, const SourceLoc& loc, const char* what) {
    if (name.empty()) {
      fail(loc, {}, {}, std::string(what) + " has no name");
      return false;
    }
    if (name.find(':') != std::string::npos) {
      fail(loc, name, {}, std::string(what) + " name must not contain ':' (it separates a "
                          "node from its result index)");
      return false;
    }
    if (Node* prev = g->findNode(name)) {
      std::string where = prev->loc().line ? " (first defined at line " +
                                                 std::to_string(prev->loc().line) + ")"
                                           : "";
      fail(loc, name, {}, "duplicate name: '" + name + "' is already defined" + where);
      return false;
    }
    return true;
  };

  for (int i = 0; i < gp.input_size(); ++i) {
    const proto::Input& in = gp.input(i);
    SourceLoc loc = locs.at("input", i);
    if (!checkName(in.name(), loc, "input")) continue;
    Node* n = g->addNode(OpKind::Input, in.name());
    n->setLoc(loc);
    if (in.dtype() != proto::DTYPE_UNSPECIFIED) {
      if (std::optional<DType> t = dtypeFromProto(in.dtype())) n->setAttr("dtype", *t);
      else fail(loc, in.name(), "input", "invalid dtype (" + std::to_string(in.dtype()) + ")");
    }
    if (in.has_shape())
      n->setAttr("shape", std::vector<int64_t>(in.shape().dim().begin(), in.shape().dim().end()));
  }
  for (int i = 0; i < gp.parameter_size(); ++i) {
    const proto::Parameter& p = gp.parameter(i);
    SourceLoc loc = locs.at("parameter", i);
    if (!checkName(p.name(), loc, "parameter")) continue;
    Node* n = g->addNode(OpKind::Parameter, p.name());
    n->setLoc(loc);
    if (p.has_shape())
      n->setAttr("shape", std::vector<int64_t>(p.shape().dim().begin(), p.shape().dim().end()));
    if (p.has_trainable()) n->setAttr("trainable", p.trainable());
    if (p.l1() != 0) n->setAttr("l1", p.l1());
    if (p.l2() != 0) n->setAttr("l2", p.l2());
    if (p.max_norm() != 0) n->setAttr("max_norm", p.max_norm());
    if (p.dtype() != proto::DTYPE_UNSPECIFIED) {
      if (std::optional<DType> t = dtypeFromProto(p.dtype())) n->setAttr("dtype", *t);
      else fail(loc, p.name(), "parameter", "invalid dtype (" + std::to_string(p.dtype()) + ")");
    }
    if (p.has_init()) {
      const proto::Initializer& init = p.init();
      if (!init.kind().empty()) n->setAttr("init", init.kind());
      if (init.scale() != 0) n->setAttr("init_scale", init.scale());
      if (!init.mode().empty()) n->setAttr("init_mode", init.mode());
      if (!init.distribution().empty()) n->setAttr("init_distribution", init.distribution());
      if (init.value() != 0) n->setAttr("init_value", init.value());
      if (init.values_size())
        n->setAttr("init_values", std::vector<double>(init.values().begin(), init.values().end()));
    }
  }
  // Nodes first, operands second: a node may name a later node (and a cycle is the verifier's
  // to report, not a crash here).
  std::vector<std::pair<Node*, const proto::Node*>> pending;
  // Nodes that could not be built (already reported): reading them is not reported again.
  std::set<std::string, std::less<>> failedNodes;
  for (int i = 0; i < gp.node_size(); ++i) {
    const proto::Node& np = gp.node(i);
    SourceLoc loc = locs.at("node", i);
    auto kind = lookupOp(np.op());
    if (np.op().empty()) {
      fail(loc, np.name(), {}, "node has no op");
      failedNodes.insert(np.name());
      continue;
    }
    if (!kind) {
      fail(loc, np.name(), {}, "unknown op '" + np.op() + "'" + suggestOp(np.op()));
      failedNodes.insert(np.name());
      continue;
    }
    if (*kind == OpKind::Input || *kind == OpKind::Parameter) {
      fail(loc, np.name(), np.op(),
           "'" + np.op() + "' is declared in the graph's " + np.op() + " list, not as a node");
      failedNodes.insert(np.name());
      continue;
    }
    if (!checkName(np.name(), loc, "node")) continue;
    Node* n = g->addNode(*kind, np.name());
    n->setLoc(loc);
    for (const proto::Attr& a : np.attr()) {
      if (n->hasAttr(a.name())) {
        fail(loc, np.name(), np.op(), "attribute '" + a.name() + "' is given twice");
        continue;
      }
      Expected<AttrValue> v = attrFromProto(a);
      if (!v) {
        fail(loc, np.name(), np.op(), v.error().diagnostics()[0].message);
        continue;
      }
      n->setAttr(a.name(), std::move(*v));
    }
    pending.push_back({n, &np});
  }
  // Why `tensor` names nothing, or empty if that was already reported (a node that failed).
  // Each suggestion compares against every name: a budget keeps huge bad files linear.
  int64_t suggestionBudget = 1 << 20;
  std::vector<Node*> candidates;
  auto whyMissing = [&](const std::string& tensor) -> std::string {
    std::string_view base = tensor;
    if (size_t colon = tensor.rfind(':'); colon != std::string::npos) {
      base = base.substr(0, colon);
      if (Node* n = g->findNode(base)) {
        std::string_view idx = std::string_view(tensor).substr(colon + 1);
        bool digits = !idx.empty() && idx.size() < 10 &&
                      std::all_of(idx.begin(), idx.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits)
          return "'" + tensor + "', which has a bad result index (tensor names are 'node' or "
                 "'node:N')";
        return "'" + tensor + "', but node '" + n->name() + "' (" + std::string(n->opName()) +
               ") has " + std::to_string(n->numResults()) + " result" +
               (n->numResults() == 1 ? "" : "s");
      }
    }
    if (failedNodes.count(base)) return "";
    std::string hint;
    if (candidates.empty()) candidates = g->nodes();  // All nodes exist by now.
    suggestionBudget -= static_cast<int64_t>(candidates.size());
    if (suggestionBudget >= 0)
      hint = suggestion(tensor, candidates, [](const Node* n) -> std::string_view { return n->name(); });
    return "'" + tensor + "', which is no input, parameter or node result" + hint;
  };
  for (auto& [n, np] : pending) {
    std::vector<Value*> operands;
    bool ok = true;
    for (int k = 0; k < np->input_size(); ++k) {
      Value* v = g->findValue(np->input(k));
      if (!v) {
        std::string why = whyMissing(np->input(k));
        if (!why.empty())
          fail(n->loc(), n->name(), std::string(n->opName()),
               "operand " + std::to_string(k) + " names " + why);
        ok = false;
      }
      operands.push_back(v);
    }
    if (!ok) continue;
    for (Value* v : operands) n->appendOperand(v);
  }
  for (int i = 0; i < gp.output_size(); ++i) {
    const proto::Output& o = gp.output(i);
    SourceLoc loc = locs.at("output", i);
    const std::string& tensor = o.tensor().empty() ? o.name() : o.tensor();
    if (tensor.empty()) {
      fail(loc, {}, {}, "output " + std::to_string(i) + " has no name and no tensor");
      continue;
    }
    Value* v = g->findValue(tensor);
    if (!v) {
      std::string why = whyMissing(tensor);
      if (!why.empty())
        fail(loc, {}, {}, "output '" + (o.name().empty() ? tensor : o.name()) + "' reads " + why);
      continue;
    }
    g->addOutput(o.name().empty() ? tensor : o.name(), v);
  }
  if (!errors.empty()) return Error(std::move(errors));
  return g;
}

}  // namespace

Expected<std::unique_ptr<Graph>> parseGraph(std::string_view data, GraphFormat format,
                                            const std::string& fileName) {
  proto::Graph gp;
  if (format == GraphFormat::Binary) {
    // Protobuf logs (to stderr) why a string field failed UTF-8 validation; the error below
    // is the one that counts.
    pb::LogSilencer quiet;
    if (data.size() > static_cast<size_t>(INT32_MAX) ||
        !gp.ParseFromArray(data.data(), static_cast<int>(data.size())))
      return Error(Diagnostic{{fileName}, {}, {},
                              "not a valid binary Kiln graph (protobuf parsing failed; text "
                              "graphs should have the .pbtxt extension)"});
    return graphFromProto(gp, Locations{fileName, nullptr});
  }
  pb::TextFormat::Parser parser;
  CollectErrors collector(fileName);
  pb::TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&collector);
  parser.WriteLocationsTo(&tree);
  if (data.size() > static_cast<size_t>(INT32_MAX))
    return Error(Diagnostic{{fileName}, {}, {}, "file too large"});
  if (!parser.ParseFromString(std::string(data), &gp)) {
    if (collector.diags_.empty())
      collector.diags_.push_back(Diagnostic{{fileName}, {}, {}, "could not parse protobuf text"});
    return Error(std::move(collector.diags_));
  }
  return graphFromProto(gp, Locations{fileName, &tree});
}

Expected<std::string> readFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(Diagnostic{{path}, {}, {}, "cannot open: " + std::string(std::strerror(errno))});
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error(Diagnostic{{path}, {}, {}, "read failed"});
  return ss.str();
}

Expected<std::unique_ptr<Graph>> readGraphFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string data, readFileBytes(path));
  return parseGraph(data, formatForPath(path), path);
}

namespace {
proto::Graph graphToProto(const Graph& g) {
  proto::Graph gp;
  gp.set_name(g.name());
  auto setShape = [](proto::Shape* s, const std::vector<int64_t>& dims) {
    for (int64_t d : dims) s->add_dim(d);
  };
  for (Node* n : g.nodes()) {
    if (n->op() == OpKind::Input) {
      proto::Input* in = gp.add_input();
      in->set_name(n->name());
      if (n->hasAttr("dtype")) in->set_dtype(static_cast<proto::DType>(n->dtype("dtype")));
      if (n->hasAttr("shape")) setShape(in->mutable_shape(), n->ints("shape"));
    } else if (n->op() == OpKind::Parameter) {
      proto::Parameter* p = gp.add_parameter();
      p->set_name(n->name());
      if (n->hasAttr("shape")) setShape(p->mutable_shape(), n->ints("shape"));
      if (n->hasAttr("trainable")) p->set_trainable(n->b("trainable"));
      if (n->hasAttr("l1")) p->set_l1(n->f("l1"));
      if (n->hasAttr("l2")) p->set_l2(n->f("l2"));
      if (n->hasAttr("max_norm")) p->set_max_norm(n->f("max_norm"));
      if (n->hasAttr("dtype")) p->set_dtype(static_cast<proto::DType>(n->dtype("dtype")));
      proto::Initializer init;
      if (n->hasAttr("init")) init.set_kind(n->s("init"));
      if (n->hasAttr("init_scale")) init.set_scale(n->f("init_scale"));
      if (n->hasAttr("init_mode")) init.set_mode(n->s("init_mode"));
      if (n->hasAttr("init_distribution")) init.set_distribution(n->s("init_distribution"));
      if (n->hasAttr("init_value")) init.set_value(n->f("init_value"));
      for (double v : n->floats("init_values")) init.add_values(v);
      if (init.ByteSizeLong() > 0) *p->mutable_init() = init;
    }
  }
  for (Node* n : g.nodes()) {
    if (n->op() == OpKind::Input || n->op() == OpKind::Parameter) continue;
    proto::Node* np = gp.add_node();
    np->set_name(n->name());
    np->set_op(std::string(n->opName()));
    for (Value* v : n->operands()) np->add_input(v ? v->name() : "");
    // The op table's order first (stable, readable), then anything else the node carries.
    std::set<std::string> done;
    for (const AttrSpec& spec : n->def().attrs) {
      auto it = n->attrs().find(std::string(spec.name));
      if (it == n->attrs().end()) continue;
      attrToProto(it->first, it->second, np->add_attr());
      done.insert(it->first);
    }
    for (const auto& [name, v] : n->attrs())
      if (!done.count(name)) attrToProto(name, v, np->add_attr());
  }
  for (const GraphOutput& o : g.outputs()) {
    proto::Output* op = gp.add_output();
    op->set_name(o.name);
    if (o.value->name() != o.name) op->set_tensor(o.value->name());
  }
  return gp;
}
}  // namespace

std::string graphToText(const Graph& g) {
  std::string out;
  pb::TextFormat::Printer printer;
  printer.PrintToString(graphToProto(g), &out);
  return out;
}

std::string graphToBinary(const Graph& g) { return graphToProto(g).SerializeAsString(); }

Status writeGraphFile(const Graph& g, const std::string& path) {
  return writeFileAtomic(path, formatForPath(path) == GraphFormat::Binary ? graphToBinary(g)
                                                                           : graphToText(g));
}

Status writeFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto sysError = [&](const std::string& what) {
    return Error(Diagnostic{{path}, {}, {}, what + ": " + std::strerror(errno)});
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return sysError("cannot create temporary file " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      Error e = sysError("write failed");
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    Error e = sysError("fsync/close failed");
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = sysError("rename failed");
    ::unlink(tmp.c_str());
    return e;
  }
  return Status::ok();
}

}  // namespace kiln
