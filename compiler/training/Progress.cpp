// Progress bar, epoch lines and the metrics file.
#include "compiler/training/Progress.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace kiln {

std::string formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

void EpochProgress::start(int64_t epoch, int64_t epochs, int64_t steps, int64_t done) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  firstDone_ = done;
  samples_ = 0;
  start_ = lastDraw_ = Clock::now();
}

void EpochProgress::update(int64_t done, int64_t samples, double loss, double accuracy) {
  samples_ += samples;
  if (!bar_) return;
  auto now = Clock::now();
  // Redrawing every step would cost more than a small model's step; 10 times a second is smooth.
  if (done < steps_ && now - lastDraw_ < std::chrono::milliseconds(100)) return;
  lastDraw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(samples_) / elapsed : 0;
  double perStep = done > firstDone_ ? elapsed / static_cast<double>(done - firstDone_) : 0;
  const int width = 24;
  int filled = steps_ > 0 ? static_cast<int>(width * done / steps_) : width;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  char acc[32] = "";
  if (accuracy >= 0) std::snprintf(acc, sizeof acc, " accuracy %.4f", accuracy);
  std::fprintf(out_, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  %.0f samples/s  ETA %s  loss %.4f%s",
               static_cast<long long>(epoch_), static_cast<long long>(epochs_), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(steps_), rate,
               formatDuration(perStep * static_cast<double>(steps_ - done)).c_str(), loss, acc);
  std::fflush(out_);
}

void EpochProgress::finish(const std::string& line) {
  if (bar_) std::fprintf(out_, "\r\033[K");
  if (!line.empty()) std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

bool MetricsLog::open(const std::string& path, std::string* error) {
  if (path.empty()) return true;
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) {
    *error = path + ": cannot open the metrics file: " + std::strerror(errno);
    return false;
  }
  return true;
}

void MetricsLog::write(const std::map<std::string, double>& values) {
  if (!f_) return;
  std::string line = "{";
  for (const auto& [k, v] : values) {
    char num[40];
    if (std::isfinite(v))
      std::snprintf(num, sizeof num, "%.7g", v);  // float32 values carry 7 digits
    else
      std::snprintf(num, sizeof num, "null");
    line += (line.size() > 1 ? ", \"" : "\"") + k + "\": " + num;
  }
  line += "}\n";
  std::fputs(line.c_str(), f_);
  std::fflush(f_);  // a killed run keeps every finished epoch's line
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

}  // namespace kiln
