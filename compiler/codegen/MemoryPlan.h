// Fusion decisions and the static memory plan of a graph lowered to native code: which values are
// computed inside their user's loop, and where every other intermediate lives in the arena.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/Graph.h"

namespace kiln::codegen {

/// What the lowering emits, in order, and which values it fuses.
struct Schedule {
  /// Every node in a topological order (leaves included).
  std::vector<const Node*> order;
  /// Values never stored: each is computed element by element inside the loop of its one user
  /// (elementwise and broadcast ops, inference batch norm, constants). Everything else that is
  /// not an input or a parameter gets a buffer.
  std::set<const Value*> inlined;
  /// Matmul -> its epilogue: the stored elemental node whose loop runs over each row block of
  /// the product right after that block is multiplied, while it is still in cache (planEpilogues).
  std::map<const Node*, const Node*> epilogues;
  int64_t epilogueBlockBytes = 0;  // ScheduleOptions::epilogueBlockBytes
  /// Consecutive elemental nodes that share one loop (planLoopMerges): first member -> every
  /// member in order. The loop runs at the first member's position; the others emit nothing.
  std::map<const Node*, std::vector<const Node*>> mergedLoops;

  bool isInlined(const Value* v) const { return inlined.count(v) != 0; }
  /// Whether n is some matmul's epilogue (emitted by that matmul, not at its own position).
  bool isEpilogue(const Node* n) const {
    for (const auto& [mm, e] : epilogues)
      if (e == n) return true;
    return false;
  }
  /// The members of the merged loop n belongs to (n first or not), or nullptr.
  const std::vector<const Node*>* mergedLoopOf(const Node* n) const {
    for (const auto& [head, members] : mergedLoops)
      if (std::find(members.begin(), members.end(), n) != members.end()) return &members;
    return nullptr;
  }
};

/// Knobs of scheduleGraph. Which values fuse is not one of them: the fuse-elementwise pass
/// decides that and writes it into the graph (--disable-pass fuse-elementwise to measure it).
struct ScheduleOptions {
  /// Bytes of product per row block of a fused matmul epilogue (at least 8 rows; the runtime
  /// rounds up to a multiple of 8). 0, the default, leaves it to kiln_rt_matmul_*_blocked, which
  /// packs B once and runs blocks of about 64 KB of C (runtime/AbiKernels.cpp, measured in
  /// benchmarks/KernelsBench.cpp). Tests set it to exercise given block boundaries.
  int64_t epilogueBlockBytes = 0;
};

/// Orders the live nodes and follows the graph's `fusion_group` attributes (the fuse-elementwise
/// pass): a value is computed inside its reader's loop when its node and every reader share a
/// group; without attributes every intermediate is stored and each op runs its own loop
/// (constants are always read in place). Each annotation is checked against the fusion rules
/// (compiler/passes/Fusion.h): one that would compute a value where the rules forbid it is an
/// error naming the node; a value that leaves its group (an output, or a reader outside it) is
/// stored.
Expected<Schedule> scheduleGraph(const Graph& g, const ScheduleOptions& options = {});

/// Pairs each matmul with the fuse-elementwise pass's epilogue (the node of the same fusion
/// group) when that node is, in the final order, the next node that emits anything and the
/// epilogue rules still hold (call it after any reordering, before planMemory); otherwise the
/// product is stored first. The pair then runs as one step: blocks of rows multiplied, each
/// block's epilogue right after it.
void planEpilogues(const Graph& g, Schedule& s);

/// Multi-output loops (XLA's sibling and producer-consumer multi-output fusion, restricted to
/// neighbours): consecutive nodes that emit code, are elemental (not an epilogue), carry a
/// fusion_group (the fuse-elementwise pass ran) and store results of one and the same shape run as
/// one loop that computes and stores each member's results element by element, in order. A later
/// member reads an earlier one's result at the index being computed (same shape, elementwise),
/// right after it is stored, so the result is the same as one loop per node; an optimizer's
/// updates of m, v and the weights then pass over memory once instead of once per group. Call it
/// after planEpilogues, before planMemory (which keeps every buffer a merged loop touches alive
/// over the whole loop).
void planLoopMerges(const Graph& g, Schedule& s);

/// One intermediate's place in the arena. Sizes that depend on the batch are per batch row:
/// the buffer of a [-1, 300] float32 value is 1200 * batch bytes.
struct BufferSlot {
  const Value* value = nullptr;
  bool perBatch = false;  // offset and bytes are multiplied by the batch size
  int64_t bytes = 0;      // rounded up to kArenaAlignment
  int64_t offset = 0;     // within its region (the static one, or the per-batch one)
  int firstStep = 0, lastStep = 0;  // positions in Schedule::order where it is written / last read
};

/// The arena: a static region, then a region scaled by the batch. A plan made for batch 1 and
/// scaled stays valid for every batch because every size and offset in the scaled region is
/// proportional to it.
struct MemoryPlan {
  static constexpr int64_t kArenaAlignment = 64;
  std::vector<BufferSlot> slots;
  int64_t staticBytes = 0, perBatchBytes = 0;                 // with reuse
  int64_t staticBytesNoReuse = 0, perBatchBytesNoReuse = 0;   // one buffer per intermediate

  int64_t arenaSize(int64_t batch) const { return staticBytes + perBatchBytes * batch; }
  int64_t arenaSizeNoReuse(int64_t batch) const {
    return staticBytesNoReuse + perBatchBytesNoReuse * batch;
  }
  const BufferSlot* find(const Value* v) const;
  /// Where slot s starts for this batch.
  int64_t offsetOf(const BufferSlot& s, int64_t batch) const {
    return s.perBatch ? staticBytes + s.offset * batch : s.offset;
  }
};

/// Assigns arena offsets to every stored intermediate (not inputs, parameters or graph outputs,
/// which the caller owns) from their lifetimes: greedy by size, each buffer at the lowest offset
/// that overlaps no buffer alive at the same time (the TFLite arena planner's strategy).
MemoryPlan planMemory(const Graph& g, const Schedule& s);

/// Every stored value the loop of `n` reads, looking through inlined operands.
std::vector<const Value*> storedReads(const Node& n, const Schedule& s);

}  // namespace kiln::codegen
