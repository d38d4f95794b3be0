// Builder: node creation with immediate attribute checks and type inference.
#include "ir/Builder.h"

#include "ir/ShapeInference.h"
#include "ir/Verifier.h"

namespace kiln {

Node* Builder::create(OpKind op, std::vector<Value*> operands, Attrs attrs, std::string hint) {
  if (!status_.isOk()) return nullptr;
  for (Value* v : operands)
    if (!v) {
      status_ = Error::msg("internal: null operand building " + std::string(opName(op)));
      return nullptr;
    }
  if (hint.empty()) hint = std::string(opName(op));
  Node* n = g_.addNode(op, g_.uniqueName(prefix_ + hint), std::move(operands));
  n->setLoc(loc_);
  for (auto& [name, value] : attrs) n->setAttr(name, std::move(value));
  Status s = verifyAttrs(*n);
  Expected<std::vector<TensorType>> types =
      s.isOk() ? inferResultTypes(*n) : Expected<std::vector<TensorType>>(s.error());
  if (!types) {
    status_ = types.takeError();
    for (size_t i = 0; i < n->numOperands(); ++i) n->setOperand(i, nullptr);
    g_.eraseNode(n);
    return nullptr;
  }
  for (size_t i = 0; i < types->size(); ++i) n->result(i)->setType((*types)[i]);
  return n;
}

Value* Builder::op(OpKind kind, std::vector<Value*> operands, Attrs attrs, std::string hint) {
  Node* n = create(kind, std::move(operands), std::move(attrs), std::move(hint));
  return n ? n->result(0) : nullptr;
}

Value* Builder::input(const std::string& name, DType dtype, Shape shape) {
  if (!status_.isOk()) return nullptr;
  if (g_.findNode(name)) {
    status_ = Error::msg("duplicate name '" + name + "'");
    return nullptr;
  }
  std::string saved = std::exchange(prefix_, "");
  Value* v = op(OpKind::Input, {}, {{"dtype", dtype}, {"shape", std::move(shape)}}, name);
  prefix_ = std::move(saved);
  return v;
}

Value* Builder::parameter(const std::string& name, Shape shape, Attrs attrs) {
  if (!status_.isOk()) return nullptr;
  if (g_.findNode(name)) {
    status_ = Error::msg("duplicate parameter name '" + name + "'");
    return nullptr;
  }
  attrs.insert(attrs.begin(), {"shape", std::move(shape)});
  std::string saved = std::exchange(prefix_, "");
  Value* v = op(OpKind::Parameter, {}, std::move(attrs), name);
  prefix_ = std::move(saved);
  return v;
}

Value* Builder::scalar(double v, DType dtype) {
  return op(OpKind::Constant, {}, {{"dtype", dtype}, {"value", std::vector<double>{v}}}, "const");
}

Value* Builder::constant(std::vector<double> values, Shape shape, DType dtype) {
  return op(OpKind::Constant, {},
            {{"dtype", dtype}, {"shape", std::move(shape)}, {"value", std::move(values)}}, "const");
}

}  // namespace kiln
