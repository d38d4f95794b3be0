// kiln compile and the AOT object: target and CPU choice, errors a user can cause, the object's
// code and embedded weights loaded back and run against the interpreter, external weights, and
// the header as valid C.
#include <gtest/gtest.h>
#include <llvm/TargetParser/Host.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "AotTestUtil.h"
#include "compiler/codegen/Target.h"
#include "compiler/driver/Commands.h"
#include "compiler/training/Checkpoint.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
const std::string kMlp = test::sourcePath("examples/fashion_mlp/fashion_mlp.model.pbtxt");

fs::path tempDir(const std::string& name) { return test::freshTempDir("kiln_aot_" + name); }

std::string readText(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::pair<int, std::string> compile(const std::vector<std::string>& args) {
  return test::runCompileCaptured(args);
}

/// The inference graph's parameters with random values (not the initializers', so that a test
/// can tell checkpoint weights from initialized ones); variances positive.
Checkpoint randomCheckpoint(const Graph& g, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Checkpoint c;
  for (Node* p : g.parameters()) {
    bool variance = p->name().find("variance") != std::string::npos;
    test::InputSpec spec{.floatScale = 0.1, .positive = variance};
    c.tensors[p->name()] =
        test::randomTensor(p->result()->type().dtype, p->result()->type().shape, spec, rng);
  }
  return c;
}

TEST(AotTarget, TriplesAndCpusByName) {
  for (const char* cpu : {"x86-64-v2", "x86-64-v3", "x86-64-v4", "skylake-avx512"}) {
    codegen::TargetDescription d;
    auto tm = codegen::createTargetMachine({"x86_64-linux-gnu", cpu, 2}, &d);
    ASSERT_TRUE(tm) << tm.error().str();
    EXPECT_EQ(d.cpu, cpu);
    EXPECT_EQ((*tm)->getTargetTriple().getArch(), llvm::Triple::x86_64);
  }
  for (const char* cpu : {"cortex-a72", "neoverse-n1", ""}) {
    codegen::TargetDescription d;
    auto tm = codegen::createTargetMachine({"aarch64-linux-gnu", cpu, 2}, &d);
    ASSERT_TRUE(tm) << tm.error().str();
    EXPECT_EQ(d.cpu, *cpu ? cpu : "generic");
    EXPECT_EQ((*tm)->getTargetTriple().getArch(), llvm::Triple::aarch64);
  }
  // The default and "native" are the host's CPU with its features.
  codegen::TargetDescription host, native;
  ASSERT_TRUE(codegen::createTargetMachine({}, &host));
  ASSERT_TRUE(codegen::createTargetMachine({"", "native", 3}, &native));
  EXPECT_EQ(host.cpu, llvm::sys::getHostCPUName().str());
  EXPECT_EQ(host.features, native.features);
  EXPECT_FALSE(host.features.empty());
}

TEST(AotTarget, UnknownNamesListTheValidOnes) {
  auto bad = codegen::createTargetMachine({"sparc-linux-gnu", "", 2});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find(
                "unknown target triple 'sparc-linux-gnu'; kiln compiles for x86_64-linux-gnu, "
                "aarch64-linux-gnu"),
            std::string::npos)
      << bad.error().str();
  auto cpu = codegen::createTargetMachine({"x86_64-linux-gnu", "skylak", 2});
  ASSERT_FALSE(cpu);
  std::string e = cpu.error().str();
  EXPECT_NE(e.find("unknown CPU 'skylak'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'skylake'?"), std::string::npos) << e;
  EXPECT_NE(e.find("x86-64-v3"), std::string::npos) << e;
  auto arm = codegen::createTargetMachine({"aarch64-linux-gnu", "cortex-a99", 2});
  ASSERT_FALSE(arm);
  EXPECT_NE(arm.error().str().find("cortex-a72"), std::string::npos) << arm.error().str();
  EXPECT_EQ(arm.error().str().find("skylake"), std::string::npos)
      << "lists another architecture's CPUs";
  auto native = codegen::createTargetMachine({"aarch64-linux-gnu", "native", 2});
  ASSERT_FALSE(native);
  EXPECT_NE(native.error().str().find("--cpu native needs the host's architecture"),
            std::string::npos);
}

TEST(AotCompile, BadInputIsAClearErrorWithStatus1) {
  fs::path d = tempDir("bad");
  std::string out = (d / "out").string();
  auto [s1, e1] = compile({kMlp, "--target", "riscv64-linux-gnu", "-o", out});
  EXPECT_EQ(s1, 1);
  EXPECT_NE(e1.find("unknown target triple 'riscv64-linux-gnu'"), std::string::npos) << e1;
  auto [s2, e2] = compile({kMlp, "--cpu", "x86-64-v5", "-o", out});
  EXPECT_EQ(s2, 1);
  EXPECT_NE(e2.find("unknown CPU 'x86-64-v5'"), std::string::npos) << e2;
  EXPECT_NE(e2.find("x86-64-v4"), std::string::npos) << e2;

  std::string badGraph = test::sourcePath("tests/bad/bad_matmul_shapes.pbtxt");
  auto [s3, e3] = compile({badGraph, "-o", out});
  EXPECT_EQ(s3, 1);
  EXPECT_NE(e3.find("bad_matmul_shapes.pbtxt:"), std::string::npos) << e3;
  EXPECT_NE(e3.find("matmul shapes do not match"), std::string::npos) << e3;

  // A checkpoint of a model with a narrower first layer, one without a tensor, and no file.
  auto m = driver::loadAnyModel(kMlp);
  ASSERT_TRUE(m) << m.error().str();
  Checkpoint c = randomCheckpoint(*m->model.graph, 1);
  c.tensors["hidden1/kernel"] = Tensor(DType::Float32, {784, 200});
  std::string wrong = (d / "wrong.safetensors").string();
  ASSERT_TRUE(writeCheckpoint(wrong, c));
  auto [s4, e4] = compile({kMlp, "--weights", wrong, "-o", out});
  EXPECT_EQ(s4, 1);
  EXPECT_NE(
      e4.find(wrong +
              ": tensor 'hidden1/kernel' is float32[784,200] in the checkpoint, but the model's "
              "parameter is float32[784,300]"),
      std::string::npos)
      << e4;
  c = randomCheckpoint(*m->model.graph, 1);
  c.tensors.erase("batch_normalization_2/moving_variance");
  ASSERT_TRUE(writeCheckpoint(wrong, c));
  auto [s5, e5] = compile({kMlp, "--weights", wrong, "-o", out});
  EXPECT_EQ(s5, 1);
  EXPECT_NE(e5.find("no tensor 'batch_normalization_2/moving_variance'; the model's parameter is "
                    "float32[100]"),
            std::string::npos)
      << e5;
  auto [s6, e6] = compile({kMlp, "--weights", (d / "missing.safetensors").string(), "-o", out});
  EXPECT_EQ(s6, 1);
  EXPECT_NE(e6.find("missing.safetensors"), std::string::npos) << e6;
  EXPECT_FALSE(fs::exists(out)) << "a failed compile wrote output";

  EXPECT_EQ(compile({kMlp, "--mode", "predict", "-o", out}).first, 1);
  EXPECT_EQ(compile({kMlp}).first, 1);  // no -o
  EXPECT_EQ(compile({kMlp, "-O", "4", "-o", out}).first, 1);
}

/// Compiles fashion_mlp with checkpoint weights (with `extra` arguments), loads the object and
/// checks its predictions against the interpreter on the checkpoint's parameters at several
/// batches. With `exactWeights` (the graph compiled as written) also checks that the embedded
/// weights are the checkpoint's byte for byte and that the arena is the JIT's plan.
void checkObjectAgainstInterpreter(const std::vector<std::string>& extra, bool exactWeights) {
  fs::path d = tempDir("object");
  auto m = driver::loadAnyModel(kMlp);
  ASSERT_TRUE(m) << m.error().str();
  const Graph& g = *m->model.graph;
  Checkpoint c = randomCheckpoint(g, 7);
  c.tensors["optimizer/slot_an_inference_object_ignores"] = Tensor(DType::Float32, {3});
  std::string ckpt = (d / "w.safetensors").string();
  ASSERT_TRUE(writeCheckpoint(ckpt, c));
  std::string out = (d / "out").string();
  std::vector<std::string> args = {kMlp, "--mode", "infer", "--weights", ckpt, "-o", out};
  args.insert(args.end(), extra.begin(), extra.end());
  auto [status, err] = compile(args);
  ASSERT_EQ(status, 0) << err;
  std::string header = readText(fs::path(out) / "fashion_mlp.h");
  EXPECT_NE(header.find("#define FASHION_MLP_PREDICT_NUM_INPUTS 1\n"), std::string::npos);
  EXPECT_NE(header.find("{\"x\", \"float32\", \"F32\", 4, 2, {-1, 784}, 784, 1}"),
            std::string::npos)
      << header;
  EXPECT_NE(header.find("{\"logits\", \"float32\", \"F32\", 4, 2, {-1, 10}, 10, 1}"),
            std::string::npos);

  test::ObjectLoader obj((fs::path(out) / "fashion_mlp.o").string());
  ASSERT_EQ(obj.error(), "");
  auto predict = obj.lookup<kiln_entry_fn>("fashion_mlp_predict");
  auto arenaSize = obj.lookup<kiln_arena_size_fn>("fashion_mlp_predict_arena_size");
  auto weights = obj.lookup<const void* const*>("fashion_mlp_weights");
  ASSERT_TRUE(predict && arenaSize && weights) << obj.error();

  std::vector<Node*> params = g.parameters();
  Interpreter interp(g);
  for (size_t i = 0; i < params.size(); ++i)
    ASSERT_TRUE(interp.setParameter(params[i]->name(), c.tensors.at(params[i]->name())));
  std::unique_ptr<codegen::JitGraph> jit;
  if (exactWeights) {
    // The embedded weights are the checkpoint's, byte for byte, in the graph's parameter order.
    EXPECT_NE(header.find("#define FASHION_MLP_NUM_STATE 18\n"), std::string::npos);
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& t = c.tensors.at(params[i]->name());
      EXPECT_EQ(std::memcmp(weights[i], t.raw(), static_cast<size_t>(t.byteSize())), 0)
          << params[i]->name();
      EXPECT_EQ(reinterpret_cast<uintptr_t>(weights[i]) % 64, 0u) << params[i]->name();
    }
    auto j = codegen::JitGraph::compile(g);
    ASSERT_TRUE(j) << j.error().str();
    jit = std::move(*j);
  } else {
    // Batch norm folded: the state is the three folded kernels and biases.
    EXPECT_NE(header.find("#define FASHION_MLP_NUM_STATE 6\n"), std::string::npos) << header;
  }
  std::mt19937_64 rng(3);
  for (int64_t batch : {1, 5, 64}) {
    if (jit) {
      // The arena formula the header states is the object's and the JIT's plan.
      EXPECT_EQ(arenaSize(batch), jit->arenaSize(batch));
      std::string formula = "#define FASHION_MLP_PREDICT_ARENA_PER_BATCH " +
                            std::to_string(jit->memoryPlan().perBatchBytes) + "\n";
      EXPECT_NE(header.find(formula), std::string::npos) << formula;
    }
    Tensor x = test::randomTensor(DType::Float32, {batch, 784}, {.floatScale = 1.0}, rng);
    Tensor logits(DType::Float32, {batch, 10});
    std::vector<unsigned char> arena(static_cast<size_t>(arenaSize(batch)) + 64);
    void* aligned = arena.data() + (64 - reinterpret_cast<uintptr_t>(arena.data()) % 64) % 64;
    const void* ins[] = {x.raw()};
    void* outs[] = {logits.raw()};
    ASSERT_EQ(predict(batch, ins, outs, const_cast<void* const*>(weights), aligned, 0, 0), 0);
    auto want = interp.run({{"x", x}});
    ASSERT_TRUE(want) << want.error().str();
    // Same tolerance as the JIT's (tests/CodegenModelsTest.cpp): float32 GEMM vs double sums.
    EXPECT_LE(test::scaledError(logits, want->at("logits")), 2e-5) << "batch " << batch;
  }
  // Batch 0 is refused by the object's first run-time check.
  const void* ins[] = {nullptr};
  void* outs[] = {nullptr};
  EXPECT_EQ(predict(0, ins, outs, const_cast<void* const*>(weights), nullptr, 0, 0), 1);
}

TEST(AotCompile, ObjectWithCheckpointWeightsMatchesTheInterpreter) {
  checkObjectAgainstInterpreter({"--no-graph-passes"}, /*exactWeights=*/true);
}

TEST(AotCompile, ObjectWithFoldedBatchNormMatchesTheInterpreter) {
  checkObjectAgainstInterpreter({}, /*exactWeights=*/false);
}

TEST(AotCompile, EmitLLVMWritesTheOptimizedIR) {
  fs::path d = tempDir("emit_llvm");
  auto [status, err] = compile({kMlp, "--mode", "train", "--emit-llvm", "-o", (d / "ir").string()});
  ASSERT_EQ(status, 0) << err;
  std::string ir = readText(d / "ir" / "fashion_mlp.ll");
  EXPECT_NE(ir.find("define i32 @fashion_mlp_train_step("), std::string::npos);
  EXPECT_NE(ir.find("define i32 @fashion_mlp_evaluate("), std::string::npos);
  // The loops' buffers carry alias scopes (FunctionEmitter::beginAliasScopes).
  EXPECT_NE(ir.find("!noalias !"), std::string::npos);
  EXPECT_NE(ir.find("!alias.scope !"), std::string::npos);
  // Without the flag, no IR file.
  auto [status2, err2] = compile({kMlp, "--mode", "infer", "-o", (d / "plain").string()});
  ASSERT_EQ(status2, 0) << err2;
  EXPECT_TRUE(fs::exists(d / "plain" / "fashion_mlp.o"));
  EXPECT_FALSE(fs::exists(d / "plain" / "fashion_mlp.ll"));
}

TEST(AotCompile, ExternalWeightsAndAArch64Objects) {
  fs::path d = tempDir("external");
  std::string out = (d / "out").string();
  auto [status, err] =
      compile({kMlp, "--weights-external", "--no-graph-passes", "--seed", "5", "-o", out});
  ASSERT_EQ(status, 0) << err;
  auto w = readCheckpoint((fs::path(out) / "fashion_mlp.safetensors").string());
  ASSERT_TRUE(w) << w.error().str();
  auto m = driver::loadAnyModel(kMlp);
  ASSERT_TRUE(m);
  Interpreter interp(*m->model.graph);
  ASSERT_TRUE(interp.initializeParameters(5));
  ASSERT_EQ(w->tensors.size(), interp.parameters().size());
  for (const auto& [name, t] : interp.parameters()) {
    ASSERT_TRUE(w->tensors.count(name)) << name;
    EXPECT_EQ(w->tensors.at(name).type(), t.type()) << name;
    EXPECT_EQ(std::memcmp(w->tensors.at(name).raw(), t.raw(), static_cast<size_t>(t.byteSize())), 0)
        << name;
  }
  std::string header = readText(fs::path(out) / "fashion_mlp.h");
  EXPECT_EQ(header.find("fashion_mlp_weights"), std::string::npos);
  EXPECT_NE(header.find("explicit fashion_mlp(const std::string& weights_path)"),
            std::string::npos);
  EXPECT_LT(fs::file_size(fs::path(out) / "fashion_mlp.o"), 100000u) << "weights embedded anyway";

  // The AArch64 object is an ELF relocatable for EM_AARCH64 (183); the host's for EM_X86_64 (62).
  std::string a64 = (d / "a64").string();
  auto [s2, e2] =
      compile({kMlp, "--target", "aarch64-linux-gnu", "--cpu", "cortex-a72", "-O", "2", "-o", a64});
  ASSERT_EQ(s2, 0) << e2;
  std::string obj = readText(fs::path(a64) / "fashion_mlp.o"),
              host = readText(fs::path(out) / "fashion_mlp.o");
  ASSERT_GT(obj.size(), 20u);
  ASSERT_GT(host.size(), 20u);
  EXPECT_EQ(obj.substr(0, 4),
            "\x7f"
            "ELF");
  EXPECT_EQ(static_cast<unsigned char>(obj[18]), 183);
  EXPECT_EQ(static_cast<unsigned char>(host[18]), 62);
}

TEST(AotCompile, HeaderIsValidCAndCxx) {
  for (std::string mode : {"infer", "train"}) {
    for (bool external : {false, true}) {
      fs::path d = tempDir("header_" + mode + (external ? "_ext" : ""));
      std::string out = (d / "out").string();
      std::vector<std::string> args = {kMlp, "--mode", mode, "-o", out};
      if (external) args.push_back("--weights-external");
      ASSERT_EQ(compile(args).first, 0) << mode;
      std::string h = (fs::path(out) / "fashion_mlp.h").string();
      std::string entry = mode == "infer" ? "predict" : "train_step";
      // Two inclusions check the include guards; the shared struct's guard lets headers combine.
      std::ofstream(d / "c.c") << "#include \"" << h << "\"\n#include \"" << h << "\"\n"
                               << "int main(void) { return fashion_mlp_" << entry
                               << "_inputs[0].elements == 784 ? 0 : 1; }\n";
      std::ofstream(d / "cxx.cpp")
          << "#include \"" << h << "\"\nint main() { kiln_aot::fashion_mlp m"
          << (external ? "(\"w.safetensors\")" : "") << "; return m.ok() ? 0 : 1; }\n";
      std::string cc =
          "cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only " + (d / "c.c").string();
      std::string cxx = "c++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I " +
                        test::sourcePath("") + " " + (d / "cxx.cpp").string();
      EXPECT_EQ(std::system(cc.c_str()), 0) << cc;
      EXPECT_EQ(std::system(cxx.c_str()), 0) << cxx;
    }
  }
}

}  // namespace
}  // namespace kiln
