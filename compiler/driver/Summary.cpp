// The Keras-style summary table of a graph.
#include "compiler/driver/Summary.h"

#include <map>
#include <set>

namespace kiln::driver {

std::string withThousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

ParamCounts countParams(const Graph& g) {
  ParamCounts c;
  for (Node* p : g.parameters()) {
    int64_t n = numElements(p->result()->type().shape);
    c.total += n;
    (p->b("trainable") ? c.trainable : c.nonTrainable) += n;
  }
  return c;
}

namespace {
// Keras prints the batch dimension as None: (None, 784).
std::string kerasShape(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += s[i] == kBatch ? "None" : std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  else s += ' ';
  return s;
}
}  // namespace

namespace {
std::string totals(const Graph& g, size_t width) {
  ParamCounts c = countParams(g);
  std::string out = std::string(width, '=') + "\n";
  out += "Total params: " + withThousands(c.total) + "\n";
  out += "Trainable params: " + withThousands(c.trainable) + "\n";
  out += "Non-trainable params: " + withThousands(c.nonTrainable) + "\n";
  return out + std::string(width, '_') + "\n";
}
}  // namespace

std::string summarizeModel(const frontend::ExpandedModel& m) {
  size_t nameWidth = 29;
  for (const frontend::LayerInfo& l : m.layers)
    nameWidth = std::max(nameWidth, l.name.size() + l.typeName.size() + 5);
  const size_t shapeWidth = 26, width = nameWidth + shapeWidth + 10;
  std::string out = "Model: \"" + m.name + "\"\n";
  out += std::string(width, '_') + "\n";
  out += " " + pad("Layer (type)", nameWidth - 1) + pad("Output Shape", shapeWidth) + "Param #\n";
  out += std::string(width, '=') + "\n";
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const frontend::LayerInfo& l = m.layers[i];
    if (i) out += "\n";  // Keras separates the rows with a blank line.
    out += " " + pad(l.name + " (" + l.typeName + ")", nameWidth - 1) +
           pad(kerasShape(l.output->type().shape), shapeWidth) + withThousands(l.paramCount()) + "\n";
  }
  return out + totals(*m.graph, width);
}

std::string summarizeGraph(const Graph& g) {
  Expected<std::vector<Node*>> order = g.topologicalOrder();
  std::vector<Node*> nodes = order ? *order : g.nodes();
  // Each parameter is counted at the first node (in execution order) that reads it, as Keras
  // counts a layer's weights at the layer.
  std::map<const Node*, int64_t> paramsAt;
  std::set<const Node*> counted;
  for (Node* n : nodes)
    for (Value* v : n->operands())
      if (v->node()->op() == OpKind::Parameter && counted.insert(v->node()).second)
        paramsAt[n] += numElements(v->node()->result()->type().shape);
  int64_t unused = 0;
  for (Node* p : g.parameters())
    if (!counted.count(p)) unused += numElements(p->result()->type().shape);

  size_t nameWidth = 34;
  for (Node* n : nodes)
    if (n->op() != OpKind::Parameter)
      nameWidth = std::max(nameWidth, n->name().size() + n->opName().size() + 5);
  const size_t shapeWidth = 22, width = nameWidth + shapeWidth + 10;
  std::string out = "Model: \"" + g.name() + "\"\n";
  out += std::string(width, '_') + "\n";
  out += " " + pad("Node (op)", nameWidth - 1) + pad("Output Shape", shapeWidth) + "Param #\n";
  out += std::string(width, '=') + "\n";
  for (Node* n : nodes) {
    if (n->op() == OpKind::Parameter) continue;
    std::string label = n->name() + " (" + std::string(n->opName()) + ")";
    out += " " + pad(label, nameWidth - 1) + pad(kerasShape(n->result()->type().shape), shapeWidth) +
           withThousands(paramsAt[n]) + "\n";
  }
  if (unused) out += " " + pad("(parameters no node reads)", nameWidth - 1) + pad("", shapeWidth) +
                     withThousands(unused) + "\n";
  return out + totals(g, width);
}

}  // namespace kiln::driver
