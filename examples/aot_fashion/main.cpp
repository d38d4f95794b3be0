// Classifies the Fashion-MNIST test images with fashion_mlp compiled ahead of time by
// `kiln compile`: no Kiln compiler, no LLVM, only the object, its header and the runtime library.
// Usage: classify [DATA_DIR [WEIGHTS.safetensors]] (the weights file only with --weights-external).
#include <cstdio>
#include <string>
#include <vector>

#include "fashion_mlp.h"
#include "runtime/Idx.h"

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  kiln::rt::IdxArray images, labels;
  std::string err = kiln::rt::readIdx(dir + "/t10k-images-idx3-ubyte.gz", &images);
  if (err.empty()) err = kiln::rt::readIdx(dir + "/t10k-labels-idx1-ubyte.gz", &labels);
  if (!err.empty()) {
    std::fprintf(stderr, "classify: %s\n", err.c_str());
    return 1;
  }
  const int64_t pixels = fashion_mlp_predict_inputs[0].elements;    // 784
  const int64_t classes = fashion_mlp_predict_outputs[0].elements;  // 10
  const int64_t n = images.shape[0];
  if (images.shape.size() != 3 || images.shape[1] * images.shape[2] != pixels ||
      labels.shape[0] != n) {
    std::fprintf(stderr, "classify: expected N x 28 x 28 images and N labels\n");
    return 1;
  }
#if FASHION_MLP_WEIGHTS_EXTERNAL
  // Compiled with --weights-external: the weights are a file beside the object.
  kiln_aot::fashion_mlp model(argc > 2 ? argv[2] : "out/fashion_mlp.safetensors");
  if (!model.ok()) {
    std::fprintf(stderr, "classify: %s\n", model.error().c_str());
    return 1;
  }
#else
  kiln_aot::fashion_mlp model;  // the weights are in the object
#endif
  const int64_t batch = 500;
  if (!model.reserve(batch)) {
    std::fprintf(stderr, "classify: out of memory\n");
    return 1;
  }
  // Pixels scaled to [0, 1], as kiln train scales them.
  std::vector<float> x(size_t(batch * pixels)), logits(size_t(batch * classes));
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += batch) {
    int64_t b = std::min(batch, n - start);
    for (int64_t i = 0; i < b * pixels; ++i)
      x[size_t(i)] = images.data[size_t(start * pixels + i)] / 255.0f;
    const void* inputs[] = {x.data()};
    void* outputs[] = {logits.data()};
    if (int32_t s = model.predict(b, inputs, outputs); s != 0) {
      std::fprintf(stderr, "classify: %s\n", kiln_aot::fashion_mlp::predict_status(s));
      return 1;
    }
    for (int64_t r = 0; r < b; ++r) {
      const float* row = &logits[size_t(r * classes)];
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (row[c] > row[best]) best = c;
      correct += best == labels.data[size_t(start + r)];
    }
  }
  std::printf("test accuracy: %.4f (%lld of %lld images)\n", double(correct) / double(n),
              static_cast<long long>(correct), static_cast<long long>(n));
  return 0;
}
