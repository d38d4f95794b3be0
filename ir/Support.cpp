// Formatting of diagnostics.
#include "ir/Support.h"

namespace kiln {

std::string Diagnostic::str() const {
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

}  // namespace kiln
