// The pass registry, the pass manager and the default pipelines.
#include <algorithm>

#include "compiler/passes/Pass.h"
#include "ir/ProtoIO.h"
#include "ir/Verifier.h"

namespace kiln::passes {

bool isRandom(const Node& n) {
  switch (n.op()) {
    case OpKind::Dropout:
    case OpKind::AlphaDropout:
    case OpKind::RRelu: return n.b("training");
    default: return false;
  }
}

const std::vector<PassInfo>& passRegistry() {
  // Plain list (no static self-registration): the order is the order of --list-passes.
  static const std::vector<PassInfo> registry = {
      {"dce", "removes nodes whose results reach no graph output (inputs and parameters stay)",
       createDeadCodeElimination},
      {"cse", "merges nodes with the same op, operands and attributes (constants by value)",
       createCommonSubexprElimination},
      {"fold-constants",
       "evaluates nodes whose operands are all constants with the interpreter's kernels",
       createFoldConstants},
      {"simplify",
       "algebraic identities: x*1, x+0, x-0, x/1, neg(neg x), transpose/reshape chains, ...",
       createSimplify},
      {"fold-batch-norm",
       "matmul (+ bias) -> inference batch norm becomes matmul + add with W', b'",
       createFoldBatchNorm},
      {"prune-frozen",
       "freezes parameters matching --freeze (trainable=false) before the training "
       "step is built, so they get no gradient, slots or update",
       createPruneFrozen},
      {"insert-clipping", "clips the training step's gradients (the model's clipping block)",
       createInsertClipping},
      {"fuse-elementwise",
       "groups elementwise chains (and a matmul with its elementwise epilogue) into one loop "
       "each, by fusion class; records them as fusion_group attributes the code generator "
       "follows (disabled: one loop per op)",
       createFuseElementwise},
  };
  return registry;
}

Expected<std::unique_ptr<Pass>> createPass(std::string_view name) {
  const PassInfo* best = nullptr;
  size_t bestDistance = 0;
  for (const PassInfo& p : passRegistry()) {
    if (p.name == name) return p.create();
    size_t d = editDistance(p.name, name);
    if (!best || d < bestDistance) best = &p, bestDistance = d;
  }
  std::string msg = "unknown pass '" + std::string(name) + "'";
  if (best && bestDistance <= 2) msg += " (did you mean '" + std::string(best->name) + "'?)";
  msg += "; the passes are:";
  for (const PassInfo& p : passRegistry()) msg += (&p == &passRegistry().front() ? " " : ", ") + std::string(p.name);
  return Error::msg(msg);
}

void PassManager::add(std::unique_ptr<Pass> p) {
  Stage s;
  s.passes.push_back(std::move(p));
  stages_.push_back(std::move(s));
}

Status PassManager::add(std::string_view name) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Pass> p, createPass(name));
  add(std::move(p));
  return Status::ok();
}

void PassManager::addFixedPoint(std::vector<std::unique_ptr<Pass>> group) {
  Stage s;
  s.passes = std::move(group);
  s.fixedPoint = true;
  stages_.push_back(std::move(s));
}

Status PassManager::checkDisabled() const {
  for (const std::string& d : opts_.disabled)
    if (Expected<std::unique_ptr<Pass>> p = createPass(d); !p)
      return Error::msg("--disable-pass: " + p.error().diagnostics().front().message);
  return Status::ok();
}

Expected<bool> PassManager::runOne(Pass& p, Graph& g, PassContext& ctx) {
  const std::string name(p.name());
  if (opts_.disabled.count(name)) return false;
  Expected<bool> changed = p.run(g, ctx);
  if (!changed) {
    std::vector<Diagnostic> ds = changed.error().diagnostics();
    for (Diagnostic& d : ds) d.message = "pass '" + name + "': " + d.message;
    return Error(std::move(ds));
  }
  if (*changed && opts_.verifyEach) {
    // Every pass must leave a well-formed graph; name the pass so the culprit is obvious.
    if (Status s = verifyGraph(g); !s) {
      std::vector<Diagnostic> ds = s.error().diagnostics();
      for (Diagnostic& d : ds)
        d.message = "after pass '" + name + "' the graph is invalid: " + d.message;
      return Error(std::move(ds));
    }
  }
  history_.push_back({name, *changed, g.nodes().size()});
  if (*changed && opts_.printAfterAll) {
    std::fprintf(opts_.printAfterAll, "# ---- after %s: %zu nodes\n%s", name.c_str(),
                 g.nodes().size(), graphToText(g).c_str());
  }
  return *changed;
}

Expected<bool> PassManager::run(Graph& g, PassContext& ctx) {
  KILN_RETURN_IF_ERROR(checkDisabled());
  bool any = false;
  for (Stage& s : stages_) {
    for (int round = 0; round < (s.fixedPoint ? opts_.maxRounds : 1); ++round) {
      bool changed = false;
      for (auto& p : s.passes) {
        KILN_ASSIGN_OR_RETURN(bool c, runOne(*p, g, ctx));
        changed |= c;
      }
      any |= changed;
      if (!changed) break;
    }
  }
  return any;
}

void addCleanups(PassManager& pm) {
  std::vector<std::unique_ptr<Pass>> group;
  group.push_back(createSimplify());
  group.push_back(createFoldConstants());
  group.push_back(createCommonSubexprElimination());
  group.push_back(createDeadCodeElimination());
  pm.addFixedPoint(std::move(group));
}

void buildInferencePipeline(PassManager& pm) {
  addCleanups(pm);
  pm.add(createFoldBatchNorm());
  // Folding leaves scalar arithmetic on constants (epsilon) and dead nodes behind.
  addCleanups(pm);
  // Last: the groups are decided on the final graph (any rewrite after it would invalidate them).
  pm.add(createFuseElementwise());
}

void buildTrainingPipeline(PassManager& pm) {
  addCleanups(pm);
  pm.add(createFuseElementwise());
}

void buildFusionPipeline(PassManager& pm) { pm.add(createFuseElementwise()); }

}  // namespace kiln::passes
