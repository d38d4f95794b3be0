// The rules of elementwise fusion, shared by the fuse-elementwise pass (which decides the groups
// and writes them into the graph as `fusion_group` attributes) and by the code generator (which
// follows the attributes and checks each one against the same rules before it trusts it, so a
// hand-written or stale annotation can never produce wrong code).
#pragma once

#include <set>
#include <string>

#include "ir/Graph.h"

namespace kiln::passes {

/// Whether n's loop reads each operand element once, at the index it computes, so an operand
/// computed inline costs nothing extra. Not: matmul (the runtime reads its operands from
/// memory), softmax, log-softmax, the losses and accuracy (several passes over a row), training
/// batch norm (mean, variance, then normalization).
bool readsOperandsInOnePass(const Node& n);

/// Whether a result of n can be computed element by element inside its reader's loop: the
/// elementwise and broadcast fusion classes, and batch norm in inference form (per-feature
/// elementwise). Training batch norm needs batch statistics first; injective ops (transpose,
/// reshape, slice) move elements, which the elemental emitter does not index through.
bool fusesIntoReader(const Node& n);

/// Why value v cannot be computed inside the loop of its readers, or "" when it can (TVM's
/// fusion lattice restricted to what the elemental emitter does): v's node fuses into readers
/// (fusesIntoReader), v is not a graph output (`outputs`), it has a reader, and every reader
/// reads its operands in one pass and does not broadcast v to a larger shape (a learning rate
/// or an optimizer's bias correction would be recomputed for every element it is broadcast to;
/// stored, it is computed once). Callers also require that all readers lie in one loop (one
/// fusion group), or v would be computed in each.
std::string whyNotFused(const Value& v, const std::set<const Value*>& outputs);

/// Why node `e` cannot be the epilogue of matmul `mm` (run over each row block of the product
/// right after that block is multiplied), or "" when it can. `inlined` are the values computed
/// inside their reader's loop. e must be elemental; its stored results must have the product's
/// shape; every path from the product into e's loop must read it at the index e computes; every
/// reader of the product must be in e's loop (in training it also feeds the backward pass, which
/// needs all of it); and no result of e that is a graph output may overwrite a parameter the
/// matmul reads (a training step updates parameters in place: a block's epilogue would
/// overwrite what later blocks still read).
std::string whyNotEpilogue(const Node& mm, const Node& e, const std::set<const Value*>& inlined,
                           const std::set<const Value*>& outputs);

/// The graph's output values.
std::set<const Value*> outputValues(const Graph& g);

}  // namespace kiln::passes
