// The code generator's internal state while it emits one graph's predict function: buffers,
// loops, run-time checks, the elemental emitter and the per-op loop nests. Not a public API.
#pragma once

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/codegen/MathEmitter.h"
#include "compiler/codegen/MemoryPlan.h"
#include "ir/Graph.h"

namespace kiln::codegen {

/// The position of one element: its coordinates, and (when known) its row-major offset, so
/// that reading a same-shaped buffer needs no multiplication and reshapes need no division.
/// Either may be missing (empty dims, null linear); the emitter derives one from the other.
struct Index {
  std::vector<llvm::Value*> dims;
  llvm::Value* linear = nullptr;
};

class FunctionEmitter {
 public:
  FunctionEmitter(const Graph& g, const Schedule& s, llvm::Module& m, llvm::Function* fn,
                  llvm::Value* batch);

  llvm::IRBuilder<>& builder() { return b_; }
  MathEmitter& math() { return math_; }

  /// Registers where a stored value lives (inputs, parameters, outputs, arena slots).
  void setBuffer(const Value* v, llvm::Value* ptr) { buffers_[v] = ptr; }
  bool hasBuffer(const Value* v) const { return buffers_.count(v) != 0; }
  /// The buffer of v; constants get a read-only global.
  llvm::Value* bufferOf(const Value* v);

  // ---- Types and shapes ----
  /// Register type: float, double, i32, i64; bool is i1.
  llvm::Type* regType(DType t);
  /// Memory type: as regType but bool is one byte.
  llvm::Type* memType(DType t);
  llvm::Value* i64(int64_t v) { return b_.getInt64(static_cast<uint64_t>(v)); }
  llvm::Value* dimSize(int64_t d) { return d == kBatch ? batch_ : i64(d); }
  llvm::Value* elementCount(const Shape& s);
  llvm::Value* linearOf(const Index& idx, const Shape& s);
  const std::vector<llvm::Value*>& dimsOf(Index& idx, const Shape& s);
  /// The index into an operand of shape `in` for result index `idx` of shape `out` (NumPy
  /// broadcasting: right-aligned, size-1 dimensions read element 0).
  Index broadcastIndex(Index& idx, const Shape& out, const Shape& in);

  // ---- Memory ----
  /// Alias scopes for the loop of `loopNodes` (emitNode calls it): every buffer that loop reads or
  /// writes gets a scope, and each load and store of one of them is marked as not aliasing the
  /// others. They are disjoint memory (the arena plan never overlaps buffers alive at the same
  /// step; inputs, outputs, parameters and the arena must not overlap: runtime/KilnABI.h), but
  /// LLVM cannot see it through pointers loaded from the argument arrays, and without it a loop
  /// that reads a scalar or updates state in place stays scalar ("unknown data dependence").
  /// Buffers that are the same memory (a state update written into its parameter) share a scope.
  void beginAliasScopes(const std::vector<const Node*>& loopNodes);
  void endAliasScopes() { accessScopes_.clear(); }
  llvm::Value* load(const Value* v, const Index& idx);
  void store(const Value* v, llvm::Value* linear, llvm::Value* x);
  /// A stack slot in the entry block (promoted to registers by mem2reg).
  llvm::AllocaInst* local(llvm::Type* t, const char* name);

  // ---- Control flow ----
  /// for (i = 0; i < n; ++i) body(i); requires n >= 1 (every dimension and the batch are).
  void loop(llvm::Value* n, const std::function<void(llvm::Value*)>& body);
  /// Loops over every element of `shape` in row-major order (innermost last: contiguous).
  void loopNest(const Shape& shape, const std::function<void(Index&)>& body);
  /// Records a run-time check: when `failed` is true the function returns this check's id.
  void check(llvm::Value* failed, const Node& n, const std::string& message);
  /// Registers a check the caller emits itself; returns its id.
  int addCheckMessage(std::string message) {
    checks_.push_back(std::move(message));
    return static_cast<int>(checks_.size());
  }
  const std::vector<std::string>& checkMessages() const { return checks_; }
  llvm::Value* statusSlot() const { return status_; }

  // ---- Outlined loops (for the runtime to call, possibly on several threads) ----
  /// Emits body(begin, end) into a new function `name` of type kiln_range_fn (internal linkage),
  /// then call(fn, ctx) to emit the runtime call that runs it, ctx being a stack struct of the
  /// current function. Inside the new function the buffers of `values` (every stored value the
  /// body reads or writes; constants need not be listed), the batch size and the random key are
  /// loaded from ctx, and a failed run-time check is reported to the current function's status
  /// after the call (the largest failed id, whatever order the blocks ran in). The body may run on
  /// several threads at once on disjoint ranges, so it must write only elements of its range.
  void outline(const std::string& name, const std::vector<const Value*>& values,
               const std::function<void(llvm::Value* begin, llvm::Value* end)>& body,
               const std::function<void(llvm::Function* fn, llvm::Value* ctx)>& call);
  /// Runs body over [0, n) through kiln_rt_parallel_for (chunks of whole multiples of `grain`;
  /// one chunk when the runtime has one thread), outlined as above.
  void parallelLoop(const std::string& name, llvm::Value* n, int64_t grain,
                    const std::vector<const Value*>& values,
                    const std::function<void(llvm::Value* begin, llvm::Value* end)>& body);

  // ---- Random numbers (Random.cpp) ----
  /// The entry point's seed and step arguments, which key every random number.
  void setRandomKey(llvm::Value* seed, llvm::Value* step) {
    seed_ = seed;
    step_ = step;
  }
  /// Draw i of node n's stream in double, bit for bit the interpreter's
  /// RandomStream::forStep(seed, n's name or its noise_from, step).uniform(i).
  llvm::Value* uniform(const Node& n, llvm::Value* i);

  // ---- Elements (Elemental.cpp) ----
  /// Element idx of v: a load if v is stored, else computed from its operands' elements.
  llvm::Value* element(const Value* v, Index idx);
  /// Element idx of v computed from its operands even if v has a buffer (to fill that buffer).
  llvm::Value* compute(const Value* v, Index& idx);
  /// Scalar conversion with the interpreter's cast semantics.
  llvm::Value* convert(llvm::Value* x, DType from, DType to, const Node& n);

  // ---- Whole ops (EmitKernels.cpp) ----
  /// Stores every stored result of n (an elemental loop, or the op's own loop nest / call).
  void emitNode(const Node& n);

 private:
  llvm::Value* elementwise(const Node& n, unsigned result, Index& idx);
  llvm::Value* injective(const Node& n, Index& idx);
  void emitNodeLoops(const Node& n);
  void emitMatMul(const Node& n);
  /// The matmul n in row blocks, each followed by epilogue's loop over that block's rows.
  void emitMatMulWithEpilogue(const Node& n, const Node& epilogue);
  /// Stores every stored result of elemental node n (one loop over the result).
  void emitElemental(const Node& n);
  /// One loop over the shape of stored[0] (every value in `stored` has it) computing and storing
  /// each value of `stored` per element, in order; `reads` are the stored values the loop reads.
  void emitElementalLoop(const std::vector<const Value*>& stored, const std::vector<const Value*>& reads);
  /// Estimated cost of one element of an elemental loop (see kParallelWork in EmitKernels.cpp).
  int64_t elementCost(const std::vector<const Value*>& stored, const std::vector<const Value*>& reads) const;
  void emitReduction(const Node& n);
  void emitSoftmax(const Node& n, bool log);
  void emitSparseCrossEntropy(const Node& n, bool accuracy);
  void emitMeanLoss(const Node& n);
  void emitArgMax(const Node& n);
  void emitBatchNormTraining(const Node& n);
  // ---- Column kernels (EmitKernels.cpp): reductions of a [rows, cols] block over its rows ----
  /// Reduction n whose reduced axes all precede its kept ones: rows outer, columns inner.
  void emitColumnReduction(const Node& n, const Shape& reducedShape, const Shape& keptShape);
  /// Batch norm training whose feature axis is the last one: rows outer, features inner.
  void emitBatchNormTrainingColumns(const Node& n);
  /// body(c0, width) for consecutive column chunks [c0, c0 + width) of at most kColumnChunk
  /// columns covering [0, cols); a single chunk with constant bounds when cols is a small constant.
  void columnChunks(llvm::Value* cols, const std::function<void(llvm::Value*, llvm::Value*)>& body);
  /// Stack block `slot` of kColumnChunk 8-byte elements (entry block, 64-byte aligned), shared
  /// by every column kernel since they run one after another.
  llvm::Value* columnBlock(unsigned slot);
  static constexpr int64_t kColumnChunk = 512;
  /// body(first row, count) over rows [0, rows): groups of kRowGroup rows, then single rows.
  void rowGroups(llvm::Value* rows, const std::function<void(llvm::Value*, int)>& body);
  static constexpr int kRowGroup = 4;
  llvm::Value* labelIndex(const Node& n, const Value* labels, llvm::Value* row, llvm::Value* classes);
  llvm::Value* floatConst(DType t, double v) { return llvm::ConstantFP::get(regType(t), v); }

  const Graph& g_;
  const Schedule& s_;
  llvm::Module& m_;
  llvm::Function* fn_;
  llvm::IRBuilder<> b_;
  MathEmitter math_;
  llvm::Value* batch_;
  llvm::AllocaInst* status_ = nullptr;
  llvm::Value* seed_ = nullptr;
  llvm::Value* step_ = nullptr;
  std::map<const Value*, llvm::Value*> buffers_;
  /// compute()'s results within one stored element's expression, by value and index.
  std::map<std::pair<const Value*, std::vector<llvm::Value*>>, llvm::Value*> computed_;
  int computeDepth_ = 0;
  /// Marks a load or store of v's buffer with the current loop's alias scopes (if v has any).
  void annotateAccess(llvm::Instruction* inst, const Value* v);
  llvm::MDNode* aliasDomain_ = nullptr;
  std::map<llvm::Value*, llvm::MDNode*> scopeOfBuffer_;  // by the buffer's pointer in the entry function
  struct AccessScopes {
    llvm::MDNode* scope = nullptr;    // !alias.scope: the buffer's own scope
    llvm::MDNode* noalias = nullptr;  // !noalias: the other buffers of the current loop
  };
  std::map<const Value*, AccessScopes> accessScopes_;  // the current loop's buffers
  std::vector<std::string> checks_;
  std::vector<llvm::AllocaInst*> columnBlocks_;
};

}  // namespace kiln::codegen
