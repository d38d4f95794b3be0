// A small command-line parser for kiln's subcommands: GNU-style --name VALUE / --name=VALUE
// options, repeatable options, boolean flags, positionals, and generated --help text.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/Support.h"

namespace kiln::driver {

class ArgParser {
 public:
  /// `usage` is the synopsis after "kiln" (e.g. "run MODEL [options]").
  ArgParser(std::string usage, std::string description);

  void flag(const std::string& name, const std::string& help);
  void option(const std::string& name, const std::string& metavar, const std::string& help,
              const std::string& defaultValue = "");
  void repeated(const std::string& name, const std::string& metavar, const std::string& help);
  void positional(const std::string& metavar, const std::string& help);
  /// `-x` as another spelling of the option `--name` (e.g. alias('o', "output")).
  void alias(char shortName, const std::string& name);
  /// The program named in usage and messages (default "kiln"; a built training program gives its
  /// own name and an empty `usage` command word).
  void setProgram(std::string name) { program_ = std::move(name); }
  /// A positional that may be left out (after the required ones).
  void optionalPositional(const std::string& metavar, const std::string& help);

  /// Parses argv (without the program and command names). `--help`/`-h` sets helpRequested().
  Status parse(const std::vector<std::string>& args);

  /// parse() as every command does it: on an error prints it (exit code 2), on --help prints the
  /// help (exit code 0); returns that exit code, or nullopt to go on.
  std::optional<int> parseOrExit(const std::vector<std::string>& args);

  bool helpRequested() const { return help_; }
  std::string helpText() const;

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  /// The value, else the default: a reference into the parser, valid as long as it is (so
  /// `strtod(p.get("x").c_str(), &end)` may keep `end`).
  const std::string& get(const std::string& name) const;
  std::vector<std::string> getAll(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionalValues_; }

 private:
  struct Spec {
    std::string name, metavar, help, defaultValue;
    bool takesValue = false, isRepeated = false;
  };
  const Spec* find(const std::string& name) const;
  std::string program_ = "kiln";
  std::string usage_, description_;
  std::vector<Spec> specs_;
  std::map<char, std::string> aliases_;
  std::vector<std::pair<std::string, std::string>> positionalSpecs_;
  size_t requiredPositionals_ = 0;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionalValues_;
  bool help_ = false;
};

}  // namespace kiln::driver
