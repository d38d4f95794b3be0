// Graph passes: the Pass interface, the registry that `kiln opt --passes=a,b,c` reads, and the
// pass manager that runs a pipeline (with fixed-point groups) and checks the graph after each
// pass.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/TrainingSpec.h"
#include "ir/Graph.h"

namespace kiln::passes {

/// What some passes need besides the graph. Passes that need a field that is not set fail with
/// an error saying so (they are never silently skipped).
struct PassContext {
  /// insert-clipping: how to clip, and the training step's gradient values (as
  /// TrainingGraphInfo::gradients gives them); the pass replaces each entry by its clipped value.
  const frontend::ClippingSpec* clipping = nullptr;
  std::vector<Value*>* gradients = nullptr;
  /// prune-frozen: parameters whose whole name matches this ECMAScript regex are frozen.
  std::string freezeRegex;
};

/// A graph transformation. run() returns whether it changed the graph, or an error a user's
/// input caused. A pass leaves a graph that verifies (the pass manager checks it).
class Pass {
 public:
  virtual ~Pass() = default;
  /// The kebab-case name used by --passes and --disable-pass.
  virtual std::string_view name() const = 0;
  virtual Expected<bool> run(Graph& g, PassContext& ctx) = 0;
};

/// One registry entry.
struct PassInfo {
  std::string_view name;
  std::string_view summary;
  std::function<std::unique_ptr<Pass>()> create;
};

/// Every pass, in the order `kiln opt --list-passes` prints them.
const std::vector<PassInfo>& passRegistry();
/// A new instance of the named pass; the error suggests the closest name.
Expected<std::unique_ptr<Pass>> createPass(std::string_view name);

struct PassManagerOptions {
  /// Run the verifier after every pass that changed the graph; a failure names the pass.
  /// On by default in debug builds (and always in tests).
#ifdef NDEBUG
  bool verifyEach = false;
#else
  bool verifyEach = true;
#endif
  /// Print the graph (protobuf text) after every pass that changed it.
  std::FILE* printAfterAll = nullptr;
  /// Passes to skip by name (--disable-pass); checked against the registry.
  std::set<std::string> disabled;
  /// Rounds a fixed-point group runs at most (a group stops earlier when no pass changes).
  int maxRounds = 10;
};

/// One executed pass, for reports.
struct PassRun {
  std::string pass;
  bool changed = false;
  size_t nodesAfter = 0;
};

/// Runs passes in order; a group added with addFixedPoint repeats until no pass in it changes
/// the graph (XLA's HloPassFix).
class PassManager {
 public:
  explicit PassManager(PassManagerOptions opts = {}) : opts_(std::move(opts)) {}
  void add(std::unique_ptr<Pass> p);
  /// Adds the named pass (error if unknown).
  Status add(std::string_view name);
  void addFixedPoint(std::vector<std::unique_ptr<Pass>> group);
  /// Checks that every name in options().disabled is a registered pass.
  Status checkDisabled() const;

  /// Runs the pipeline. The graph must verify on entry. Returns whether anything changed.
  Expected<bool> run(Graph& g, PassContext& ctx);
  Expected<bool> run(Graph& g) {
    PassContext ctx;
    return run(g, ctx);
  }
  const std::vector<PassRun>& history() const { return history_; }
  const PassManagerOptions& options() const { return opts_; }

 private:
  Expected<bool> runOne(Pass& p, Graph& g, PassContext& ctx);
  struct Stage {
    std::vector<std::unique_ptr<Pass>> passes;
    bool fixedPoint = false;
  };
  PassManagerOptions opts_;
  std::vector<Stage> stages_;
  std::vector<PassRun> history_;
};

/// The clean-ups every pipeline starts with: simplify, fold-constants, cse, dce to a fixed point.
void addCleanups(PassManager& pm);
/// The default inference pipeline: clean-ups, fold-batch-norm, clean-ups again, fuse-elementwise.
void buildInferencePipeline(PassManager& pm);
/// The default pipeline for a built training-step graph: clean-ups (the step graph repeats
/// scalar work per parameter, which cse and fold-constants remove), fuse-elementwise.
void buildTrainingPipeline(PassManager& pm);
/// fuse-elementwise alone: what the compiling commands that rewrite nothing else run (kiln
/// train's JIT, kiln build, kiln compile --mode train), so their graphs stay the ones the
/// interpreter runs, in one loop per fusion group.
void buildFusionPipeline(PassManager& pm);

// Individual passes (one file each), for code that runs one directly.
std::unique_ptr<Pass> createDeadCodeElimination();       // dce
std::unique_ptr<Pass> createCommonSubexprElimination();  // cse
std::unique_ptr<Pass> createFoldConstants();             // fold-constants
std::unique_ptr<Pass> createSimplify();                  // simplify
std::unique_ptr<Pass> createFoldBatchNorm();             // fold-batch-norm
std::unique_ptr<Pass> createPruneFrozen();               // prune-frozen
std::unique_ptr<Pass> createInsertClipping();            // insert-clipping
std::unique_ptr<Pass> createFuseElementwise();           // fuse-elementwise

/// Sets trainable=false on every trainable parameter whose whole name matches `regex`
/// (ECMAScript) and returns their names; an error if the regex does not compile. prune-frozen
/// and the trainer's --freeze both use it.
Expected<std::vector<std::string>> freezeParameters(Graph& g, const std::string& regex);

/// Whether a node draws random numbers keyed by its name (training-mode dropout, alpha dropout,
/// rrelu): such nodes are never merged, folded or duplicated.
bool isRandom(const Node& n);

}  // namespace kiln::passes
