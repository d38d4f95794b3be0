// The training passes: prune-frozen (freeze parameters by name before the step graph is built)
// and insert-clipping (clip the built step's gradients). Both wrap the training library's own
// code paths rather than re-implementing them.
#include <regex>

#include "compiler/passes/Pass.h"
#include "compiler/training/TrainingParts.h"

namespace kiln::passes {

Expected<std::vector<std::string>> freezeParameters(Graph& g, const std::string& regex) {
  std::regex re;
  try {
    re = std::regex(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Error::msg("--freeze '" + regex + "' is not a regular expression: " + e.what());
  }
  std::vector<std::string> frozen;
  for (Node* p : g.parameters())
    if (std::regex_match(p->name(), re) && p->b("trainable")) {
      p->setAttr("trainable", false);
      frozen.push_back(p->name());
    }
  return frozen;
}

namespace {

// Freezing is what prunes: buildTrainingGraph differentiates only with respect to trainable
// parameters, so a frozen one gets no gradient nodes, no optimizer slots and no update output,
// and backpropagation stops below the lowest trainable layer. This pass only has to decide
// which parameters are frozen; it runs on the evaluation graph, before the step is built.
class PruneFrozen final : public Pass {
 public:
  std::string_view name() const override { return "prune-frozen"; }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    if (ctx.freezeRegex.empty())
      return Error::msg("needs the parameters to freeze (--freeze REGEX)");
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> frozen, freezeParameters(g, ctx.freezeRegex));
    if (!frozen.empty()) return true;
    // Matching only parameters that are frozen already is fine (nothing to do); matching none
    // is a typo worth reporting.
    std::regex re(ctx.freezeRegex, std::regex::ECMAScript);
    for (Node* p : g.parameters())
      if (std::regex_match(p->name(), re)) return false;
    return Error::msg("--freeze '" + ctx.freezeRegex + "' matches no parameter of graph '" +
                      g.name() + "'");
  }
};

// Clipping goes between the gradients and the optimizer: every reader of a gradient that
// existed before the pass (the optimizer update) reads the clipped value afterwards. The
// clipping math is training::insertGradientClipping, the same code buildTrainingGraph calls.
class InsertClipping final : public Pass {
 public:
  std::string_view name() const override { return "insert-clipping"; }
  Expected<bool> run(Graph& g, PassContext& ctx) override {
    if (!ctx.clipping || !ctx.gradients)
      return Error::msg(
          "needs a training step's gradients and the model's clipping block (it runs in "
          "the training pipeline: kiln opt --mode train)");
    std::vector<Value*>& grads = *ctx.gradients;
    // Readers of each gradient before clipping: (node, operand slot) and graph outputs.
    std::vector<std::vector<std::pair<Node*, size_t>>> readers(grads.size());
    std::vector<std::vector<size_t>> outputs(grads.size());
    for (size_t k = 0; k < grads.size(); ++k) {
      if (!grads[k]) continue;
      for (Node* u : grads[k]->users())
        for (size_t i = 0; i < u->numOperands(); ++i)
          if (u->operand(i) == grads[k]) readers[k].push_back({u, i});
      for (size_t o = 0; o < g.outputs().size(); ++o)
        if (g.outputs()[o].value == grads[k]) outputs[k].push_back(o);
    }
    Builder b(g);
    std::vector<Value*> clipped = grads;
    int64_t added = training::insertGradientClipping(b, *ctx.clipping, clipped);
    if (!b.ok()) return b.takeStatus().takeError();
    if (added == 0) return false;
    for (size_t k = 0; k < grads.size(); ++k) {
      if (clipped[k] == grads[k]) continue;
      for (auto [u, i] : readers[k]) u->setOperand(i, clipped[k]);
      for (size_t o : outputs[k]) g.setOutput(o, clipped[k]);
    }
    grads = clipped;
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createPruneFrozen() { return std::make_unique<PruneFrozen>(); }
std::unique_ptr<Pass> createInsertClipping() { return std::make_unique<InsertClipping>(); }

}  // namespace kiln::passes
