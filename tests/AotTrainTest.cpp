// kiln compile --mode train: the object's train_step and evaluate entry points, loaded back and
// run for a few steps from the embedded initial state, against the interpreter's executors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "AotTestUtil.h"
#include "compiler/training/Trainer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

/// Aligned storage for one call's arena.
struct Arena {
  explicit Arena(int64_t bytes) : storage(static_cast<size_t>(bytes) + 64) {}
  void* get() {
    return storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  }
  std::vector<unsigned char> storage;
};

/// Runs `steps` training steps of `model` through its AOT object and through the interpreter from
/// the same initial state (the object's embedded one, which must be the initializers' of `seed`),
/// then evaluates both; every returned output and every state tensor must agree within `tol`.
void expectTrainObjectMatchesInterpreter(const std::string& model, uint64_t seed, int steps,
                                         double tol) {
  fs::path d = test::freshTempDir("kiln_aot_train");
  auto [status, err] = test::runCompileCaptured(
      {model, "--mode", "train", "--seed", std::to_string(seed), "-o", d.string()});
  ASSERT_EQ(status, 0) << err;
  auto m = loadTrainingModel(model, "", nullptr, nullptr);
  ASSERT_TRUE(m) << m.error().str();
  const Graph& step = *m->stepGraph;
  const Graph& eval = *m->evalGraph;
  std::string name = m->name;

  test::ObjectLoader obj((d / (name + ".o")).string());
  ASSERT_EQ(obj.error(), "");
  auto trainStep = obj.lookup<kiln_entry_fn>(name + "_train_step");
  auto trainArena = obj.lookup<kiln_arena_size_fn>(name + "_train_step_arena_size");
  auto evaluate = obj.lookup<kiln_entry_fn>(name + "_evaluate");
  auto evalArena = obj.lookup<kiln_arena_size_fn>(name + "_evaluate_arena_size");
  auto weights = obj.lookup<const void* const*>(name + "_weights");
  ASSERT_TRUE(trainStep && trainArena && evaluate && evalArena && weights) << obj.error();

  // The state block: train_step's parameters in order (the header's NAME_state), copied out of the
  // read-only weights as the generated wrapper does.
  InterpreterExecutor ref(step, /*updatesState=*/true, seed);
  ASSERT_TRUE(ref.initialize(seed));
  std::vector<Node*> params = step.parameters();
  const std::map<std::string, Tensor> initial = ref.state();
  std::vector<Tensor> state;
  std::vector<void*> statePtrs;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& init = initial.at(params[i]->name());
    Tensor t(init.dtype(), init.shape());
    std::memcpy(t.raw(), weights[i], static_cast<size_t>(t.byteSize()));
    EXPECT_EQ(std::memcmp(t.raw(), init.raw(), static_cast<size_t>(t.byteSize())), 0)
        << params[i]->name() << ": the embedded initial state is not the initializers'";
    index[params[i]->name()] = i;
    state.push_back(std::move(t));
  }
  for (Tensor& t : state) statePtrs.push_back(t.raw());
  // Outputs train_step returns: those that do not update a parameter.
  std::vector<const GraphOutput*> returned;
  for (const GraphOutput& o : step.outputs())
    if (!index.count(o.name)) returned.push_back(&o);

  std::mt19937_64 rng(11);
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
    std::vector<const void*> ins;
    for (Node* n : step.inputs()) ins.push_back(inputs.at(n->name()).raw());
    std::vector<Tensor> outs;
    std::vector<void*> outPtrs;
    for (const GraphOutput* o : returned)
      outs.emplace_back(o->value->type().dtype, bindBatch(o->value->type().shape, batch));
    for (Tensor& t : outs) outPtrs.push_back(t.raw());
    Arena arena(trainArena(batch));
    ASSERT_EQ(trainStep(batch, ins.data(), outPtrs.data(), statePtrs.data(), arena.get(), seed, s),
              0);
    auto want = ref.run(inputs, s);
    ASSERT_TRUE(want) << want.error().str();
    for (size_t i = 0; i < returned.size(); ++i)
      EXPECT_LE(test::scaledError(outs[i], want->at(returned[i]->name)), tol)
          << returned[i]->name << " at step " << s << ": " << outs[i].str() << " vs "
          << want->at(returned[i]->name).str();
  }
  std::map<std::string, Tensor> refState = ref.state();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LE(test::scaledError(state[i], refState.at(params[i]->name())), tol)
        << params[i]->name();

  // evaluate on the trained state, against the interpreter's evaluation graph on the same state.
  InterpreterExecutor refEval(eval, /*updatesState=*/false, seed);
  std::vector<void*> evalParams;
  for (Node* p : eval.parameters()) {
    ASSERT_TRUE(refEval.setState(p->name(), refState.at(p->name())));
    evalParams.push_back(statePtrs[index.at(p->name())]);
  }
  auto inputs = makeInputs(eval);
  std::vector<const void*> ins;
  for (Node* n : eval.inputs()) ins.push_back(inputs.at(n->name()).raw());
  std::vector<Tensor> outs;
  std::vector<void*> outPtrs;
  for (const GraphOutput& o : eval.outputs())
    outs.emplace_back(o.value->type().dtype, bindBatch(o.value->type().shape, batch));
  for (Tensor& t : outs) outPtrs.push_back(t.raw());
  Arena arena(evalArena(batch));
  ASSERT_EQ(evaluate(batch, ins.data(), outPtrs.data(), evalParams.data(), arena.get(), seed, 0),
            0);
  auto want = refEval.run(inputs, 0);
  ASSERT_TRUE(want) << want.error().str();
  for (size_t i = 0; i < outs.size(); ++i)
    EXPECT_LE(test::scaledError(outs[i], want->at(eval.outputs()[i].name)), tol)
        << eval.outputs()[i].name;
}

// Three SGD steps with batch norm in training mode: the state after them agrees to float32
// rounding of the gradients (Eigen float32 products vs the interpreter's double sums), as the
// JIT's training tests state.
TEST(AotTrain, FashionMlpStepsMatchTheInterpreter) {
  expectTrainObjectMatchesInterpreter(
      test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt"), 42, 3, 2e-5);
}

// Dropout masks come from (seed, node, step) in the object as in the interpreter, so a step with
// dropout agrees to the same rounding.
TEST(AotTrain, DropoutStepsMatchTheInterpreter) {
  expectTrainObjectMatchesInterpreter(
      test::sourcePath("examples/fashion_regularized/fashion_regularized.model.pbtxt"), 7, 2, 2e-5);
}

}  // namespace
}  // namespace kiln
