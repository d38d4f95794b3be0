// `kiln dot MODEL [-o FILE]`: the model's op-level graph as Graphviz DOT, one cluster per layer,
// parameters with their shapes, edges labelled with the shapes of the tensors they carry.
#include <cstdio>
#include <map>
#include <set>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "compiler/driver/Dot.h"
#include "compiler/driver/Summary.h"
#include "ir/ProtoIO.h"

namespace kiln::driver {
namespace {

// A DOT double-quoted string.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// (None, 784) for activations, (784, 300) for parameters.
std::string shapeLabel(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + (s[i] == kBatch ? std::string("None") : std::to_string(s[i]));
  return out + (s.size() == 1 ? ",)" : ")");
}

struct Cluster {
  std::string prefix;  // What its nodes' names start with ("hidden1" of "hidden1/matmul").
  std::string label;
  std::vector<Node*> nodes;
};

// Op-level graphs have no layers: group nodes by the part of their name before the first '/'
// (hidden1/matmul, hidden1/kernel), and a node named exactly like such a group joins it (the
// batch_norm node `batch_normalization_1` and its `batch_normalization_1/gamma`).
std::vector<Cluster> clustersByName(const Graph& g) {
  std::map<std::string, size_t> index;
  std::vector<Cluster> out;
  for (Node* n : g.nodes()) {
    size_t slash = n->name().find('/');
    if (slash == std::string::npos) continue;
    std::string key = n->name().substr(0, slash);
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) out.push_back({key, key, {}});
    out[it->second].nodes.push_back(n);
  }
  for (Node* n : g.nodes())
    if (n->name().find('/') == std::string::npos && index.count(n->name()))
      out[index[n->name()]].nodes.push_back(n);
  return out;
}

std::string nodeLine(const Node* n, const std::string& id, const std::string& prefix) {
  std::string name = n->name();
  if (!prefix.empty() && name.starts_with(prefix + "/")) name = name.substr(prefix.size() + 1);
  const Shape& shape = n->result()->type().shape;
  switch (n->op()) {
    case OpKind::Input:
      return id + " [label=" + quote(name + "\n" + shapeLabel(shape)) +
             ", shape=oval, fillcolor=\"#dbe8f7\"];\n";
    case OpKind::Parameter: {
      bool trainable = n->b("trainable");
      return id + " [label=" +
             quote(name + "\n" + shapeLabel(shape) + (trainable ? "" : "\nnon-trainable")) +
             ", shape=note, fillcolor=" + (trainable ? "\"#fff2cc\"" : "\"#eeeeee\"") + "];\n";
    }
    case OpKind::Constant:
      return id + " [label=" + quote(name + "\n" + shapeLabel(shape)) + ", shape=plaintext];\n";
    default: {
      std::string op(n->opName());
      std::string label = name == op ? op : name + "\n" + op;
      if (n->op() == OpKind::Dropout || n->op() == OpKind::AlphaDropout) {
        char rate[32];
        std::snprintf(rate, sizeof rate, " rate %g", n->f("rate"));
        label += rate;
      }
      return id + " [label=" + quote(label) + "];\n";
    }
  }
}

}  // namespace

std::string graphToDot(const Graph& g, const std::vector<frontend::LayerInfo>* layers) {
  std::vector<Cluster> clusters;
  if (layers) {
    for (const frontend::LayerInfo& l : *layers) {
      Cluster c{l.name,
                l.name + " (" + l.typeName + ")\n" + withThousands(l.paramCount()) + " params",
                {}};
      c.nodes = l.parameters;
      c.nodes.insert(c.nodes.end(), l.nodes.begin(), l.nodes.end());
      if (!c.nodes.empty()) clusters.push_back(std::move(c));
    }
  } else {
    clusters = clustersByName(g);
  }
  std::map<const Node*, std::string> ids;
  for (Node* n : g.nodes()) ids[n] = "n" + std::to_string(ids.size());

  std::string out = "digraph " + quote(g.name()) + " {\n";
  out += "  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11, label=" + quote(g.name()) +
         ", labelloc=t];\n";
  out +=
      "  node [fontname=\"Helvetica\", fontsize=10, shape=box, style=\"rounded,filled\", "
      "fillcolor=\"#ffffff\"];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  std::set<const Node*> placed;
  for (size_t i = 0; i < clusters.size(); ++i) {
    const Cluster& c = clusters[i];
    out += "  subgraph cluster_" + std::to_string(i) + " {\n";
    out += "    label=" + quote(c.label) + "; style=\"rounded,filled\"; fillcolor=\"#f5f5f5\";\n";
    for (Node* n : c.nodes) {
      out += "    " + nodeLine(n, ids[n], c.prefix);
      placed.insert(n);
    }
    out += "  }\n";
  }
  for (Node* n : g.nodes())
    if (!placed.count(n)) out += "  " + nodeLine(n, ids[n], "");
  for (Node* n : g.nodes())
    for (Value* v : n->operands())
      out += "  " + ids[v->node()] + " -> " + ids[n] + " [label=" +
             quote(shapeLabel(v->type().shape) +
                   (v->index() ? " :" + std::to_string(v->index()) : "")) +
             "];\n";
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const GraphOutput& o = g.outputs()[i];
    std::string id = "out" + std::to_string(i);
    out += "  " + id + " [label=" + quote(o.name) + ", shape=oval, fillcolor=\"#d9ead3\"];\n";
    out += "  " + ids[o.value->node()] + " -> " + id +
           " [label=" + quote(shapeLabel(o.value->type().shape)) + "];\n";
  }
  return out + "}\n";
}

int runDot(const std::vector<std::string>& args) {
  ArgParser p("dot MODEL [-o FILE] [options]",
              "Writes a model's op-level graph in Graphviz DOT: one cluster per layer (for an\n"
              "op-level graph, per name prefix such as 'hidden1/'), parameters with their shapes,\n"
              "and edges labelled with tensor shapes. Render it with: dot -Tsvg FILE -o model.svg");
  p.positional("MODEL", "The model file: a layer-level model or an op-level graph (.pbtxt or .pb)");
  p.option("output", "FILE", "Write here instead of to standard output");
  p.alias('o', "output");
  p.flag("evaluation", "Draw a layer-level model's evaluation graph (targets, loss, metrics)");
  if (auto exit = p.parseOrExit(args)) return *exit;
  auto m = loadAnyModel(p.positionals()[0], p.has("evaluation") ? frontend::Expansion::Evaluation
                                                                : frontend::Expansion::Inference);
  if (!m) {
    std::fprintf(stderr, "%s\n", m.error().str().c_str());
    return 1;
  }
  std::string dot = graphToDot(*m->model.graph, m->layerLevel ? &m->model.layers : nullptr);
  if (!p.has("output")) {
    std::fputs(dot.c_str(), stdout);
    return 0;
  }
  if (Status s = writeFileAtomic(p.get("output"), dot); !s) {
    std::fprintf(stderr, "%s\n", s.error().str().c_str());
    return 1;
  }
  return 0;
}

}  // namespace kiln::driver
