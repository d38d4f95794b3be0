// kiln_npy_compare TOL GOT.npy WANT.npy: the largest |got - want| / max(1, |want|) over two
// .npy arrays of the same dtype and shape (integers and booleans must be equal); exit status 1
// when it exceeds TOL, when they differ in dtype or shape, or when NaN/infinity patterns differ.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/Npy.h"

namespace {

bool load(const char* path, kiln::rt::NpyArray* a) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", path);
    return false;
  }
  std::string err = kiln::rt::decodeNpy(ss.str(), a);
  if (!err.empty()) std::fprintf(stderr, "%s: %s\n", path, err.c_str());
  return err.empty();
}

double element(const kiln::rt::NpyArray& a, size_t i) {
  const unsigned char* p = a.data.data();
  if (a.descr == "<f4") {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  if (a.descr == "<f8") {
    double v;
    std::memcpy(&v, p + 8 * i, 8);
    return v;
  }
  if (a.descr == "<i4") {
    int32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  }
  if (a.descr == "<i8") {
    int64_t v;
    std::memcpy(&v, p + 8 * i, 8);
    return static_cast<double>(v);
  }
  return p[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: kiln_npy_compare TOL GOT.npy WANT.npy\n");
    return 2;
  }
  double tol = std::stod(argv[1]);
  kiln::rt::NpyArray got, want;
  if (!load(argv[2], &got) || !load(argv[3], &want)) return 1;
  if (got.descr != want.descr || got.shape != want.shape) {
    std::fprintf(stderr, "%s and %s differ in dtype or shape (%s vs %s)\n", argv[2], argv[3],
                 got.descr.c_str(), want.descr.c_str());
    return 1;
  }
  bool exact = got.descr != "<f4" && got.descr != "<f8";
  size_t n = got.data.size() / static_cast<size_t>(kiln::rt::npyElementSize(got.descr));
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double g = element(got, i), w = element(want, i);
    if (std::isnan(g) || std::isnan(w) || std::isinf(g) || std::isinf(w)) {
      if (!(std::isnan(g) && std::isnan(w)) && g != w) worst = INFINITY;
      continue;
    }
    double e = std::abs(g - w) / std::max(1.0, std::abs(w));
    if (exact && g != w) e = INFINITY;
    worst = std::max(worst, e);
  }
  std::printf("%s vs %s: %zu elements, max scaled error %.3g (tolerance %.3g)\n", argv[2], argv[3],
              n, worst, tol);
  return worst <= tol ? 0 : 1;
}
