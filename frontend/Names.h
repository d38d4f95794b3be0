// The names a model file may use (activations, initializers, optimizers, ...) and "did you
// mean" suggestions for the ones it gets wrong.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace kiln::frontend {

/// "; did you mean 'x'?" for the candidate closest to `name` when it is close (a typo), or
/// for a known alias (e.g. Keras's "sparse_categorical_crossentropy"); else "".
std::string didYouMean(std::string_view name, std::span<const std::string_view> candidates);

/// "a, b or c".
std::string oneOf(std::span<const std::string_view> names);

/// `name` if it is one of `names`, else an error text naming the choices and a suggestion:
/// "unknown activation 'elux'; did you mean 'elu'? (one of ...)". Empty when `name` is known.
std::string checkName(std::string_view what, std::string_view name,
                      std::span<const std::string_view> names);

inline constexpr std::string_view kActivations[] = {
    "linear", "sigmoid", "tanh",  "relu", "leaky_relu", "rrelu",   "prelu",      "elu",
    "selu",   "gelu",    "swish", "mish", "softplus",   "softmax", "log_softmax"};
inline constexpr std::string_view kInitializers[] = {
    "glorot_uniform",   "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "variance_scaling", "zeros",         "ones",       "constant",  "values"};
inline constexpr std::string_view kInitModes[] = {"fan_in", "fan_out", "fan_avg"};
inline constexpr std::string_view kInitDistributions[] = {"truncated_normal", "untruncated_normal",
                                                          "uniform"};
inline constexpr std::string_view kGeluApproximations[] = {"none", "tanh", "sigmoid"};
inline constexpr std::string_view kOptimizers[] = {
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam", "adamw"};
inline constexpr std::string_view kSchedules[] = {
    "constant", "power", "exponential", "piecewise_constant", "performance", "one_cycle"};
inline constexpr std::string_view kClippingModes[] = {"none", "value", "norm", "global_norm"};
inline constexpr std::string_view kLosses[] = {
    "sparse_softmax_cross_entropy", "binary_cross_entropy_with_logits", "mean_squared_error"};
inline constexpr std::string_view kMetrics[] = {"accuracy"};
inline constexpr std::string_view kTargets[] = {"labels", "inputs"};

}  // namespace kiln::frontend
