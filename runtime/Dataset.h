// Training data: IDX, .npy and CSV readers, the validation split, class filters, subsets, and
// the order of each epoch's mini-batches as a pure function of (seed, epoch).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kiln::rt {

/// Where Debian's dataset-fashion-mnist package puts the IDX files (the default data set).
inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

/// Rows of float features (each of shape `rowShape`) with integer class labels.
struct Dataset {
  std::vector<int64_t> rowShape;  // e.g. [28, 28]
  int64_t rows = 0;
  std::vector<float> features;    // rows * rowSize(), row-major
  std::vector<int64_t> labels;    // one per row
  std::string source;             // the file the features came from, for messages

  int64_t rowSize() const;
  /// Rows [begin, begin + count).
  Dataset slice(int64_t begin, int64_t count) const;
  /// Copies rows `index` into x (index.size() * rowSize() floats) and y (index.size() labels).
  void gather(std::span<const int64_t> index, float* x, int64_t* y) const;
};

/// What a training run reads and how it cuts it.
struct DataOptions {
  std::string dir = kDefaultDataDir;
  /// Divide integer pixel data (IDX, uint8 .npy, CSV whose values are all integers in [0, 255])
  /// by 255 so that it lies in [0, 1].
  bool scalePixels = true;
  /// The first `validationRows` training rows become the validation set (the book's 5,000).
  int64_t validationRows = 5000;
  /// Keep only these classes (applied to every split, after the validation split, as the book
  /// splits the transfer-learning sets); empty keeps all.
  std::vector<int64_t> classes;
  /// With `classes`: relabel class classes[i] to i (model A's 8 classes become 0..7; model B's
  /// "5,6" makes sandal 0 and shirt 1). Without: labels stay as in the file.
  bool relabel = true;
  /// A separate validation set instead of the split: `validationFeatures` is a .csv file (label
  /// first), a features .npy (with `validationLabels` the labels .npy) or an IDX images file
  /// (with `validationLabels` the IDX labels file). validationRows must then be 0.
  std::string validationFeatures, validationLabels;
  /// Keep the first N rows of the training portion (after the split and the filter); -1: all.
  int64_t trainLimit = -1;
};

struct DataSplits {
  Dataset train, validation, test;
  std::string format;  // "idx", "npy" or "csv"
};

/// Reads `opts.dir` and cuts it. The directory holds one of:
///   IDX:  train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-..., t10k-labels-...
///   .npy: x_train.npy, y_train.npy, x_test.npy, y_test.npy (Keras's load_data names)
///   CSV:  train.csv, test.csv (label first, then the features; an optional header line)
/// Returns an empty string, or what is wrong, naming the file (and, for the default directory,
/// the Debian package that provides it).
std::string loadDataSplits(const DataOptions& opts, DataSplits* out);

/// Single readers (no scaling); each returns an empty string or an error naming the file.
std::string readIdxDataset(const std::string& images, const std::string& labels, Dataset* out);
std::string readNpyDataset(const std::string& features, const std::string& labels, Dataset* out);
std::string readCsvDataset(const std::string& path, Dataset* out);

/// Keeps the rows whose label is in `classes`, relabelling classes[i] to i when `relabel`.
void filterClasses(Dataset* d, const std::vector<int64_t>& classes, bool relabel);

/// The order in which epoch `epoch` visits `rows` rows: a Fisher-Yates shuffle drawn from the
/// counter-based generator keyed by (seed, epoch), so it is the same after a resume, or 0..rows-1
/// when `shuffle` is false.
std::vector<int64_t> epochOrder(int64_t rows, uint64_t seed, int64_t epoch, bool shuffle);

}  // namespace kiln::rt
