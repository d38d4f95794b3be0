// Formatting of diagnostics.
#include "ir/Support.h"

#include <algorithm>

namespace kiln {

std::string Diagnostic::str() const {
  if (preformatted) return message;
  std::string out;
  if (!loc.file.empty()) {
    out += loc.file;
    if (loc.line > 0) {
      out += ":" + std::to_string(loc.line);
      if (loc.column > 0) out += ":" + std::to_string(loc.column);
    }
    out += ": ";
  }
  out += "error: ";
  if (!node.empty()) {
    out += "node '" + node + "'";
    if (!op.empty()) out += " (" + op + ")";
    out += ": ";
  }
  out += message;
  return out;
}

std::string Error::str() const {
  std::string out;
  for (const Diagnostic& d : diags_) {
    if (!out.empty()) out += "\n";
    out += d.str();
  }
  return out;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace kiln
