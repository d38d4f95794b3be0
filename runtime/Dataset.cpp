// Data-set readers and cuts: IDX/.npy/CSV into float rows and int64 labels, split, filter, order.
#include "runtime/Dataset.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/Idx.h"
#include "runtime/Npy.h"
#include "runtime/Random.h"

namespace kiln::rt {
namespace {

std::string readWholeFile(const std::string& path, std::string* bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return path + ": cannot open: " + std::strerror(errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << f.rdbuf();
  *bytes = ss.str();
  return "";
}

std::string shapeText(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

bool isFile(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

// The IDX file `base` or `base.gz` in `dir`, whichever exists (plain preferred), else base.gz.
std::string idxPath(const std::filesystem::path& dir, const std::string& base) {
  if (isFile(dir / base)) return (dir / base).string();
  return (dir / (base + ".gz")).string();
}

// Scales pixels to [0, 1]: 255 is the brightest value of 8-bit images.
/// CSV columns are 8-bit pixels when every value is an integer in [0, 255]; features that
/// are already scaled or real-valued are left alone.
bool looksLikePixels(const Dataset& d) {
  return std::all_of(d.features.begin(), d.features.end(),
                     [](float v) { return v >= 0 && v <= 255 && v == std::floor(v); });
}

void scale(Dataset* d) {
  for (float& v : d->features) v /= 255.0f;
}

}  // namespace

int64_t Dataset::rowSize() const {
  int64_t n = 1;
  for (int64_t d : rowShape) n *= d;
  return n;
}

Dataset Dataset::slice(int64_t begin, int64_t count) const {
  Dataset out;
  out.rowShape = rowShape;
  out.rows = count;
  out.source = source;
  const int64_t rs = rowSize();
  out.features.assign(features.begin() + begin * rs, features.begin() + (begin + count) * rs);
  out.labels.assign(labels.begin() + begin, labels.begin() + begin + count);
  return out;
}

void Dataset::gather(std::span<const int64_t> index, float* x, int64_t* y) const {
  const int64_t rs = rowSize();
  for (size_t i = 0; i < index.size(); ++i) {
    std::memcpy(x + static_cast<int64_t>(i) * rs, features.data() + index[i] * rs,
                static_cast<size_t>(rs) * sizeof(float));
    y[i] = labels[static_cast<size_t>(index[i])];
  }
}

std::string readIdxDataset(const std::string& images, const std::string& labels, Dataset* out) {
  IdxArray x, y;
  if (std::string e = readIdx(images, &x); !e.empty()) return e;
  if (std::string e = readIdx(labels, &y); !e.empty()) return e;
  if (y.shape.size() != 1) return labels + ": labels must be one-dimensional, found " + shapeText(y.shape);
  if (x.shape[0] != y.shape[0])
    return images + ": " + std::to_string(x.shape[0]) + " images but " + labels + " has " +
           std::to_string(y.shape[0]) + " labels";
  out->rowShape.assign(x.shape.begin() + 1, x.shape.end());
  out->rows = x.shape[0];
  out->features.assign(x.data.begin(), x.data.end());
  out->labels.assign(y.data.begin(), y.data.end());
  out->source = images;
  return "";
}

std::string readNpyDataset(const std::string& features, const std::string& labels, Dataset* out) {
  std::string fb, lb;
  NpyArray x, y;
  if (std::string e = readWholeFile(features, &fb); !e.empty()) return e;
  if (std::string e = decodeNpy(fb, &x); !e.empty()) return features + ": " + e;
  if (std::string e = readWholeFile(labels, &lb); !e.empty()) return e;
  if (std::string e = decodeNpy(lb, &y); !e.empty()) return labels + ": " + e;
  if (x.shape.empty()) return features + ": features need a row dimension, found a scalar";
  if (y.shape.size() != 1) return labels + ": labels must be one-dimensional, found " + shapeText(y.shape);
  if (x.shape[0] != y.shape[0])
    return features + ": " + std::to_string(x.shape[0]) + " rows but " + labels + " has " +
           std::to_string(y.shape[0]) + " labels";
  const int64_t n = x.shape[0], total = static_cast<int64_t>(x.data.size()) / npyElementSize(x.descr);
  out->rowShape.assign(x.shape.begin() + 1, x.shape.end());
  out->rows = n;
  out->features.resize(static_cast<size_t>(total));
  const unsigned char* p = x.data.data();
  for (int64_t i = 0; i < total; ++i) {
    double v;
    if (x.descr == "<f4") { float f; std::memcpy(&f, p + 4 * i, 4); v = f; }
    else if (x.descr == "<f8") std::memcpy(&v, p + 8 * i, 8);
    else if (x.descr == "<i4") { int32_t k; std::memcpy(&k, p + 4 * i, 4); v = k; }
    else if (x.descr == "<i8") { int64_t k; std::memcpy(&k, p + 8 * i, 8); v = static_cast<double>(k); }
    else v = p[i];  // |u1, |b1
    out->features[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  out->labels.resize(static_cast<size_t>(n));
  const unsigned char* q = y.data.data();
  for (int64_t i = 0; i < n; ++i) {
    int64_t k;
    if (y.descr == "<i8") std::memcpy(&k, q + 8 * i, 8);
    else if (y.descr == "<i4") { int32_t v; std::memcpy(&v, q + 4 * i, 4); k = v; }
    else if (y.descr == "|u1" || y.descr == "|b1") k = q[i];
    else return labels + ": labels must be integers (int32, int64 or uint8), found '" + y.descr + "'";
    out->labels[static_cast<size_t>(i)] = k;
  }
  out->source = features;
  return "";
}

std::string readCsvDataset(const std::string& path, Dataset* out) {
  std::ifstream f(path);
  if (!f) return path + ": cannot open: " + std::strerror(errno ? errno : ENOENT);
  out->features.clear();
  out->labels.clear();
  out->rows = 0;
  out->source = path;
  int64_t width = -1;
  std::string line;
  for (int lineNo = 1; std::getline(f, line); ++lineNo) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::vector<double> fields;
    bool numeric = true;
    size_t pos = 0;
    while (pos <= line.size()) {
      size_t comma = line.find(',', pos);
      if (comma == std::string::npos) comma = line.size();
      std::string_view field(line.data() + pos, comma - pos);
      while (!field.empty() && field.front() == ' ') field.remove_prefix(1);
      while (!field.empty() && field.back() == ' ') field.remove_suffix(1);
      double v = 0;
      auto r = std::from_chars(field.data(), field.data() + field.size(), v);
      if (r.ec != std::errc() || r.ptr != field.data() + field.size()) numeric = false;
      fields.push_back(v);
      pos = comma + 1;
    }
    if (!numeric) {
      if (lineNo == 1 && out->rows == 0) continue;  // a header line
      return path + ":" + std::to_string(lineNo) + ": a field is not a number";
    }
    if (fields.size() < 2) return path + ":" + std::to_string(lineNo) + ": expected a label and features";
    if (width < 0) width = static_cast<int64_t>(fields.size());
    if (static_cast<int64_t>(fields.size()) != width)
      return path + ":" + std::to_string(lineNo) + ": " + std::to_string(fields.size()) +
             " fields, but the first row has " + std::to_string(width);
    if (fields[0] != std::floor(fields[0]) || fields[0] < 0)
      return path + ":" + std::to_string(lineNo) + ": the label (first field) must be a non-negative integer";
    out->labels.push_back(static_cast<int64_t>(fields[0]));
    for (size_t i = 1; i < fields.size(); ++i) out->features.push_back(static_cast<float>(fields[i]));
    ++out->rows;
  }
  if (out->rows == 0) return path + ": no data rows";
  out->rowShape = {width - 1};
  return "";
}

void filterClasses(Dataset* d, const std::vector<int64_t>& classes, bool relabel) {
  const int64_t rs = d->rowSize();
  int64_t kept = 0;
  for (int64_t i = 0; i < d->rows; ++i) {
    auto it = std::find(classes.begin(), classes.end(), d->labels[static_cast<size_t>(i)]);
    if (it == classes.end()) continue;
    if (kept != i)
      std::memmove(d->features.data() + kept * rs, d->features.data() + i * rs, static_cast<size_t>(rs) * sizeof(float));
    d->labels[static_cast<size_t>(kept)] = relabel ? it - classes.begin() : d->labels[static_cast<size_t>(i)];
    ++kept;
  }
  d->rows = kept;
  d->features.resize(static_cast<size_t>(kept * rs));
  d->labels.resize(static_cast<size_t>(kept));
}

std::string loadDataSplits(const DataOptions& opts, DataSplits* out) {
  namespace fs = std::filesystem;
  const fs::path dir(opts.dir);
  const bool isDefault = fs::path(opts.dir).lexically_normal() == fs::path(kDefaultDataDir).lexically_normal();
  auto withHint = [&](std::string e) {
    if (isDefault) e += " (the default data set: install the Debian package dataset-fashion-mnist)";
    return e;
  };
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return withHint(opts.dir + ": no such data directory");
  Dataset full;
  std::string err;
  bool pixels = true;
  if (isFile(dir / "x_train.npy") || isFile(dir / "y_train.npy")) {
    out->format = "npy";
    err = readNpyDataset((dir / "x_train.npy").string(), (dir / "y_train.npy").string(), &full);
    if (err.empty()) err = readNpyDataset((dir / "x_test.npy").string(), (dir / "y_test.npy").string(), &out->test);
    // Only 8-bit images are pixels; float features are taken as they are.
    std::string fb;
    NpyArray probe;
    pixels = readWholeFile((dir / "x_train.npy").string(), &fb).empty() && decodeNpy(fb, &probe).empty() &&
             probe.descr == "|u1";
  } else if (isFile(dir / "train.csv")) {
    out->format = "csv";
    err = readCsvDataset((dir / "train.csv").string(), &full);
    if (err.empty()) err = readCsvDataset((dir / "test.csv").string(), &out->test);
    pixels = looksLikePixels(full);
  } else {
    out->format = "idx";
    err = readIdxDataset(idxPath(dir, "train-images-idx3-ubyte"), idxPath(dir, "train-labels-idx1-ubyte"), &full);
    if (err.empty())
      err = readIdxDataset(idxPath(dir, "t10k-images-idx3-ubyte"), idxPath(dir, "t10k-labels-idx1-ubyte"), &out->test);
    if (!err.empty() && !isFile(dir / "train-images-idx3-ubyte.gz") && !isFile(dir / "train-images-idx3-ubyte"))
      err += "; a data directory holds IDX files (train-images-idx3-ubyte[.gz], ...), x_train.npy/y_train.npy/"
             "x_test.npy/y_test.npy, or train.csv/test.csv";
  }
  if (!err.empty()) return withHint(err);
  if (out->test.rowShape != full.rowShape)
    return out->test.source + ": test rows are " + shapeText(out->test.rowShape) + " but training rows are " +
           shapeText(full.rowShape);
  if (opts.scalePixels && pixels) {
    scale(&full);
    scale(&out->test);
  }
  if (!opts.validationFeatures.empty()) {
    if (opts.validationRows != 0)
      return "a separate validation set (" + opts.validationFeatures + ") and a validation split of " +
             std::to_string(opts.validationRows) + " training rows: give one or the other";
    const std::string& vf = opts.validationFeatures;
    bool vpixels = true;
    if (vf.ends_with(".csv")) {
      err = readCsvDataset(vf, &out->validation);
      vpixels = err.empty() && looksLikePixels(out->validation);
    } else if (vf.ends_with(".npy")) {
      if (opts.validationLabels.empty()) return vf + ": a validation .npy needs its labels .npy too";
      err = readNpyDataset(vf, opts.validationLabels, &out->validation);
      std::string fb;
      NpyArray probe;
      vpixels = readWholeFile(vf, &fb).empty() && decodeNpy(fb, &probe).empty() && probe.descr == "|u1";
    } else {
      if (opts.validationLabels.empty()) return vf + ": validation IDX images need their IDX labels file too";
      err = readIdxDataset(vf, opts.validationLabels, &out->validation);
    }
    if (!err.empty()) return err;
    if (out->validation.rowShape != full.rowShape)
      return out->validation.source + ": validation rows are " + shapeText(out->validation.rowShape) +
             " but training rows are " + shapeText(full.rowShape);
    if (opts.scalePixels && vpixels) scale(&out->validation);
  }
  if (opts.validationRows < 0 || opts.validationRows >= full.rows)
    return "the validation split (" + std::to_string(opts.validationRows) + " rows) must leave training rows: " +
           full.source + " has " + std::to_string(full.rows);
  if (opts.validationFeatures.empty()) out->validation = full.slice(0, opts.validationRows);
  out->train = full.slice(opts.validationRows, full.rows - opts.validationRows);
  if (!opts.classes.empty()) {
    filterClasses(&out->train, opts.classes, opts.relabel);
    filterClasses(&out->validation, opts.classes, opts.relabel);
    filterClasses(&out->test, opts.classes, opts.relabel);
    if (out->train.rows == 0) return full.source + ": no training rows of the selected classes";
  }
  if (opts.trainLimit >= 0 && opts.trainLimit < out->train.rows)
    out->train = out->train.slice(0, opts.trainLimit);
  if (out->train.rows == 0) return "no training rows left (--train-limit 0?)";
  return "";
}

std::vector<int64_t> epochOrder(int64_t rows, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) order[static_cast<size_t>(i)] = i;
  if (!shuffle) return order;
  RandomStream r(seed, mix64(hashName("data/shuffle") + static_cast<uint64_t>(epoch)));
  for (int64_t i = rows - 1; i > 0; --i) {
    // Multiply-shift maps 64 random bits to [0, i] with a bias below 2^-40 at these sizes.
    auto j = static_cast<int64_t>((static_cast<unsigned __int128>(r.bits(static_cast<uint64_t>(i))) *
                                   static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

}  // namespace kiln::rt
