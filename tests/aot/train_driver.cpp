// Trains one AOT-compiled model (kiln compile --mode train) for a few steps through the generated
// C++ wrapper, built for the host and for AArch64 by tests/aot/cross_check.sh: one deterministic
// batch (inputs in [0, 1), labels in [0, 10)) fitted step after step; the loss of every step and
// the evaluation loss and accuracy on that batch after them are written as .npy for comparison
// between the two architectures. Fails unless the evaluation loss went down (the state updates).
// Build with -DKILN_AOT_HEADER='"NAME.h"' -DKILN_AOT_NAME=NAME.
#include <cstdio>
#include <string>
#include <vector>

#include KILN_AOT_HEADER
#include "runtime/Npy.h"

#define KILN_CAT2(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT2(a, b)
#define MODEL(suffix) KILN_CAT(KILN_AOT_NAME, suffix)

namespace {

using Model = kiln_aot::KILN_AOT_NAME;

bool writeNpy(const std::string& path, const std::vector<float>& values) {
  std::string data = kiln::rt::encodeNpy("<f4", {static_cast<int64_t>(values.size())},
                                         values.data(), values.size() * sizeof(float));
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

/// A batch for inputs `infos`: floats hashed into [0, 1), integers (labels) into [0, 10).
struct Batch {
  std::vector<std::vector<unsigned char>> data;
  std::vector<const void*> ptrs;
  Batch(const kiln_aot_tensor_info* infos, int n, int64_t batch, uint32_t salt) : data(size_t(n)) {
    for (int i = 0; i < n; ++i) {
      const kiln_aot_tensor_info& t = infos[i];
      int64_t count = t.elements * (t.batched ? batch : 1);
      data[size_t(i)].resize(size_t(count * t.element_size));
      std::string d = t.dtype;
      for (int64_t k = 0; k < count; ++k) {
        uint32_t h = (static_cast<uint32_t>(k) + salt * 7919u) * 2654435761u;
        h ^= h >> 13;
        if (d == "float32")
          reinterpret_cast<float*>(data[size_t(i)].data())[k] = float(h % 100000u) / 100000.0f;
        else if (d == "int64")
          reinterpret_cast<int64_t*>(data[size_t(i)].data())[k] = int64_t(h % 10u);
        else if (d == "int32")
          reinterpret_cast<int32_t*>(data[size_t(i)].data())[k] = int32_t(h % 10u);
      }
      ptrs.push_back(data[size_t(i)].data());
    }
  }
};

/// Outputs with room for `batch`; float32 scalars are what the scripts read back.
struct Outputs {
  std::vector<std::vector<unsigned char>> data;
  std::vector<void*> ptrs;
  Outputs(const kiln_aot_tensor_info* infos, int n, int64_t batch) : data(size_t(n)) {
    for (int i = 0; i < n; ++i) {
      data[size_t(i)].resize(
          size_t(infos[i].elements * (infos[i].batched ? batch : 1) * infos[i].element_size));
      ptrs.push_back(data[size_t(i)].data());
    }
  }
  float scalar(const kiln_aot_tensor_info* infos, int n, const char* name) const {
    for (int i = 0; i < n; ++i)
      if (std::string(infos[i].name) == name)
        return *reinterpret_cast<const float*>(data[size_t(i)].data());
    return -1;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s OUTDIR BATCH STEPS\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int64_t batch = std::stoll(argv[2]), steps = std::stoll(argv[3]);
  Model model;
  const int nIn = Model::train_step_num_inputs, nOut = Model::train_step_num_outputs;
  const int nEvIn = Model::evaluate_num_inputs, nEvOut = Model::evaluate_num_outputs;
  Batch held(MODEL(_evaluate_inputs), nEvIn, batch, 1000003u);
  auto evaluate = [&](std::vector<float>* out) {
    Outputs o(MODEL(_evaluate_outputs), nEvOut, batch);
    if (int32_t s = model.evaluate(batch, held.ptrs.data(), o.ptrs.data()); s != 0) {
      std::fprintf(stderr, "evaluate: %s\n", Model::evaluate_status(s));
      return false;
    }
    out->push_back(o.scalar(MODEL(_evaluate_outputs), nEvOut, "loss"));
    out->push_back(o.scalar(MODEL(_evaluate_outputs), nEvOut, "accuracy"));
    return true;
  };
  std::vector<float> before, after, losses;
  if (!evaluate(&before)) return 1;
  for (int64_t s = 0; s < steps; ++s) {
    // The held batch every step (its inputs are the same as evaluate's): fitting it must lower
    // its loss, which only happens if the state is really updated between steps.
    Batch b(MODEL(_train_step_inputs), nIn, batch, 1000003u);
    Outputs o(MODEL(_train_step_outputs), nOut, batch);
    if (int32_t st = model.train_step(batch, b.ptrs.data(), o.ptrs.data(), /*seed=*/7, s);
        st != 0) {
      std::fprintf(stderr, "train_step: %s\n", Model::train_step_status(st));
      return 1;
    }
    losses.push_back(o.scalar(MODEL(_train_step_outputs), nOut, "loss"));
  }
  if (!evaluate(&after)) return 1;
  std::printf("held batch: loss %.5f -> %.5f after %lld steps (train losses %.5f ... %.5f)\n",
              before[0], after[0], static_cast<long long>(steps), losses.front(), losses.back());
  if (!writeNpy(dir + "/train_losses.npy", losses) || !writeNpy(dir + "/eval_after.npy", after))
    return 1;
  return after[0] < before[0] ? 0 : 1;
}
