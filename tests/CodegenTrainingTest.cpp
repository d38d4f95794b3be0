// Compiled training against the interpreter: the entry-point ABI (runtime/KilnABI.h), random
// masks bit for bit (dropout, alpha dropout, rrelu), training-mode batch norm, state updated in
// place or through the arena, and JitExecutor running the examples' training steps.
#include <gtest/gtest.h>

#include <llvm/IR/LLVMContext.h>

#include <filesystem>

#include "CodegenTestUtil.h"
#include "compiler/codegen/JitExecutor.h"
#include "compiler/codegen/Lowering.h"
#include "compiler/training/Trainer.h"
#include "ir/Builder.h"

namespace kiln {
namespace {

/// y = relu(x), x float32[-1, 3], in a graph named "tiny net".
void buildTiny(Graph& g) {
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 3});
  g.addOutput("y", b.op(OpKind::Relu, {x}));
}

TEST(CodegenTraining, EntrySymbolsFollowTheAbi) {
  Graph g("tiny net");
  buildTiny(g);
  ASSERT_TRUE(verifyGraph(g));
  llvm::LLVMContext ctx;
  for (auto [entry, want] : {std::pair{KILN_ENTRY_PREDICT, "tiny_net_predict"},
                             {KILN_ENTRY_TRAIN_STEP, "tiny_net_train_step"},
                             {KILN_ENTRY_EVALUATE, "tiny_net_evaluate"}}) {
    auto lowered = codegen::lowerGraph(g, ctx, /*name=*/"", /*schedule=*/{}, entry);
    ASSERT_TRUE(lowered) << lowered.error().str();
    EXPECT_EQ(lowered->entrySymbol, want);
    EXPECT_EQ(lowered->arenaSizeSymbol, std::string(want) + "_arena_size");
    llvm::Function* f = lowered->module->getFunction(want);
    ASSERT_NE(f, nullptr) << want;
    // kiln_entry_fn: (batch, inputs, outputs, params, arena, seed, step) -> int32.
    ASSERT_EQ(f->arg_size(), 7u);
    EXPECT_TRUE(f->getReturnType()->isIntegerTy(32));
    EXPECT_TRUE(f->getArg(5)->getType()->isIntegerTy(64));
    EXPECT_TRUE(f->getArg(6)->getType()->isIntegerTy(64));
    EXPECT_NE(lowered->module->getFunction(std::string(want) + "_arena_size"), nullptr);
  }
}

TEST(CodegenTraining, JitCallsTheChosenEntry) {
  Graph g("tiny net");
  buildTiny(g);
  ASSERT_TRUE(verifyGraph(g));
  codegen::JitOptions opts;
  opts.entry = KILN_ENTRY_EVALUATE;
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  float x[6] = {-1, 2, -3, 4, 0, 5}, y[6] = {};
  const void* in[] = {x};
  void* out[] = {y};
  std::vector<unsigned char> arena(static_cast<size_t>((*jit)->arenaSize(2)) + 64);
  void* a = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(arena.data()) + 63) / 64 * 64);
  ASSERT_EQ((*jit)->call(/*batch=*/2, in, out, /*params=*/nullptr, a, /*seed=*/9, /*step=*/4), 0);
  const float want[6] = {0, 2, 0, 4, 0, 5};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

/// Runs g through the JIT and the interpreter on the same inputs and parameters, with this seed
/// and step, and expects every output to be equal element for element (bit for bit: these
/// graphs compute in double and round once, exactly as the interpreter does).
void expectBitIdentical(Graph& g, const std::map<std::string, Tensor>& inputs,
                        const std::map<std::string, Tensor>& params, uint64_t seed, int64_t step) {
  test::fuse(g);
  auto jit = codegen::JitGraph::compile(g);
  ASSERT_TRUE(jit) << jit.error().str();
  Interpreter interp(g);
  for (const auto& [name, value] : params) ASSERT_TRUE(interp.setParameter(name, value));
  RunOptions opts;
  opts.seed = seed;
  opts.step = step;
  auto want = interp.run(inputs, opts);
  ASSERT_TRUE(want) << want.error().str();
  auto got = (*jit)->run(inputs, params, seed, step);
  ASSERT_TRUE(got) << got.error().str();
  for (const GraphOutput& o : g.outputs()) {
    const Tensor& a = got->at(o.name);
    const Tensor& w = want->at(o.name);
    ASSERT_EQ(a.type(), w.type()) << o.name;
    int64_t mismatches = 0;
    for (int64_t i = 0; i < a.size(); ++i)
      if (a.getDouble(i) != w.getDouble(i) && mismatches++ < 5)
        ADD_FAILURE() << o.name << "[" << i << "]: jit " << a.getDouble(i) << ", interpreter " << w.getDouble(i)
                      << " (seed " << seed << ", step " << step << ")";
    EXPECT_EQ(mismatches, 0) << o.name;
  }
}

Tensor normalTensor(DType dt, const Shape& shape, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  return test::randomTensor(dt, shape, {.floatScale = scale}, rng);
}

TEST(CodegenTraining, RandomMasksAreTheInterpretersBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Graph g("masks");
    Builder b(g);
    Value* x = b.input("x", dt, {-1, 37});
    g.addOutput("dropout", b.op(OpKind::Dropout, {x}, {{"rate", 0.3}, {"training", true}}, "drop"));
    g.addOutput("alpha_dropout", b.op(OpKind::AlphaDropout, {x}, {{"rate", 0.1}, {"training", true}}, "adrop"));
    g.addOutput("rrelu", b.op(OpKind::RRelu, {x}, {{"lower", 0.1}, {"upper", 0.4}, {"training", true}}, "rr"));
    // A gradient reuses its forward node's mask through noise_from; fused into a user here.
    Value* g1 = b.op(OpKind::Dropout, {x}, {{"rate", 0.3}, {"training", true}, {"noise_from", std::string("drop")}}, "drop_grad");
    g.addOutput("reused", b.op(OpKind::Mul, {g1, x}));
    ASSERT_TRUE(verifyGraph(g));
    Tensor in = normalTensor(dt, {53, 37}, 7);
    for (auto [seed, step] : {std::pair<uint64_t, int64_t>{0, 0}, {42, 1}, {42, 2}, {0xFFFFFFFF12345678ull, 1000003}})
      expectBitIdentical(g, {{"x", in}}, {}, seed, step);
  }
}

TEST(CodegenTraining, MasksDependOnSeedAndStepAndKeepTheRate) {
  // The bit-for-bit test above would pass with masks that ignore the key; these would not.
  Graph g("rate");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 100});
  g.addOutput("y", b.op(OpKind::Dropout, {x}, {{"rate", 0.25}, {"training", true}}, "drop"));
  ASSERT_TRUE(verifyGraph(g));
  auto jit = codegen::JitGraph::compile(g);
  ASSERT_TRUE(jit) << jit.error().str();
  Tensor ones(DType::Float32, {40, 100});
  for (int64_t i = 0; i < ones.size(); ++i) ones.setDouble(i, 1.0);
  auto mask = [&](uint64_t seed, int64_t step) {
    auto out = (*jit)->run({{"x", ones}}, {}, seed, step);
    EXPECT_TRUE(out) << out.error().str();
    std::vector<bool> m;
    for (int64_t i = 0; out && i < out->at("y").size(); ++i) m.push_back(out->at("y").getDouble(i) == 0.0);
    return m;
  };
  std::vector<bool> a = mask(1, 0), b2 = mask(1, 1), c = mask(2, 0);
  EXPECT_NE(a, b2);
  EXPECT_NE(a, c);
  double dropped = double(std::count(a.begin(), a.end(), true)) / double(a.size());
  EXPECT_NEAR(dropped, 0.25, 0.03);  // 4000 draws: three standard deviations are 0.021.
}

TEST(CodegenTraining, BatchNormTrainingMatchesTheInterpreter) {
  struct Case {
    Shape shape;
    int64_t axis;
  };
  for (DType dt : {DType::Float32, DType::Float64})
    // Features last (rows-outer kernel: one chunk, two chunks of 512 + 88, two row axes) and in
    // the middle (per-feature kernel).
    for (Case c : {Case{{-1, 5}, -1}, Case{{-1, 600}, -1}, Case{{-1, 4, 3}, -1}, Case{{-1, 4, 3}, 1}}) {
      Graph g("bn");
      Builder b(g);
      Value* x = b.input("x", dt, c.shape);
      int64_t features = c.shape[static_cast<size_t>(c.axis < 0 ? c.axis + int64_t(c.shape.size()) : c.axis)];
      Value* gamma = b.parameter("gamma", {features}, {{"dtype", dt}});
      Value* beta = b.parameter("beta", {features}, {{"dtype", dt}});
      Value* mean = b.parameter("mean", {features}, {{"dtype", dt}});
      Value* var = b.parameter("var", {features}, {{"dtype", dt}});
      Node* bn = b.create(OpKind::BatchNorm, {x, gamma, beta, mean, var},
                        {{"axis", c.axis}, {"momentum", 0.9}, {"epsilon", 1e-3}, {"training", true}}, "bn");
      ASSERT_NE(bn, nullptr);
      g.addOutput("y", bn->result(0));
      g.addOutput("new_mean", bn->result(1));
      g.addOutput("new_var", bn->result(2));
      ASSERT_TRUE(verifyGraph(g)) << verifyGraph(g).error().str();
      std::map<std::string, Tensor> params;
      for (auto [name, seed] : {std::pair{"gamma", 1}, {"beta", 2}, {"mean", 3}, {"var", 4}})
        params[name] = normalTensor(dt, {features}, seed, 0.5);
      for (int64_t i = 0; i < features; ++i) params["var"].setDouble(i, 0.5 + std::abs(params["var"].getDouble(i)));
      Shape bound = bindBatch(c.shape, 37);
      // An offset of 3: the two-pass variance matters.
      Tensor in = normalTensor(dt, bound, 5);
      for (int64_t i = 0; i < in.size(); ++i) in.setDouble(i, 3 + in.getDouble(i));
      expectBitIdentical(g, {{"x", in}}, params, 0, 0);
    }
}

TEST(CodegenTraining, ColumnReductionsAreTheInterpretersBitForBit) {
  // Reductions over the leading axes run rows-outer with one accumulator per column; each column
  // must still add in row order. Magnitudes spread over 2^±40 make the double sums inexact, so
  // any other order (a reassociated or vectorized-down-the-column sum) shows up in the last bit.
  for (DType dt : {DType::Float32, DType::Float64}) {
    Graph g("columns");
    Builder b(g);
    Value* x = b.input("x", dt, {-1, 300});
    Value* wide = b.input("wide", dt, {-1, 700});  // Two chunks: 512 + 188 columns.
    Value* cube = b.input("cube", dt, {-1, 4, 30});
    auto red = [&](OpKind op, std::vector<int64_t> axes, bool keep, Value* v) {
      return b.op(op, {v}, {{"axes", axes}, {"keepdims", keep}});
    };
    g.addOutput("sum", red(OpKind::ReduceSum, {0}, false, x));
    g.addOutput("sum_inlined", red(OpKind::ReduceSum, {0}, false, b.op(OpKind::Square, {x})));
    g.addOutput("mean_keep", red(OpKind::ReduceMean, {0}, true, x));
    g.addOutput("max", red(OpKind::ReduceMax, {0}, false, b.op(OpKind::Neg, {x})));
    g.addOutput("sum_wide", red(OpKind::ReduceSum, {0}, false, wide));
    g.addOutput("max_wide", red(OpKind::ReduceMax, {0}, false, wide));
    g.addOutput("sum_two_axes", red(OpKind::ReduceSum, {1, 0}, false, cube));
    g.addOutput("mean_two_axes", red(OpKind::ReduceMean, {0, 1}, true, cube));
    Value* ints = b.input("ints", DType::Int32, {-1, 6});
    g.addOutput("int_sum", red(OpKind::ReduceSum, {0}, false, ints));
    g.addOutput("int_max", red(OpKind::ReduceMax, {0}, false, ints));
    ASSERT_TRUE(verifyGraph(g)) << verifyGraph(g).error().str();
    std::mt19937_64 rng(11);
    std::uniform_int_distribution<int> exponent(-40, 40);
    auto spread = [&](const Shape& shape) {
      Tensor t = normalTensor(dt, shape, rng());
      for (int64_t i = 0; i < t.size(); ++i) t.setDouble(i, std::ldexp(t.getDouble(i), exponent(rng)));
      return t;
    };
    // Up to ±2e9 each: the int64 sums leave int32 and wrap when narrowed, as the interpreter's.
    auto bigInts = [&](int64_t batch) {
      Tensor t(DType::Int32, {batch, 6});
      for (int64_t i = 0; i < t.size(); ++i) t.setDouble(i, double(exponent(rng)) * 5e7);
      return t;
    };
    for (int64_t batch : {1, 200})
      expectBitIdentical(g, {{"x", spread({batch, 300})}, {"wide", spread({batch, 700})},
                             {"cube", spread({batch, 4, 30})}, {"ints", bigInts(batch)}},
                         {}, 0, 0);
  }
}

/// Random inputs for a step graph: floats normal(0, 1), integer labels in [0, classes) with
/// classes read off the graph's sparse cross-entropy logits.
std::map<std::string, Tensor> randomStepInputs(const Graph& g, int64_t batch, uint64_t seed) {
  int64_t classes = 2;
  for (const auto& n : g.nodes())
    if (n->op() == OpKind::SparseSoftmaxCrossEntropy) classes = n->operand(0)->type().shape.back();
  std::mt19937_64 rng(seed);
  std::map<std::string, Tensor> in;
  for (Node* x : g.inputs()) {
    const TensorType& t = x->result()->type();
    in[x->name()] = test::randomTensor(t.dtype, bindBatch(t.shape, batch),
                                       {.floatScale = 1.0, .intLo = 0, .intHi = classes - 1}, rng);
  }
  return in;
}

/// The example model files (examples/*/*.model.pbtxt), sorted.
std::vector<std::string> exampleModels() {
  std::vector<std::string> files;
  for (const auto& d : std::filesystem::directory_iterator(test::sourcePath("examples")))
    for (const auto& f : std::filesystem::directory_iterator(d.path()))
      if (f.path().string().ends_with(".model.pbtxt")) files.push_back(f.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

/// Every float32 in g made float64 (each dtype attribute: inputs, parameters, constants, casts),
/// then re-verified so every value's type follows.
void widenToFloat64(Graph& g) {
  for (Node* n : g.nodes()) {
    std::vector<std::string> names;
    for (const auto& [name, value] : n->attrs())
      if (const DType* d = std::get_if<DType>(&value); d && *d == DType::Float32) names.push_back(name);
    // Leaves leave a float32 dtype to its default.
    OpKind op = n->op();
    if ((op == OpKind::Parameter || op == OpKind::Input || op == OpKind::Constant) && !n->attrs().count("dtype"))
      names.push_back("dtype");
    for (const std::string& name : names) n->setAttr(name, DType::Float64);
  }
}

/// Runs three training steps of g through JitExecutor and InterpreterExecutor from the same
/// initial state and seed, on random inputs at batch 12, and expects every returned output and
/// every state tensor to agree within `tol` (test::scaledError) after each step.
void expectStepsMatch(Graph& g, double tol, const std::string& label) {
  SCOPED_TRACE(label);
  Status v = verifyGraph(g);
  ASSERT_TRUE(v) << v.error().str();
  test::fuse(g);  // as kiln train compiles it
  const uint64_t seed = 11;
  InterpreterExecutor interp(g, /*updatesState=*/true, seed);
  auto jit = codegen::makeJitExecutor(g, /*updatesState=*/true, seed);
  ASSERT_TRUE(jit) << jit.error().str();
  EXPECT_EQ((*jit)->kind(), "jit");
  ASSERT_TRUE(interp.initialize(5));
  ASSERT_TRUE((*jit)->initialize(5));
  EXPECT_EQ((*jit)->stateNames(), interp.stateNames());
  for (const auto& [name, want] : interp.state())
    ASSERT_EQ(test::scaledError((*jit)->state().at(name), want), 0.0) << "initial " << name;
  double worstOut = 0, worstState = 0;
  for (int64_t step = 0; step < 3; ++step) {
    auto inputs = randomStepInputs(g, /*batch=*/12, /*seed=*/100 + uint64_t(step));
    auto want = interp.run(inputs, step);
    ASSERT_TRUE(want) << want.error().str();
    auto got = (*jit)->run(inputs, step);
    ASSERT_TRUE(got) << got.error().str();
    ASSERT_TRUE(got->count("loss"));
    for (const auto& [name, t] : *got) {
      double err = test::scaledError(t, want->at(name));
      worstOut = std::max(worstOut, err);
      EXPECT_LE(err, tol) << "output " << name << " at step " << step;
    }
    std::map<std::string, Tensor> wantState = interp.state(), gotState = (*jit)->state();
    for (const auto& [name, w] : wantState) {
      double err = test::scaledError(gotState.at(name), w);
      worstState = std::max(worstState, err);
      EXPECT_LE(err, tol) << "state " << name << " after step " << step;
    }
  }
  std::printf("%-45s worst output error %.2e, worst state error %.2e\n", label.c_str(), worstOut, worstState);
}

/// The example's training step; with `withoutScaledOptimizer`, an optimizer that divides by a
/// root mean square of the gradients (adagrad, rmsprop and the adam family) is replaced by
/// nesterov momentum with the same learning rate (see the float32 test).
Expected<TrainingModel> loadExample(const std::string& file, bool withoutScaledOptimizer = false) {
  auto adjust = [&](frontend::TrainingSpec& s) {
    using K = frontend::OptimizerKind;
    K k = s.optimizer.kind;
    if (withoutScaledOptimizer && k != K::Sgd && k != K::Momentum && k != K::Nesterov) s.optimizer.kind = K::Nesterov;
  };
  return loadTrainingModel(file, "", adjust, [](const frontend::TrainingSpec&) { return int64_t{100}; });
}

// Float32, as trained. Not bit-identical: float32 matmuls accumulate in float32 in a blocked
// order (the runtime kernel vs the interpreter's Eigen call) and the compiled float32 exp, log,
// expm1 are inline approximations (MathEmitter.h), so values differ in the last bits and the
// updates carry that on. 2e-5 is the forward models' tolerance (CodegenModelsTest); the worst
// errors seen are printed (about 1e-5 at most).
// Optimizers that divide by a root mean square of the gradients take nesterov momentum's place
// here: their first steps move each weight by about lr·g/(|g| + ε), so a gradient that is 0 but
// for rounding (a bias before batch norm, which cancels it) or below ε gets an update of up to
// lr set by float32 noise alone (seen: 8e-5 on fashion_best's nadam). The float64 test below
// runs every example with its own optimizer.
// deep_selu is left to the float64 test below: SELU's derivative jumps at 0 (λ against λα), and
// its 20 layers x 100 units x 12 rows give pre-activations within float32 noise of 0, whose sign
// then differs between any two float32 evaluation orders (seen: 5.1e-6 in the interpreter,
// -9.1e-7 compiled, at step 2), changing one unit's gradient by O(1). That is a property of
// float32, not of the compiler, and no tolerance short of O(1) would hide it honestly.
TEST(CodegenTraining, ExampleTrainingStepsMatchTheInterpreter) {
  std::vector<std::string> files = exampleModels();
  ASSERT_GE(files.size(), 8u);
  for (const std::string& file : files) {
    if (file.ends_with("deep_selu.model.pbtxt")) continue;
    auto m = loadExample(file, /*withoutScaledOptimizer=*/true);
    ASSERT_TRUE(m) << m.error().str();
    expectStepsMatch(*m->stepGraph, 2e-5, std::filesystem::path(file).filename().string());
  }
}

// The same steps with every float32 made float64, for all the examples (deep_selu included):
// the compiled float64 math calls libm as the interpreter does, so what differs is summation
// order, at about 1e-16 relative; 1e-11 leaves room for three steps of twenty layers.
TEST(CodegenTraining, ExampleTrainingStepsMatchTheInterpreterInFloat64) {
  for (const std::string& file : exampleModels()) {
    auto m = loadExample(file);
    ASSERT_TRUE(m) << m.error().str();
    widenToFloat64(*m->stepGraph);
    expectStepsMatch(*m->stepGraph, 1e-11, std::filesystem::path(file).filename().string() + " (float64)");
  }
}

// Three kinds of state update: written by its own loop (w: an elementwise update read at the
// element it writes, after the matmul that reads the old w), through the arena because its loop
// reads other elements (w2 = w2ᵀ), and through the arena because a later loop needs the old value
// together with the new one (prod = (a + 1)·a, after a ← a + 1).
TEST(CodegenTraining, StateUpdatesInPlaceOrThroughTheArena) {
  Graph g("updates");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 3});
  Value* w = b.parameter("w", {3, 3});
  Value* w2 = b.parameter("w2", {3, 3});
  Value* a = b.parameter("a", {3});
  Value* y = b.matmul(x, w);
  g.addOutput("loss", b.reduceSum(y, {}));
  Value* grad = b.matmul(x, y, /*transposeA=*/true);
  g.addOutput("w", b.sub(w, b.mul(b.scalar(0.125), grad)));
  g.addOutput("w2", b.op(OpKind::Transpose, {w2}, {{"perm", std::vector<int64_t>{1, 0}}}));
  Value* aNew = b.add(a, b.scalar(1.0));
  g.addOutput("a", aNew);
  g.addOutput("prod", b.mul(aNew, a));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  ASSERT_TRUE(verifyGraph(g));
  test::fuse(g);

  llvm::LLVMContext ctx;
  auto lowered = codegen::lowerGraph(g, ctx, "", /*schedule=*/{}, KILN_ENTRY_TRAIN_STEP, /*updatesState=*/true);
  ASSERT_TRUE(lowered) << lowered.error().str();
  std::map<std::string, bool> viaArena;
  for (const auto& u : lowered->stateUpdates) viaArena[g.outputs()[u.output].name] = u.viaArena;
  EXPECT_EQ(viaArena, (std::map<std::string, bool>{{"w", false}, {"w2", true}, {"a", true}}));
  std::vector<std::string> returned;
  for (size_t i : lowered->returnedOutputs) returned.push_back(g.outputs()[i].name);
  EXPECT_EQ(returned, (std::vector<std::string>{"loss", "prod"}));

  // Two steps: the second sees the first's state only if it was written back correctly.
  codegen::JitOptions opts;
  opts.entry = KILN_ENTRY_TRAIN_STEP;
  opts.updatesState = true;
  auto jit = codegen::JitGraph::compile(g, opts);
  ASSERT_TRUE(jit) << jit.error().str();
  Interpreter interp(g);
  std::map<std::string, Tensor> params;
  for (auto [name, shape, seed] : {std::tuple{"w", Shape{3, 3}, 1}, {"w2", Shape{3, 3}, 2}, {"a", Shape{3}, 3}}) {
    params[name] = normalTensor(DType::Float32, shape, seed, 0.5);
    ASSERT_TRUE(interp.setParameter(name, params[name]));
  }
  for (int step = 0; step < 2; ++step) {
    std::map<std::string, Tensor> in{{"x", normalTensor(DType::Float32, {4, 3}, 10 + step)}};
    auto want = interp.run(in);
    ASSERT_TRUE(want) << want.error().str();
    auto got = (*jit)->run(in, params);
    ASSERT_TRUE(got) << got.error().str();
    for (const GraphOutput& o : g.outputs())
      EXPECT_LE(test::scaledError(got->at(o.name), want->at(o.name)), 1e-6) << o.name << " at step " << step;
    interp.updateParameters(*want);
    for (const char* name : {"w", "w2", "a"}) params[name] = got->at(name);
  }
}

// An output named after a parameter must have the parameter's type to be its new value.
TEST(CodegenTraining, StateUpdateOfTheWrongTypeNamesTheNode) {
  Graph g("bad_update");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 3});
  b.parameter("w", {3});
  g.addOutput("w", b.op(OpKind::Relu, {x}, {}, "new_w"));
  ASSERT_TRUE(verifyGraph(g));
  llvm::LLVMContext ctx;
  auto lowered = codegen::lowerGraph(g, ctx, "", /*schedule=*/{}, KILN_ENTRY_TRAIN_STEP, /*updatesState=*/true);
  ASSERT_FALSE(lowered);
  EXPECT_NE(lowered.error().str().find("new_w"), std::string::npos) << lowered.error().str();
  EXPECT_NE(lowered.error().str().find("float32[-1,3], expected float32[3]"), std::string::npos) << lowered.error().str();
  // Without updatesState the same graph is an ordinary one: "w" is returned.
  EXPECT_TRUE(codegen::lowerGraph(g, ctx, "", /*schedule=*/{}, KILN_ENTRY_PREDICT));
}

// The executor made for evaluation (updatesState = false) on every example's evaluation graph:
// inference-mode batch norm and dropout, loss and metrics as the interpreter computes them, and
// the state left as it was.
TEST(CodegenTraining, ExampleEvaluationMatchesTheInterpreter) {
  for (const std::string& file : exampleModels()) {
    SCOPED_TRACE(file);
    auto m = loadExample(file);
    ASSERT_TRUE(m) << m.error().str();
    Graph& g = *m->evalGraph;
    test::fuse(g);  // as kiln train and kiln evaluate compile it
    InterpreterExecutor interp(g, /*updatesState=*/false, /*seed=*/3);
    auto jit = codegen::makeJitExecutor(g, /*updatesState=*/false, /*seed=*/3);
    ASSERT_TRUE(jit) << jit.error().str();
    ASSERT_TRUE(interp.initialize(8));
    ASSERT_TRUE((*jit)->initialize(8));
    std::map<std::string, Tensor> before = (*jit)->state();
    auto inputs = randomStepInputs(g, /*batch=*/10, /*seed=*/4);
    auto want = interp.run(inputs, 0);
    ASSERT_TRUE(want) << want.error().str();
    auto got = (*jit)->run(inputs, 0);
    ASSERT_TRUE(got) << got.error().str();
    EXPECT_EQ(got->size(), want->size());
    for (const auto& [name, w] : *want) {
      ASSERT_TRUE(got->count(name)) << name;
      EXPECT_LE(test::scaledError(got->at(name), w), 2e-5) << name;
    }
    for (const auto& [name, t] : (*jit)->state()) EXPECT_EQ(test::scaledError(t, before.at(name)), 0.0) << name;
  }
}

// Bad input to the executor is an error naming what was expected, never a crash.
TEST(CodegenTraining, ExecutorRejectsBadInputAndState) {
  auto m = loadExample(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"));
  ASSERT_TRUE(m) << m.error().str();
  auto jit = codegen::makeJitExecutor(*m->stepGraph, /*updatesState=*/true, /*seed=*/1);
  ASSERT_TRUE(jit) << jit.error().str();
  ASSERT_TRUE((*jit)->initialize(1));
  auto inputs = randomStepInputs(*m->stepGraph, /*batch=*/4, /*seed=*/1);
  inputs["x"] = Tensor(DType::Float32, {4, 783});
  auto r = (*jit)->run(inputs, 0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("is float32[4,783], expected float32[-1,784]"), std::string::npos) << r.error().str();
  inputs.erase("x");
  r = (*jit)->run(inputs, 0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("no value given for input 'x'"), std::string::npos) << r.error().str();
  // A label outside the classes: the compiled check's message, and the warning about the state.
  inputs = randomStepInputs(*m->stepGraph, /*batch=*/4, /*seed=*/1);
  for (auto& [name, t] : inputs)
    if (!isFloat(t.dtype())) t.setDouble(2, 10);
  r = (*jit)->run(inputs, 0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("outside [0, 10)"), std::string::npos) << r.error().str();
  EXPECT_NE(r.error().str().find("no longer valid"), std::string::npos) << r.error().str();
  // The check's text is a whole diagnostic: it is not wrapped in a second "error: ".
  const std::string text = r.error().str();
  EXPECT_EQ(text.find("error: "), text.rfind("error: ")) << text;
  EXPECT_NE(text.find(": error: node '"), std::string::npos) << text;
  Status s = (*jit)->setState("hidden1/kernel", Tensor(DType::Float32, {3}));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("expected float32[784,300]"), std::string::npos) << s.error().str();
  s = (*jit)->setState("hiden1/kernel", Tensor(DType::Float32, {3}));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("no parameter named 'hiden1/kernel'"), std::string::npos) << s.error().str();
}

// An optimizer's scalars (learning rate, bias corrections) feed loops over whole tensors: a
// broadcast operand is stored and computed once, not recomputed inside the loop per element,
// while a same-shaped elementwise chain still fuses.
TEST(CodegenTraining, BroadcastOperandsAreComputedOnce) {
  Graph g("bias_correction");
  Builder b(g);
  Value* x = b.input("x", DType::Float32, {-1, 8});
  Value* beta = b.parameter("beta", {});
  Value* correction = b.op(OpKind::Pow, {beta, b.scalar(3.0)});  // scalar, broadcast below
  Value* scaled = b.mul(x, b.scalar(2.0));                         // same shape as its user
  g.addOutput("y", b.div(scaled, correction));
  ASSERT_TRUE(b.ok()) << b.status().error().str();
  ASSERT_TRUE(verifyGraph(g));
  test::fuse(g);
  auto s = codegen::scheduleGraph(g);
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_FALSE(s->isInlined(correction));
  EXPECT_TRUE(s->isInlined(scaled));
  test::expectMatchesInterpreter(g, 1e-6);
}

}  // namespace
}  // namespace kiln
