// Did-you-mean suggestions for the names of a model file.
#include "frontend/Names.h"

#include <algorithm>
#include <vector>

#include "ir/Support.h"

namespace kiln::frontend {
namespace {

// What people coming from Keras or PyTorch write, and the Kiln name they mean. Kiln's losses
// always take logits, so Keras's probability losses map to the from-logits ones.
struct Alias {
  std::string_view from, to;
};
constexpr Alias kAliases[] = {
    {"sparse_categorical_crossentropy", "sparse_softmax_cross_entropy"},
    {"cross_entropy", "sparse_softmax_cross_entropy"},
    {"binary_crossentropy", "binary_cross_entropy_with_logits"},
    {"bce_with_logits", "binary_cross_entropy_with_logits"},
    {"mse", "mean_squared_error"},
    {"acc", "accuracy"},
    {"sparse_categorical_accuracy", "accuracy"},
    {"silu", "swish"},
    {"exponential_decay", "exponential"},
    {"reduce_lr_on_plateau", "performance"},
    {"plateau", "performance"},
    {"1cycle", "one_cycle"},
    {"onecycle", "one_cycle"},
    {"clipvalue", "value"},
    {"clipnorm", "norm"},
    {"global_clipnorm", "global_norm"},
    {"xavier_uniform", "glorot_uniform"},
    {"xavier_normal", "glorot_normal"},
    {"kaiming_uniform", "he_uniform"},
    {"kaiming_normal", "he_normal"},
    {"none", "linear"},
};

}  // namespace

std::string didYouMean(std::string_view name, std::span<const std::string_view> candidates) {
  for (const Alias& a : kAliases)
    if (a.from == name && std::find(candidates.begin(), candidates.end(), a.to) != candidates.end())
      return "; did you mean '" + std::string(a.to) + "'?";
  if (name.empty() || name.size() > 64) return "";
  // Only close matches: one edit for short names, two for longer ones, three past 10 letters.
  size_t bestD = name.size() <= 3 ? 2 : name.size() <= 10 ? 3 : 4;
  std::string_view best;
  for (std::string_view c : candidates) {
    size_t d = editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best.empty() ? "" : "; did you mean '" + std::string(best) + "'?";
}

std::string oneOf(std::span<const std::string_view> names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::string checkName(std::string_view what, std::string_view name,
                      std::span<const std::string_view> names) {
  if (std::find(names.begin(), names.end(), name) != names.end()) return "";
  return "unknown " + std::string(what) + " '" + std::string(name) + "'" + didYouMean(name, names) +
         " (one of " + oneOf(names) + ")";
}

}  // namespace kiln::frontend
