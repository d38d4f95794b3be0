// `kiln ops`: prints the op table (every op, its operands, results and attributes with their
// defaults and allowed values), straight from ir/Ops.def, so the reference cannot go stale.
#include <cmath>
#include <cstdio>

#include "compiler/driver/Args.h"
#include "compiler/driver/Commands.h"
#include "ir/OpTable.h"

namespace kiln::driver {
namespace {

std::string num(double d) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", d);
  return buf;
}

std::string describeAttr(const AttrSpec& a) {
  std::string out = std::string(a.name) + ": " + std::string(attrTypeName(a.type));
  if (a.required) {
    out += ", required";
  } else {
    switch (a.type) {
      case AttrType::Float: case AttrType::Int: out += " = " + num(a.defaultNumber); break;
      case AttrType::Bool: out += a.defaultNumber != 0 ? " = true" : " = false"; break;
      case AttrType::String: out += " = \"" + std::string(a.defaultString) + "\""; break;
      case AttrType::DType:
        out += " = " + std::string(dtypeName(static_cast<DType>(static_cast<int>(a.defaultNumber))));
        break;
      case AttrType::Ints: case AttrType::Floats: out += " = []"; break;
    }
  }
  if ((a.type == AttrType::Float || a.type == AttrType::Int) && (!std::isinf(a.lo) || !std::isinf(a.hi))) {
    bool openLo = a.lo > 0 && a.lo < 1e-300, openHi = a.hi < 1 && a.hi > 0.999999;
    out += std::string(", in ") + (openLo ? "(0" : "[" + num(a.lo)) + ", " + (openHi ? "1)" : num(a.hi) + "]");
  }
  if (a.type == AttrType::String && !a.choices.empty()) {
    std::string c(a.choices);
    if (c.starts_with('|')) c = "\"\"" + c;
    out += ", one of " + c;
  }
  return out;
}

}  // namespace

int runOps(const std::vector<std::string>& args) {
  ArgParser p("ops [OP]", "Lists the ops of the Kiln IR with their operands, results and attributes.\n"
                          "Semantics follow chapter 11 of Geron's Hands-On Machine Learning.");
  p.optionalPositional("OP", "Show only this op");
  p.flag("names", "Print only the op names, one per line");
  if (auto exit = p.parseOrExit(args)) return *exit;
  std::string only = p.positionals().empty() ? "" : p.positionals()[0];
  if (!only.empty() && !lookupOp(only)) {
    std::fprintf(stderr, "kiln ops: unknown op '%s' (run 'kiln ops --names' for the list)\n", only.c_str());
    return 1;
  }
  for (const OpDef& d : allOpDefs()) {
    if (!only.empty() && d.name != only) continue;
    if (p.has("names")) {
      std::printf("%.*s\n", static_cast<int>(d.name.size()), d.name.data());
      continue;
    }
    std::string operands, results;
    for (const OperandSpec& o : d.operands)
      operands += (operands.empty() ? "" : ", ") + std::string(o.name) + (o.optional ? "?" : "") +
                  (o.variadic ? "..." : "");
    for (std::string_view r : d.results) results += (results.empty() ? "" : ", ") + std::string(r);
    std::printf("%.*s(%s) -> %s   [%.*s]\n", static_cast<int>(d.name.size()), d.name.data(),
                operands.c_str(), results.c_str(), static_cast<int>(fusionClassName(d.fusion).size()),
                fusionClassName(d.fusion).data());
    for (const AttrSpec& a : d.attrs) std::printf("    %s\n", describeAttr(a).c_str());
  }
  return 0;
}

}  // namespace kiln::driver
