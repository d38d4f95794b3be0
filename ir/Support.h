// Errors as values: diagnostics that name the file, line, node and what was wrong, and the
// Expected<T>/Status types that carry them (no exceptions cross Kiln's APIs).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kiln {

/// Where something came from in a user's file; line 0 means unknown (binary input, built in code).
struct SourceLoc {
  std::string file;
  int line = 0;
  int column = 0;
};

/// One error, formatted as `file:line:col: error: node 'n' (op): message`.
struct Diagnostic {
  SourceLoc loc;
  std::string node;  // Empty when the error is not about one node.
  std::string op;
  std::string message;
  /// `message` is already a whole diagnostic (text made by str() earlier, e.g. a compiled
  /// function's run-time check message): str() returns it unchanged.
  bool preformatted = false;

  std::string str() const;
};

/// A failure: one or more diagnostics. Cheap to move.
class Error {
 public:
  Error() = default;
  explicit Error(Diagnostic d) { diags_.push_back(std::move(d)); }
  explicit Error(std::vector<Diagnostic> ds) : diags_(std::move(ds)) {}
  /// An error with a message only (no location, no node).
  static Error msg(std::string message) { return Error(Diagnostic{{}, {}, {}, std::move(message)}); }
  /// An error whose text is a diagnostic formatted earlier (Diagnostic::str()), kept as it is.
  static Error formatted(std::string text) { return Error(Diagnostic{{}, {}, {}, std::move(text), true}); }

  const std::vector<Diagnostic>& diagnostics() const { return diags_; }
  /// All diagnostics, one per line.
  std::string str() const;

 private:
  std::vector<Diagnostic> diags_;
};

/// Success, or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  static Status ok() { return Status(); }
  bool isOk() const { return !error_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Error& error() const { return *error_; }
  Error takeError() { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

/// A value of type T, or an Error.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(Error e) : v_(std::move(e)) {}      // NOLINT(google-explicit-constructor)
  Expected(Status s) : v_(s.takeError()) { assert(!std::get<Error>(v_).diagnostics().empty()); }  // NOLINT

  bool isOk() const { return v_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  T& operator*() { return std::get<T>(v_); }
  const T& operator*() const { return std::get<T>(v_); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  const Error& error() const { return std::get<Error>(v_); }
  Error takeError() { return std::move(std::get<Error>(v_)); }
  Status status() { return isOk() ? Status() : Status(takeError()); }

 private:
  std::variant<T, Error> v_;
};

/// Levenshtein distance, for did-you-mean suggestions.
size_t editDistance(std::string_view a, std::string_view b);

/// Returns the error of `expr` (a Status) from the enclosing function, if any.
#define KILN_RETURN_IF_ERROR(expr)                       \
  do {                                                   \
    ::kiln::Status kilnStatus_ = (expr);                 \
    if (!kilnStatus_.isOk()) return kilnStatus_.takeError(); \
  } while (false)

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)
/// `KILN_ASSIGN_OR_RETURN(auto x, f())`: binds the value of an Expected or returns its error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kilnExpected_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.isOk()) return tmp.takeError();         \
  lhs = std::move(*tmp)

}  // namespace kiln
