// The training data path: IDX/.npy/CSV readers, the validation split, class filters, the
// training subset, and epoch orders that depend on (seed, epoch) alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "TestUtil.h"
#include "runtime/Dataset.h"
#include "runtime/Npy.h"

namespace kiln::rt {
namespace {

namespace fs = std::filesystem;

fs::path tempDir(const std::string& name) {
  return test::freshTempDir("kiln_data_" + name);
}

void writeBytes(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

TEST(RuntimeDataTest, FashionMnistSplitsAsTheBookDoes) {
  DataOptions opts;  // the default directory, scaled, 5,000 validation rows
  DataSplits s;
  ASSERT_EQ(loadDataSplits(opts, &s), "");
  EXPECT_EQ(s.format, "idx");
  EXPECT_EQ(s.train.rows, 55000);
  EXPECT_EQ(s.validation.rows, 5000);
  EXPECT_EQ(s.test.rows, 10000);
  EXPECT_EQ(s.train.rowShape, (std::vector<int64_t>{28, 28}));
  float lo = 1, hi = 0;
  for (float v : s.train.features) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
  // The validation rows are the file's first 5,000: the file's first label is 9 (ankle boot).
  EXPECT_EQ(s.validation.labels[0], 9);

  // Transfer learning: model A keeps 8 classes (no sandal 5 or shirt 6), relabelled 0..7.
  Dataset a = s.train;
  filterClasses(&a, {0, 1, 2, 3, 4, 7, 8, 9}, /*relabel=*/true);
  std::set<int64_t> labels(a.labels.begin(), a.labels.end());
  EXPECT_EQ(labels, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_NEAR(a.rows, 55000 * 0.8, 300);
  // Model B: shirt vs sandal, sandal 0 and shirt 1 (the book's y == 6), 200 training images.
  opts.classes = {5, 6};
  opts.trainLimit = 200;
  DataSplits b;
  ASSERT_EQ(loadDataSplits(opts, &b), "");
  EXPECT_EQ(b.train.rows, 200);
  std::set<int64_t> bl(b.train.labels.begin(), b.train.labels.end());
  EXPECT_EQ(bl, (std::set<int64_t>{0, 1}));
  EXPECT_EQ(b.test.rows, 2000);
  // The filter keeps the row order: B's first image is the first sandal or shirt after row 5,000.
  const DataSplits& all = s;
  int64_t first = 0;
  while (all.train.labels[first] != 5 && all.train.labels[first] != 6) ++first;
  EXPECT_TRUE(std::equal(b.train.features.begin(), b.train.features.begin() + 784,
                         all.train.features.begin() + first * 784));
  EXPECT_EQ(b.train.labels[0], all.train.labels[first] == 6 ? 1 : 0);
}

TEST(RuntimeDataTest, MissingFilesNameTheFileAndThePackage) {
  fs::path d = tempDir("missing");
  DataOptions opts;
  opts.dir = d.string();
  DataSplits s;
  std::string e = loadDataSplits(opts, &s);
  EXPECT_NE(e.find("train-images-idx3-ubyte"), std::string::npos) << e;
  EXPECT_EQ(e.find("dataset-fashion-mnist"), std::string::npos) << "only the default dir names the package";
  opts.dir = "/nonexistent/kiln";
  e = loadDataSplits(opts, &s);
  EXPECT_NE(e.find("/nonexistent/kiln: no such data directory"), std::string::npos) << e;
  // A corrupt IDX file: named, with what is wrong.
  writeBytes(d / "train-images-idx3-ubyte", "\x01\x02garbage");
  opts.dir = d.string();
  e = loadDataSplits(opts, &s);
  EXPECT_NE(e.find("train-images-idx3-ubyte: not an IDX file"), std::string::npos) << e;
}

TEST(RuntimeDataTest, NpyAndCsvReadAsIdxDoes) {
  fs::path d = tempDir("npy");
  // 6 rows of 2x2 uint8 "pixels", labels 0..2.
  std::vector<uint8_t> px(24);
  std::iota(px.begin(), px.end(), 0);
  std::vector<int64_t> y = {0, 1, 2, 0, 1, 2};
  writeBytes(d / "x_train.npy", encodeNpy("|u1", {6, 2, 2}, px.data(), px.size()));
  writeBytes(d / "y_train.npy", encodeNpy("<i8", {6}, y.data(), y.size() * 8));
  writeBytes(d / "x_test.npy", encodeNpy("|u1", {2, 2, 2}, px.data(), 8));
  writeBytes(d / "y_test.npy", encodeNpy("<i8", {2}, y.data(), 16));
  DataOptions opts;
  opts.dir = d.string();
  opts.validationRows = 2;
  DataSplits s;
  ASSERT_EQ(loadDataSplits(opts, &s), "");
  EXPECT_EQ(s.format, "npy");
  EXPECT_EQ(s.train.rows, 4);
  EXPECT_EQ(s.train.rowShape, (std::vector<int64_t>{2, 2}));
  EXPECT_FLOAT_EQ(s.train.features[0], 8 / 255.0f);
  EXPECT_EQ(s.train.labels, (std::vector<int64_t>{2, 0, 1, 2}));

  fs::path c = tempDir("csv");
  writeBytes(c / "train.csv", "label,p1,p2\n3,0,255\n1,10,20\r\n\n2,5,5\n");
  writeBytes(c / "test.csv", "0,1,2\n");
  opts.dir = c.string();
  opts.validationRows = 1;
  DataSplits cs;
  ASSERT_EQ(loadDataSplits(opts, &cs), "");
  EXPECT_EQ(cs.format, "csv");
  EXPECT_EQ(cs.validation.labels, (std::vector<int64_t>{3}));
  EXPECT_EQ(cs.train.labels, (std::vector<int64_t>{1, 2}));
  EXPECT_FLOAT_EQ(cs.validation.features[1], 1.0f);
  writeBytes(c / "train.csv", "1,2,3\n4,5\n");
  std::string e = loadDataSplits(opts, &cs);
  EXPECT_NE(e.find("train.csv:2: 2 fields, but the first row has 3"), std::string::npos) << e;
}

TEST(RuntimeDataTest, EpochOrderIsAPureFunctionOfSeedAndEpoch) {
  auto a = epochOrder(1000, 42, 3, true);
  EXPECT_EQ(a, epochOrder(1000, 42, 3, true));
  EXPECT_NE(a, epochOrder(1000, 42, 4, true));
  EXPECT_NE(a, epochOrder(1000, 43, 3, true));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota) << "a permutation";
  EXPECT_NE(a, iota);
  EXPECT_EQ(epochOrder(1000, 42, 3, false), iota);
  // Uniform enough: each position's mean index is near 499.5 over many epochs.
  double mean0 = 0;
  for (int e = 0; e < 400; ++e) mean0 += epochOrder(100, 1, e, true)[0];
  EXPECT_NEAR(mean0 / 400, 49.5, 5);
}

}  // namespace
}  // namespace kiln::rt
