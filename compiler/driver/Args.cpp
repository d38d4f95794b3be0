// A small command-line parser for kiln's subcommands.
#include "compiler/driver/Args.h"

#include <cstdio>

namespace kiln::driver {

ArgParser::ArgParser(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

void ArgParser::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, "", false, false});
}
void ArgParser::option(const std::string& name, const std::string& metavar, const std::string& help,
                       const std::string& defaultValue) {
  specs_.push_back({name, metavar, help, defaultValue, true, false});
}
void ArgParser::repeated(const std::string& name, const std::string& metavar, const std::string& help) {
  specs_.push_back({name, metavar, help, "", true, true});
}
void ArgParser::positional(const std::string& metavar, const std::string& help) {
  positionalSpecs_.push_back({metavar, help});
  requiredPositionals_ = positionalSpecs_.size();
}
void ArgParser::alias(char shortName, const std::string& name) { aliases_[shortName] = name; }
void ArgParser::optionalPositional(const std::string& metavar, const std::string& help) {
  positionalSpecs_.push_back({metavar, help + " (optional)"});
}

const ArgParser::Spec* ArgParser::find(const std::string& name) const {
  for (const Spec& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

Status ArgParser::parse(const std::vector<std::string>& args) {
  std::string word = usage_.substr(0, usage_.find(' '));
  // A program without subcommands has a usage that starts with its options.
  std::string cmd = word.starts_with('[') ? program_ : program_ + " " + word;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.size() == 2 && a[0] == '-' && aliases_.count(a[1])) a = "--" + aliases_.at(a[1]);
    if (a == "--help" || a == "-h") {
      help_ = true;
      return Status::ok();
    }
    if (a.size() > 2 && a.starts_with("--")) {
      std::string name = a.substr(2), value;
      bool inlineValue = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inlineValue = true;
      }
      const Spec* s = find(name);
      if (!s) return Error::msg(cmd + ": unknown option '--" + name + "' (see " + cmd + " --help)");
      if (!s->takesValue) {
        if (inlineValue) return Error::msg(cmd + ": option '--" + name + "' takes no value");
        values_[name].push_back("1");
        continue;
      }
      if (!inlineValue) {
        if (i + 1 >= args.size())
          return Error::msg(cmd + ": option '--" + name + "' needs a value (" + s->metavar + ")");
        value = args[++i];
      }
      if (!s->isRepeated && values_.count(name))
        return Error::msg(cmd + ": option '--" + name + "' is given twice");
      values_[name].push_back(value);
      continue;
    }
    if (a.size() > 1 && a[0] == '-' && a != "-")
      return Error::msg(cmd + ": unknown option '" + a + "' (see " + cmd + " --help)");
    positionalValues_.push_back(a);
  }
  if (positionalValues_.size() < requiredPositionals_)
    return Error::msg(cmd + ": missing " + positionalSpecs_[positionalValues_.size()].first +
                      " (usage: " + program_ + " " + usage_ + ")");
  if (positionalValues_.size() > positionalSpecs_.size())
    return Error::msg(cmd + ": unexpected argument '" + positionalValues_[positionalSpecs_.size()] +
                      "' (usage: " + program_ + " " + usage_ + ")");
  return Status::ok();
}

const std::string& ArgParser::get(const std::string& name) const {
  static const std::string kEmpty;
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  const Spec* s = find(name);
  return s ? s->defaultValue : kEmpty;
}

std::vector<std::string> ArgParser::getAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string ArgParser::helpText() const {
  std::string out = "Usage: " + program_ + " " + usage_ + "\n\n" + description_ + "\n";
  auto row = [&out](std::string left, const std::string& help) {
    if (left.size() < 26) left.resize(26, ' ');
    else left += "\n" + std::string(28, ' ');
    out += "  " + left + help + "\n";
  };
  if (!positionalSpecs_.empty()) {
    out += "\nArguments:\n";
    for (const auto& [m, h] : positionalSpecs_) row(m, h);
  }
  out += "\nOptions:\n";
  for (const Spec& s : specs_) {
    std::string left = "--" + s.name + (s.takesValue ? " " + s.metavar : "");
    for (const auto& [c, name] : aliases_)
      if (name == s.name) left = "-" + std::string(1, c) + ", " + left;
    std::string help = s.help;
    if (s.isRepeated) help += " (repeatable)";
    if (!s.defaultValue.empty()) help += " [default: " + s.defaultValue + "]";
    row(left, help);
  }
  row("-h, --help", "Show this help and exit");
  return out;
}

std::optional<int> ArgParser::parseOrExit(const std::vector<std::string>& args) {
  if (Status s = parse(args); !s) {
    std::fprintf(stderr, "%s\n", s.error().str().c_str());
    return 2;
  }
  if (helpRequested()) {
    std::fputs(helpText().c_str(), stdout);
    return 0;
  }
  return std::nullopt;
}

}  // namespace kiln::driver
