// `kiln plot METRICS.jsonl -o curves.svg`: the learning curves of a run (loss and accuracy,
// training and validation, per epoch; the test figure as a dashed line; the learning rate) and,
// when the run logged them with --log-gradients, each layer's gradient norm (log scale) and its
// activations' dead or saturated fraction per step. Plain SVG that any browser shows.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "ir/ProtoIO.h"

namespace kiln::driver {
namespace {

using Row = std::map<std::string, double>;  // null values are left out

/// One JSON object of string keys and number/null values per line (what kiln train --metrics
/// writes). Errors name the file, the line and the column.
Expected<std::vector<Row>> readMetrics(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, readFileBytes(path));
  std::vector<Row> rows;
  std::istringstream in(text);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    size_t i = 0;
    auto fail = [&](const std::string& what) {
      return Error(Diagnostic{{path, lineNo, static_cast<int>(i) + 1}, {}, {}, what});
    };
    auto skip = [&] { while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i; };
    skip();
    if (i == line.size()) continue;
    if (line[i] != '{') return fail("expected a JSON object ('{'), found '" + line.substr(i, 1) + "'");
    ++i;
    Row row;
    skip();
    if (i < line.size() && line[i] == '}') ++i;
    else
      for (;;) {
        skip();
        if (i >= line.size() || line[i] != '"') return fail("expected a key in double quotes");
        size_t end = line.find('"', i + 1);
        if (end == std::string::npos) return fail("unterminated key");
        std::string key = line.substr(i + 1, end - i - 1);
        i = end + 1;
        skip();
        if (i >= line.size() || line[i] != ':') return fail("expected ':' after \"" + key + "\"");
        ++i;
        skip();
        if (line.compare(i, 4, "null") == 0) {
          i += 4;
        } else {
          const char* start = line.c_str() + i;
          char* stop = nullptr;
          double v = std::strtod(start, &stop);
          if (stop == start) return fail("the value of \"" + key + "\" is not a number or null");
          i += static_cast<size_t>(stop - start);
          row[key] = v;
        }
        skip();
        if (i < line.size() && line[i] == ',') { ++i; continue; }
        if (i < line.size() && line[i] == '}') { ++i; break; }
        return fail("expected ',' or '}'");
      }
    skip();
    if (i != line.size()) return fail("unexpected text after the object");
    rows.push_back(std::move(row));
  }
  return rows;
}

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;
};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

/// Tick positions: 1, 2 or 5 times a power of ten, about `want` of them over [lo, hi].
std::vector<double> niceTicks(double lo, double hi, int want) {
  double span = hi - lo, raw = span / want, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return t;
}

const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/// One chart at (x0, y0) of size w x h in the SVG.
void drawChart(std::ostringstream& svg, double x0, double y0, double w, double h, const std::string& title,
               const std::string& xLabel, const std::vector<Series>& series, bool logY) {
  const double left = x0 + 60, right = x0 + w - 150, top = y0 + 30, bottom = y0 + h - 40;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const Series& s : series)
    for (auto [x, y] : s.points) {
      if (logY && y <= 0) continue;
      double yy = logY ? std::log10(y) : y;
      xmin = std::min(xmin, x), xmax = std::max(xmax, x), ymin = std::min(ymin, yy), ymax = std::max(ymax, yy);
    }
  svg << "<text x='" << x0 + w / 2 - 60 << "' y='" << y0 + 18 << "' font-weight='bold'>" << esc(title) << "</text>\n";
  if (!std::isfinite(xmin)) {
    svg << "<text x='" << left << "' y='" << (top + bottom) / 2 << "'>no data</text>\n";
    return;
  }
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + (logY ? 1 : std::max(1e-3, std::abs(ymin) * 0.1)), ymin -= logY ? 0 : (ymax - ymin);
  double pad = (ymax - ymin) * 0.05;
  ymin -= pad, ymax += pad;
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ymin) / (ymax - ymin) * (bottom - top); };
  svg << "<rect x='" << left << "' y='" << top << "' width='" << right - left << "' height='" << bottom - top
      << "' fill='none' stroke='#888'/>\n";
  for (double t : niceTicks(xmin, xmax, 6))
    svg << "<line x1='" << px(t) << "' y1='" << bottom << "' x2='" << px(t) << "' y2='" << bottom + 4
        << "' stroke='#888'/><text x='" << px(t) - 8 << "' y='" << bottom + 16 << "' font-size='11'>" << num(t) << "</text>\n";
  std::vector<double> yt = logY ? std::vector<double>{} : niceTicks(ymin, ymax, 5);
  if (logY)  // Powers of ten, and 2x and 5x them when the range spans under two decades.
    for (double e = std::floor(ymin); e <= ymax; ++e)
      for (double m : {1.0, 2.0, 5.0})
        if ((m == 1.0 || ymax - ymin < 2) && e + std::log10(m) >= ymin && e + std::log10(m) <= ymax)
          yt.push_back(e + std::log10(m));
  for (double t : yt)
    svg << "<line x1='" << left << "' y1='" << py(t) << "' x2='" << right << "' y2='" << py(t)
        << "' stroke='#eee'/><text x='" << x0 + 4 << "' y='" << py(t) + 4 << "' font-size='11'>"
        << num(logY ? std::pow(10.0, t) : t) << "</text>\n";
  svg << "<text x='" << (left + right) / 2 - 20 << "' y='" << bottom + 32 << "' font-size='12'>" << esc(xLabel) << "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* color = kColors[k % std::size(kColors)];
    std::string path;
    for (auto [x, y] : s.points) {
      if (logY && y <= 0) continue;
      double yy = logY ? std::log10(y) : y;
      path += (path.empty() ? "M" : " L") + num(px(x)) + "," + num(py(yy));
    }
    svg << "<path d='" << path << "' fill='none' stroke='" << color << "' stroke-width='1.8'"
        << (s.dashed ? " stroke-dasharray='6,4'" : "") << "/>\n";
    if (s.points.size() == 1 && !s.dashed)
      svg << "<circle cx='" << px(s.points[0].first) << "' cy='" << py(logY ? std::log10(s.points[0].second) : s.points[0].second)
          << "' r='3' fill='" << color << "'/>\n";
    double ly = top + 14 + 16 * static_cast<double>(k);
    svg << "<line x1='" << right + 10 << "' y1='" << ly - 4 << "' x2='" << right + 30 << "' y2='" << ly - 4
        << "' stroke='" << color << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='4,3'" : "")
        << "/><text x='" << right + 34 << "' y='" << ly << "' font-size='11'>" << esc(s.name) << "</text>\n";
  }
}

}  // namespace

int runPlot(const std::vector<std::string>& args) {
  ArgParser p("plot METRICS.jsonl -o FILE.svg",
              "Draws the learning curves of a kiln train --metrics file as an SVG: loss and accuracy\n"
              "per epoch (training and validation; the test figure dashed), the learning rate, and,\n"
              "if the run used --log-gradients, each layer's gradient norm (log scale) and its\n"
              "activations' dead (ReLU family) or saturated (sigmoid, tanh) fraction per step.");
  p.positional("METRICS", "The JSON-lines metrics file");
  p.option("output", "FILE.svg", "Where to write the SVG");
  p.alias('o', "output");
  p.option("title", "TEXT", "A title above the charts (default: the metrics file's name)");
  if (auto exit = p.parseOrExit(args)) return *exit;
  if (!p.has("output")) {
    std::fprintf(stderr, "kiln plot: -o FILE.svg is required\n");
    return 2;
  }
  const std::string path = p.positionals()[0];
  auto rows = readMetrics(path);
  if (!rows) {
    std::fprintf(stderr, "%s\n", rows.error().str().c_str());
    return 1;
  }
  std::map<std::string, Series> epochSeries;  // by metric
  std::map<std::string, Series> gradNorms, fractions;  // by layer
  std::optional<double> testAcc, testLoss;
  bool lrVaries = false;
  std::optional<double> firstLr;
  int epochRows = 0, diagRows = 0;
  for (const Row& r : *rows) {
    bool diag = std::any_of(r.begin(), r.end(), [](const auto& kv) { return kv.first.starts_with("diag/"); });
    if (diag && r.count("step")) {
      ++diagRows;
      for (const auto& [k, v] : r) {
        if (!k.starts_with("diag/")) continue;
        std::string rest = k.substr(5);
        size_t slash = rest.rfind('/');
        std::string layer = rest.substr(0, slash), what = rest.substr(slash + 1);
        if (what == "grad_norm") gradNorms[layer].name = layer, gradNorms[layer].points.push_back({r.at("step"), v});
        if (what == "dead" || what == "saturated") {
          Series& s = fractions[layer + " " + what];
          s.name = layer + " (" + what + ")";
          s.points.push_back({r.at("step"), v});
        }
      }
      continue;
    }
    if (r.count("test_accuracy")) testAcc = r.at("test_accuracy");
    if (r.count("test_loss")) testLoss = r.at("test_loss");
    if (!r.count("epoch") || !r.count("loss")) continue;
    ++epochRows;
    double e = r.at("epoch");
    for (const char* k : {"loss", "val_loss", "accuracy", "val_accuracy", "learning_rate"})
      if (r.count(k)) epochSeries[k].name = k, epochSeries[k].points.push_back({e, r.at(k)});
    if (r.count("learning_rate")) {
      if (firstLr && *firstLr != r.at("learning_rate")) lrVaries = true;
      if (!firstLr) firstLr = r.at("learning_rate");
    }
  }
  if (epochRows == 0 && diagRows == 0) {
    std::fprintf(stderr, "%s: no epoch lines (with \"epoch\" and \"loss\") or gradient lines in the file\n", path.c_str());
    return 1;
  }
  auto pick = [&](std::initializer_list<const char*> keys) {
    std::vector<Series> v;
    for (const char* k : keys)
      if (epochSeries.count(k)) v.push_back(epochSeries[k]);
    return v;
  };
  auto withTest = [&](std::vector<Series> v, std::optional<double> test, const char* name) {
    if (test && epochSeries.count("loss")) {
      const auto& pts = epochSeries["loss"].points;
      v.push_back({name, {{pts.front().first, *test}, {pts.back().first, *test}}, true});
    }
    return v;
  };
  struct Chart {
    std::string title, xLabel;
    std::vector<Series> series;
    bool logY;
  };
  std::vector<Chart> charts;
  if (epochRows > 0) {
    charts.push_back({"Loss", "epoch", withTest(pick({"loss", "val_loss"}), testLoss, "test_loss"), false});
    if (epochSeries.count("accuracy"))
      charts.push_back({"Accuracy", "epoch", withTest(pick({"accuracy", "val_accuracy"}), testAcc, "test_accuracy"), false});
    if (lrVaries) charts.push_back({"Learning rate", "epoch", pick({"learning_rate"}), false});
  }
  auto values = [](const std::map<std::string, Series>& m) {
    std::vector<Series> v;
    for (const auto& [k, s] : m) v.push_back(s);
    return v;
  };
  if (!gradNorms.empty()) charts.push_back({"Gradient L2 norm per layer", "step", values(gradNorms), true});
  if (!fractions.empty()) charts.push_back({"Dead / saturated fraction", "step", values(fractions), false});

  const double w = 560, h = 320;
  const int cols = charts.size() > 1 ? 2 : 1;
  const int chartRows = static_cast<int>((charts.size() + cols - 1) / cols);
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w * cols << "' height='" << h * chartRows + 40
      << "' font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n";
  svg << "<text x='10' y='24' font-size='16' font-weight='bold'>" << esc(p.has("title") ? p.get("title") : path)
      << "</text>\n";
  for (size_t i = 0; i < charts.size(); ++i)
    drawChart(svg, w * static_cast<double>(i % cols), 40 + h * static_cast<double>(i / cols), w, h, charts[i].title,
              charts[i].xLabel, charts[i].series, charts[i].logY);
  svg << "</svg>\n";
  if (Status s = writeFileAtomic(p.get("output"), svg.str()); !s) {
    std::fprintf(stderr, "%s\n", s.error().str().c_str());
    return 1;
  }
  std::printf("wrote %s: %zu chart%s from %d epoch lines and %d gradient lines\n", p.get("output").c_str(),
              charts.size(), charts.size() == 1 ? "" : "s", epochRows, diagRows);
  return 0;
}

}  // namespace kiln::driver
