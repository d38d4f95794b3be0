// Training progress: a live bar per epoch on a terminal, one line per epoch otherwise, and the
// JSON-lines metrics file.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

namespace kiln {

class EpochProgress {
 public:
  EpochProgress(FILE* out, bool bar) : out_(out), bar_(bar) {}
  /// Starts epoch `epoch` (from 1) of `epochs`, with `steps` steps of which `done` are done.
  void start(int64_t epoch, int64_t epochs, int64_t steps, int64_t done);
  /// After a step: the running mean loss and accuracy of the epoch so far (accuracy < 0: none).
  void update(int64_t done, int64_t samples, double loss, double accuracy);
  /// Ends the epoch with its summary line (replacing the bar).
  void finish(const std::string& line);

 private:
  using Clock = std::chrono::steady_clock;
  FILE* out_;
  bool bar_;
  int64_t epoch_ = 0, epochs_ = 0, steps_ = 0, firstDone_ = 0, samples_ = 0;
  Clock::time_point start_, lastDraw_;
};

/// "1:05" or "1:02:03".
std::string formatDuration(double seconds);

/// Appends one JSON object per line: numbers (non-finite ones as null), in key order.
class MetricsLog {
 public:
  /// `path` "" disables it. Returns false (with the reason in *error) if the file cannot be opened.
  bool open(const std::string& path, std::string* error);
  void write(const std::map<std::string, double>& values);
  ~MetricsLog();

 private:
  FILE* f_ = nullptr;
};

}  // namespace kiln
