// A small program around one AOT-compiled model, built for the host and for AArch64 by
// tests/aot/cross_check.sh: deterministic inputs, one call through the generated C++ wrapper,
// inputs and outputs written as .npy so that `kiln run` and kiln_npy_compare can check them.
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

const char* npyDescr(const kiln_aot_tensor_info& t) {
  std::string d = t.dtype;
  if (d == "float32") return "<f4";
  if (d == "float64") return "<f8";
  if (d == "int32") return "<i4";
  if (d == "int64") return "<i8";
  return "|b1";
}

std::vector<int64_t> boundShape(const kiln_aot_tensor_info& t, int64_t batch) {
  std::vector<int64_t> s(t.shape, t.shape + t.rank);
  for (int64_t& d : s)
    if (d == -1) d = batch;
  return s;
}

bool writeNpy(const std::string& path, const kiln_aot_tensor_info& t, int64_t batch,
              const std::vector<unsigned char>& bytes) {
  std::string data =
      kiln::rt::encodeNpy(npyDescr(t), boundShape(t, batch), bytes.data(), bytes.size());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

std::string fileName(std::string name) {
  for (char& c : name)
    if (c == '/') c = '_';
  return name;
}

/// Element i of a deterministic input: floats in [0, 1) like scaled pixels, integers in [0, 10)
/// (class labels), booleans alternating. A hash keeps neighbouring elements unrelated.
void fill(const kiln_aot_tensor_info& t, int64_t count, unsigned char* out) {
  std::string d = t.dtype;
  for (int64_t i = 0; i < count; ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ 0x9e3779b9u;
    h ^= h >> 15;
    double u = (h % 100000u) / 100000.0;
    if (d == "float32")
      reinterpret_cast<float*>(out)[i] = static_cast<float>(u);
    else if (d == "float64")
      reinterpret_cast<double*>(out)[i] = u;
    else if (d == "int32")
      reinterpret_cast<int32_t*>(out)[i] = static_cast<int32_t>(h % 10u);
    else if (d == "int64")
      reinterpret_cast<int64_t*>(out)[i] = static_cast<int64_t>(h % 10u);
    else
      out[i] = static_cast<unsigned char>(i % 2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OUTDIR BATCH\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int64_t batch = std::stoll(argv[2]);
  using Model = kiln_aot::KILN_AOT_NAME;
  constexpr int kInputs = Model::predict_num_inputs, kOutputs = Model::predict_num_outputs;
  std::vector<std::vector<unsigned char>> ins(kInputs), outs(kOutputs);
  std::vector<const void*> inPtrs;
  std::vector<void*> outPtrs;
  for (int i = 0; i < kInputs; ++i) {
    const kiln_aot_tensor_info& t = MODEL(_predict_inputs)[i];
    int64_t count = t.elements * (t.batched ? batch : 1);
    ins[size_t(i)].resize(size_t(count * t.element_size));
    fill(t, count, ins[size_t(i)].data());
    inPtrs.push_back(ins[size_t(i)].data());
    if (!writeNpy(dir + "/in_" + fileName(t.name) + ".npy", t, batch, ins[size_t(i)])) return 1;
  }
  for (int i = 0; i < kOutputs; ++i) {
    const kiln_aot_tensor_info& t = MODEL(_predict_outputs)[i];
    outs[size_t(i)].resize(size_t(t.elements * (t.batched ? batch : 1) * t.element_size));
    outPtrs.push_back(outs[size_t(i)].data());
  }
  Model model;
  if (int32_t s = model.predict(batch, inPtrs.data(), outPtrs.data()); s != 0) {
    std::fprintf(stderr, "predict failed: %s\n", model.predict_status(s));
    return 1;
  }
  for (int i = 0; i < kOutputs; ++i) {
    const kiln_aot_tensor_info& t = MODEL(_predict_outputs)[i];
    if (!writeNpy(dir + "/out_" + fileName(t.name) + ".npy", t, batch, outs[size_t(i)])) return 1;
  }
  std::printf("%s: %d outputs at batch %lld\n", MODEL(_predict_outputs)[0].name, kOutputs,
              static_cast<long long>(batch));
  return 0;
}
