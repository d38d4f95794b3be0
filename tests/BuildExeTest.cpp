// kiln build's runner: the executors a built program makes over compiled train_step and evaluate
// functions (JIT-compiled, and those of the AOT object the program links) against the
// interpreter's, the check that the compiled functions and the embedded model agree, and refused
// flags.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>

#include "AotTestUtil.h"
#include "compiler/codegen/Jit.h"
#include "compiler/driver/TrainProgram.h"
#include "compiler/runner/BuiltExecutor.h"
#include "compiler/training/Trainer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

/// What the generated main.cpp reads from the object's header, made from the graph instead: the
/// parameters in order, and the outputs the function returns (a training step writes those named
/// after a parameter into its state).
runner::BuiltFunction builtFunction(const Graph& g, kiln_entry_fn entry,
                                    kiln_arena_size_fn arenaSize, bool updatesState) {
  runner::BuiltFunction f;
  f.entry = entry;
  f.arenaSize = arenaSize;
  std::set<std::string> params;
  for (Node* p : g.parameters()) {
    const TensorType& t = p->result()->type();
    f.params.push_back({p->name(), std::string(dtypeName(t.dtype)),
                        std::vector<int64_t>(t.shape.begin(), t.shape.end())});
    params.insert(p->name());
  }
  for (const GraphOutput& o : g.outputs())
    if (!updatesState || !params.count(o.name)) f.returned.push_back(o.name);
  return f;
}

/// Runs `steps` training steps of `model` through the built program's executors and through the
/// interpreter, both initialized from `seed`, then evaluates both on the trained state: every
/// returned output and every state tensor agrees within `tol`. The functions are JIT-compiled, or
/// with `aot` those of kiln compile --mode train's object (what kiln build links), loaded back; the
/// run-check messages come from the JIT's lowering of the same graphs either way.
void expectBuiltExecutorsMatchInterpreter(const std::string& model, uint64_t seed, int steps,
                                          double tol, bool aot = false) {
  auto m = loadTrainingModel(model, "", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  const Graph& step = *m->stepGraph;
  const Graph& eval = *m->evalGraph;
  codegen::JitOptions trainOpts, evalOpts;
  trainOpts.updatesState = true;
  trainOpts.entry = KILN_ENTRY_TRAIN_STEP;
  evalOpts.entry = KILN_ENTRY_EVALUATE;
  auto trainJit = codegen::JitGraph::compile(step, trainOpts);
  ASSERT_TRUE(trainJit) << trainJit.error().str();
  auto evalJit = codegen::JitGraph::compile(eval, evalOpts);
  ASSERT_TRUE(evalJit) << evalJit.error().str();
  runner::BuiltFunction trainFn =
      builtFunction(step, (*trainJit)->entryFunction(), (*trainJit)->arenaSizeFunction(), true);
  trainFn.messages = (*trainJit)->checkMessages();
  runner::BuiltFunction evalFn =
      builtFunction(eval, (*evalJit)->entryFunction(), (*evalJit)->arenaSizeFunction(), false);
  fs::path d = test::freshTempDir("kiln_build_exe");
  std::unique_ptr<test::ObjectLoader> obj;
  if (aot) {
    fs::remove_all(d);
    auto [status, err] = test::runCompileCaptured({model, "--mode", "train", "-o", d.string()});
    ASSERT_EQ(status, 0) << err;
    obj = std::make_unique<test::ObjectLoader>((d / (m->name + ".o")).string());
    ASSERT_EQ(obj->error(), "");
    trainFn.entry = obj->lookup<kiln_entry_fn>(m->name + "_train_step");
    trainFn.arenaSize = obj->lookup<kiln_arena_size_fn>(m->name + "_train_step_arena_size");
    evalFn.entry = obj->lookup<kiln_entry_fn>(m->name + "_evaluate");
    evalFn.arenaSize = obj->lookup<kiln_arena_size_fn>(m->name + "_evaluate_arena_size");
    ASSERT_TRUE(trainFn.entry && trainFn.arenaSize && evalFn.entry && evalFn.arenaSize)
        << obj->error();
  }
  ASSERT_TRUE(runner::checkCompiledParameters(step, trainFn, KILN_ENTRY_TRAIN_STEP));
  ASSERT_TRUE(runner::checkCompiledParameters(eval, evalFn, KILN_ENTRY_EVALUATE));

  auto built = runner::makeBuiltExecutor(step, trainFn, /*updatesState=*/true, seed);
  ASSERT_TRUE(built) << built.error().str();
  StepExecutor& exec = **built;
  EXPECT_EQ(exec.kind(), "compiled program");
  InterpreterExecutor ref(step, /*updatesState=*/true, seed);
  ASSERT_TRUE(exec.initialize(seed));
  ASSERT_TRUE(ref.initialize(seed));

  std::mt19937_64 rng(5);
  const int64_t batch = 8;
  auto makeInputs = [&](const Graph& g) {
    std::map<std::string, Tensor> in;
    for (Node* n : g.inputs()) {
      const TensorType& t = n->result()->type();
      test::InputSpec spec{.floatScale = 1.0, .intLo = 0, .intHi = 9};
      in[n->name()] = test::randomTensor(t.dtype, bindBatch(t.shape, batch), spec, rng);
    }
    return in;
  };
  for (int s = 0; s < steps; ++s) {
    auto inputs = makeInputs(step);
    auto got = exec.run(inputs, s);
    ASSERT_TRUE(got) << got.error().str();
    auto want = ref.run(inputs, s);
    ASSERT_TRUE(want) << want.error().str();
    ASSERT_EQ(got->size(), trainFn.returned.size());
    for (const auto& [name, value] : *got)
      EXPECT_LE(test::scaledError(value, want->at(name)), tol) << name << " at step " << s;
  }
  std::map<std::string, Tensor> state = exec.state(), refState = ref.state();
  ASSERT_EQ(state.size(), refState.size());
  for (const auto& [name, value] : refState)
    EXPECT_LE(test::scaledError(state.at(name), value), tol) << name;
  // The step counter counts in both (the compiled step really ran and wrote its state).
  EXPECT_EQ(state.at("train/step").getDouble(0), static_cast<double>(steps));

  auto builtEval = runner::makeBuiltExecutor(eval, evalFn, /*updatesState=*/false, seed);
  ASSERT_TRUE(builtEval) << builtEval.error().str();
  InterpreterExecutor refEval(eval, /*updatesState=*/false, seed);
  for (const std::string& name : refEval.stateNames()) {
    ASSERT_TRUE((*builtEval)->setState(name, state.at(name)));
    ASSERT_TRUE(refEval.setState(name, refState.at(name)));
  }
  auto inputs = makeInputs(eval);
  auto got = (*builtEval)->run(inputs, 0);
  ASSERT_TRUE(got) << got.error().str();
  auto want = refEval.run(inputs, 0);
  ASSERT_TRUE(want) << want.error().str();
  for (const GraphOutput& o : eval.outputs())
    EXPECT_LE(test::scaledError(got->at(o.name), want->at(o.name)), tol) << o.name;

  // A label outside the classes: a compiled run check's message naming the node, not a crash.
  auto bad = makeInputs(step);
  for (auto& [name, t] : bad)
    if (t.dtype() == DType::Int64) t.setDouble(0, 99);
  auto failed = exec.run(bad, steps);
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().str().find("is outside [0, 10)"), std::string::npos)
      << failed.error().str();
  if (aot) fs::remove_all(d);
}

// Batch norm in training mode, SGD: float32 rounding of the gradients apart (the AOT and JIT
// training tests' bound), the compiled program trains as the interpreter does.
TEST(BuildExe, FashionMlpExecutorsMatchTheInterpreter) {
  expectBuiltExecutorsMatchInterpreter(
      test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), 42, 3, 2e-5);
}

// The same through the AOT object kiln build links (batch norm and dropout).
TEST(BuildExe, AotObjectExecutorsMatchTheInterpreter) {
  expectBuiltExecutorsMatchInterpreter(
      test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), 42, 3, 2e-5,
      /*aot=*/true);
  expectBuiltExecutorsMatchInterpreter(
      test::sourcePath("examples/fashion_regularized/fashion_regularized.model.pbtxt"), 7, 3, 2e-5,
      /*aot=*/true);
}

// Dropout masks keyed by (seed, node, step) in the program as in the interpreter.
TEST(BuildExe, DropoutExecutorsMatchTheInterpreter) {
  expectBuiltExecutorsMatchInterpreter(
      test::sourcePath("examples/fashion_regularized/fashion_regularized.model.pbtxt"), 7, 3, 2e-5);
}

// An object compiled from another model (or other flags) than the one embedded: the first
// differing parameter is named, before any training.
TEST(BuildExe, ParameterMismatchNamesTheFirstDifference) {
  auto m = loadTrainingModel(test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), "",
                             nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  runner::BuiltFunction f = builtFunction(*m->stepGraph, nullptr, nullptr, true);
  std::swap(f.params[0], f.params[1]);
  Status s = runner::checkCompiledParameters(*m->stepGraph, f, KILN_ENTRY_TRAIN_STEP);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find(
                "parameter 0 is 'hidden1/bias' float32[300] in the object but 'hidden1/kernel' "
                "float32[784,300] in the rebuilt graph"),
            std::string::npos)
      << s.error().str();
  f = builtFunction(*m->stepGraph, nullptr, nullptr, true);
  f.params.pop_back();
  s = runner::checkCompiledParameters(*m->stepGraph, f, KILN_ENTRY_TRAIN_STEP);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().str().find("'train/step' float64[] is not among its 18 parameters"),
            std::string::npos)
      << s.error().str();
  // A returned output the graph does not have.
  f = builtFunction(*m->stepGraph, nullptr, nullptr, true);
  f.returned.push_back("nonexistent");
  auto x = runner::makeBuiltExecutor(*m->stepGraph, f, true, 0);
  ASSERT_FALSE(x);
}

// Flags that would change the compiled step are refused with the reason, before any work.
TEST(BuildExe, RefusedFlagsSayWhy) {
  driver::TrainProgram prog;
  prog.program = "prog";
  bool loaded = false;
  prog.load =
      [&](const std::string&, const std::function<void(frontend::TrainingSpec&)>&,
          const std::function<int64_t(const frontend::TrainingSpec&)>&) -> Expected<TrainingModel> {
    loaded = true;
    return Error::msg("not reached");
  };
  prog.refused = {{"freeze", "give it to kiln build"}};
  prog.executorFactory = [](const driver::ArgParser&) -> Expected<driver::ExecutorFactory> {
    return Error::msg("not reached");
  };
  testing::internal::CaptureStderr();
  int status = driver::runTrainWith({"--freeze", "hidden1/.*"}, prog);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 2);
  EXPECT_EQ(err, "prog: --freeze cannot be given here: give it to kiln build\n");
  EXPECT_FALSE(loaded);
  testing::internal::CaptureStderr();
  status = driver::runTrainWith({"MODEL"}, prog);
  err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(status, 2);
  EXPECT_NE(err.find("prog: unexpected argument 'MODEL'"), std::string::npos) << err;
}

}  // namespace
}  // namespace kiln
