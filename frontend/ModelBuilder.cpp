// ModelBuilder: Model messages written in C++.
#include "frontend/ModelBuilder.h"

namespace kiln::frontend {

Init Init::named(std::string kind) {
  Init i;
  i.p_.set_kind(std::move(kind));
  return i;
}

Init Init::varianceScaling(double scale, std::string mode, std::string distribution) {
  Init i = named("variance_scaling");
  i.p_.set_scale(scale);
  i.p_.set_mode(std::move(mode));
  i.p_.set_distribution(std::move(distribution));
  return i;
}

Init Init::constant(double value) {
  Init i = named("constant");
  i.p_.set_value(value);
  return i;
}

Init Init::values(std::vector<double> values) {
  Init i = named("values");
  for (double v : values) i.p_.add_values(v);
  return i;
}

// ---- Training ----

TrainingBuilder& TrainingBuilder::loss(Loss loss) {
  t_->set_loss(std::string(lossName(static_cast<LossKind>(loss))));
  return *this;
}
TrainingBuilder& TrainingBuilder::metric(std::string name) {
  t_->add_metric(std::move(name));
  return *this;
}
TrainingBuilder& TrainingBuilder::optimizer(std::string kind) {
  t_->mutable_optimizer()->set_kind(std::move(kind));
  return *this;
}

namespace {
// Sets the optimizer kind and its learning rate if given.
void setOptimizer(proto::Training* t, const char* kind, std::optional<double> lr) {
  t->mutable_optimizer()->set_kind(kind);
  if (lr) t->mutable_optimizer()->set_learning_rate(*lr);
}
}  // namespace

TrainingBuilder& TrainingBuilder::sgd(std::optional<double> lr) {
  setOptimizer(t_, "sgd", lr);
  return *this;
}
TrainingBuilder& TrainingBuilder::momentum(std::optional<double> lr, std::optional<double> beta) {
  setOptimizer(t_, "momentum", lr);
  if (beta) t_->mutable_optimizer()->set_momentum(*beta);
  return *this;
}
TrainingBuilder& TrainingBuilder::nesterov(std::optional<double> lr, std::optional<double> beta) {
  setOptimizer(t_, "nesterov", lr);
  if (beta) t_->mutable_optimizer()->set_momentum(*beta);
  return *this;
}
TrainingBuilder& TrainingBuilder::adagrad(std::optional<double> lr) {
  setOptimizer(t_, "adagrad", lr);
  return *this;
}
TrainingBuilder& TrainingBuilder::rmsprop(std::optional<double> lr, std::optional<double> rho) {
  setOptimizer(t_, "rmsprop", lr);
  if (rho) t_->mutable_optimizer()->set_rho(*rho);
  return *this;
}
TrainingBuilder& TrainingBuilder::adam(std::optional<double> lr) {
  setOptimizer(t_, "adam", lr);
  return *this;
}
TrainingBuilder& TrainingBuilder::adamax(std::optional<double> lr) {
  setOptimizer(t_, "adamax", lr);
  return *this;
}
TrainingBuilder& TrainingBuilder::nadam(std::optional<double> lr) {
  setOptimizer(t_, "nadam", lr);
  return *this;
}
TrainingBuilder& TrainingBuilder::adamw(std::optional<double> lr, std::optional<double> wd) {
  setOptimizer(t_, "adamw", lr);
  if (wd) t_->mutable_optimizer()->set_weight_decay(*wd);
  return *this;
}
TrainingBuilder& TrainingBuilder::learningRate(double v) {
  t_->mutable_optimizer()->set_learning_rate(v);
  return *this;
}
TrainingBuilder& TrainingBuilder::beta1(double v) {
  t_->mutable_optimizer()->set_beta_1(v);
  return *this;
}
TrainingBuilder& TrainingBuilder::beta2(double v) {
  t_->mutable_optimizer()->set_beta_2(v);
  return *this;
}
TrainingBuilder& TrainingBuilder::epsilon(double v) {
  t_->mutable_optimizer()->set_epsilon(v);
  return *this;
}
TrainingBuilder& TrainingBuilder::momentumDecay(double v) {
  t_->mutable_optimizer()->set_momentum_decay(v);
  return *this;
}

TrainingBuilder& TrainingBuilder::powerSchedule(int64_t decaySteps, std::optional<double> power) {
  proto::Schedule* s = t_->mutable_schedule();
  s->set_kind("power");
  s->set_decay_steps(decaySteps);
  if (power) s->set_power(*power);
  return *this;
}
TrainingBuilder& TrainingBuilder::exponentialSchedule(int64_t decaySteps) {
  proto::Schedule* s = t_->mutable_schedule();
  s->set_kind("exponential");
  s->set_decay_steps(decaySteps);
  return *this;
}
TrainingBuilder& TrainingBuilder::piecewiseConstant(std::vector<int64_t> boundaries,
                                                    std::vector<double> values) {
  proto::Schedule* s = t_->mutable_schedule();
  s->set_kind("piecewise_constant");
  for (int64_t b : boundaries) s->add_boundaries(b);
  for (double v : values) s->add_values(v);
  return *this;
}
TrainingBuilder& TrainingBuilder::performanceSchedule(std::optional<double> factor,
                                                      std::optional<int64_t> patience) {
  proto::Schedule* s = t_->mutable_schedule();
  s->set_kind("performance");
  if (factor) s->set_factor(*factor);
  if (patience) s->set_patience(*patience);
  return *this;
}
TrainingBuilder& TrainingBuilder::oneCycle(double maxLearningRate,
                                           std::optional<int64_t> totalSteps) {
  proto::Schedule* s = t_->mutable_schedule();
  s->set_kind("one_cycle");
  s->set_max_learning_rate(maxLearningRate);
  if (totalSteps) s->set_total_steps(*totalSteps);
  return *this;
}

TrainingBuilder& TrainingBuilder::clipByValue(double threshold) {
  t_->mutable_clipping()->set_mode("value");
  t_->mutable_clipping()->set_threshold(threshold);
  return *this;
}
TrainingBuilder& TrainingBuilder::clipByNorm(double threshold) {
  t_->mutable_clipping()->set_mode("norm");
  t_->mutable_clipping()->set_threshold(threshold);
  return *this;
}
TrainingBuilder& TrainingBuilder::clipByGlobalNorm(double threshold) {
  t_->mutable_clipping()->set_mode("global_norm");
  t_->mutable_clipping()->set_threshold(threshold);
  return *this;
}
TrainingBuilder& TrainingBuilder::epochs(int64_t n) {
  t_->set_epochs(n);
  return *this;
}
TrainingBuilder& TrainingBuilder::batchSize(int64_t n) {
  t_->set_batch_size(n);
  return *this;
}
TrainingBuilder& TrainingBuilder::seed(uint64_t seed) {
  t_->set_seed(seed);
  return *this;
}
TrainingBuilder& TrainingBuilder::inputsAsTargets() {
  t_->set_targets("inputs");
  return *this;
}

// ---- Model ----

ModelBuilder::ModelBuilder(std::string name) { m_.set_name(std::move(name)); }

ModelBuilder& ModelBuilder::input(Shape shape, std::string name, DType dtype) {
  proto::ModelInput* in = m_.mutable_input();
  if (!name.empty()) in->set_name(std::move(name));
  if (dtype != DType::Float32) in->set_dtype(static_cast<proto::DType>(dtype));
  in->mutable_shape()->clear_dim();
  for (int64_t d : shape) in->mutable_shape()->add_dim(d);
  return *this;
}

ModelBuilder& ModelBuilder::dense(int64_t units, const Init& kernelInit, std::string activation) {
  dense(units, std::move(activation));
  *m_.mutable_layer(m_.layer_size() - 1)->mutable_dense()->mutable_kernel_initializer() =
      kernelInit.proto();
  return *this;
}

ModelBuilder& ModelBuilder::dense(int64_t units, std::string activation) {
  proto::DenseLayer* d = m_.add_layer()->mutable_dense();
  d->set_units(units);
  if (!activation.empty()) d->set_activation(std::move(activation));
  return *this;
}

ModelBuilder& ModelBuilder::batchNorm(std::optional<double> momentum,
                                      std::optional<double> epsilon) {
  proto::BatchNormLayer* b = m_.add_layer()->mutable_batch_norm();
  if (momentum) b->set_momentum(*momentum);
  if (epsilon) b->set_epsilon(*epsilon);
  return *this;
}

ModelBuilder& ModelBuilder::dropout(double rate) {
  m_.add_layer()->mutable_dropout()->set_rate(rate);
  return *this;
}
ModelBuilder& ModelBuilder::alphaDropout(double rate) {
  m_.add_layer()->mutable_alpha_dropout()->set_rate(rate);
  return *this;
}
ModelBuilder& ModelBuilder::flatten() {
  m_.add_layer()->mutable_flatten();
  return *this;
}
ModelBuilder& ModelBuilder::reshape(Shape target) {
  proto::Shape* s = m_.add_layer()->mutable_reshape()->mutable_target_shape();
  for (int64_t d : target) s->add_dim(d);
  return *this;
}

ModelBuilder& ModelBuilder::activation(std::string kind) {
  m_.add_layer()->mutable_activation()->set_kind(std::move(kind));
  return *this;
}
ModelBuilder& ModelBuilder::leakyRelu(std::optional<double> alpha) {
  activation("leaky_relu");
  if (alpha) m_.mutable_layer(m_.layer_size() - 1)->mutable_activation()->set_alpha(*alpha);
  return *this;
}
ModelBuilder& ModelBuilder::rrelu(std::optional<double> lower, std::optional<double> upper) {
  activation("rrelu");
  proto::ActivationLayer* a = m_.mutable_layer(m_.layer_size() - 1)->mutable_activation();
  if (lower) a->set_lower(*lower);
  if (upper) a->set_upper(*upper);
  return *this;
}
ModelBuilder& ModelBuilder::prelu(std::optional<double> alpha) {
  activation("prelu");
  if (alpha) m_.mutable_layer(m_.layer_size() - 1)->mutable_activation()->set_alpha(*alpha);
  return *this;
}
ModelBuilder& ModelBuilder::elu(std::optional<double> alpha) {
  activation("elu");
  if (alpha) m_.mutable_layer(m_.layer_size() - 1)->mutable_activation()->set_alpha(*alpha);
  return *this;
}
ModelBuilder& ModelBuilder::gelu(std::string approximate) {
  activation("gelu");
  if (!approximate.empty())
    m_.mutable_layer(m_.layer_size() - 1)
        ->mutable_activation()
        ->set_approximate(std::move(approximate));
  return *this;
}
ModelBuilder& ModelBuilder::swish(std::optional<double> beta, bool learnable) {
  activation("swish");
  proto::ActivationLayer* a = m_.mutable_layer(m_.layer_size() - 1)->mutable_activation();
  if (beta) a->set_beta(*beta);
  if (learnable) a->set_learnable_beta(true);
  return *this;
}

namespace {
// The layer's kind as its model-file field name ("dense", "batch_norm", ...).
std::string kindName(const proto::Layer& l) {
  const auto* oneof = proto::Layer::descriptor()->FindOneofByName("kind");
  const auto* field = l.GetReflection()->GetOneofFieldDescriptor(l, oneof);
  return field ? field->name() : "kindless";
}
}  // namespace

proto::Layer* ModelBuilder::last(proto::Layer::KindCase want, const char* what) {
  if (m_.layer_size() == 0) {
    if (misuse_.empty())
      misuse_ = std::string("ModelBuilder: ") + what + " needs a layer before it";
    return nullptr;
  }
  proto::Layer* l = m_.mutable_layer(m_.layer_size() - 1);
  if (want != proto::Layer::KIND_NOT_SET && l->kind_case() != want) {
    if (misuse_.empty())
      misuse_ = std::string("ModelBuilder: ") + what + " does not apply to layer " +
                std::to_string(m_.layer_size()) + " (a " + kindName(*l) + " layer)";
    return nullptr;
  }
  return l;
}

proto::DenseLayer* ModelBuilder::lastDense(const char* what) {
  proto::Layer* l = last(proto::Layer::kDense, what);
  return l ? l->mutable_dense() : nullptr;
}

ModelBuilder& ModelBuilder::named(std::string name) {
  if (proto::Layer* l = last(proto::Layer::KIND_NOT_SET, "named()")) l->set_name(std::move(name));
  return *this;
}
ModelBuilder& ModelBuilder::kernelInit(const Init& init) {
  if (proto::DenseLayer* d = lastDense("kernelInit()"))
    *d->mutable_kernel_initializer() = init.proto();
  return *this;
}
ModelBuilder& ModelBuilder::biasInit(const Init& init) {
  if (proto::DenseLayer* d = lastDense("biasInit()")) *d->mutable_bias_initializer() = init.proto();
  return *this;
}
ModelBuilder& ModelBuilder::useBias(bool use) {
  if (proto::DenseLayer* d = lastDense("useBias()")) d->set_use_bias(use);
  return *this;
}
ModelBuilder& ModelBuilder::l1(double lambda) {
  if (proto::DenseLayer* d = lastDense("l1()")) d->mutable_kernel_regularizer()->set_l1(lambda);
  return *this;
}
ModelBuilder& ModelBuilder::l2(double lambda) {
  if (proto::DenseLayer* d = lastDense("l2()")) d->mutable_kernel_regularizer()->set_l2(lambda);
  return *this;
}
ModelBuilder& ModelBuilder::maxNorm(double r) {
  if (proto::DenseLayer* d = lastDense("maxNorm()")) d->set_max_norm(r);
  return *this;
}
ModelBuilder& ModelBuilder::axis(int64_t axis) {
  proto::Layer* l = last(proto::Layer::KIND_NOT_SET, "axis()");
  if (!l) return *this;
  if (l->has_batch_norm())
    l->mutable_batch_norm()->set_axis(axis);
  else if (l->has_activation())
    l->mutable_activation()->set_axis(axis);  // softmax's
  else
    last(proto::Layer::kBatchNorm, "axis()");  // Records the misuse.
  return *this;
}
ModelBuilder& ModelBuilder::center(bool c) {
  if (proto::Layer* l = last(proto::Layer::kBatchNorm, "center()"))
    l->mutable_batch_norm()->set_center(c);
  return *this;
}
ModelBuilder& ModelBuilder::scale(bool s) {
  if (proto::Layer* l = last(proto::Layer::kBatchNorm, "scale()"))
    l->mutable_batch_norm()->set_scale(s);
  return *this;
}

TrainingBuilder& ModelBuilder::training() {
  if (!training_) training_.reset(new TrainingBuilder(m_.mutable_training()));
  return *training_;
}

Expected<proto::Model> ModelBuilder::model() const {
  if (!misuse_.empty()) return Error::msg(misuse_);
  return m_;
}

Expected<ExpandedModel> ModelBuilder::expand(Expansion mode) const {
  KILN_ASSIGN_OR_RETURN(proto::Model m, model());
  return expandModel(ParsedModel{std::move(m), ModelSource("<ModelBuilder " + m_.name() + ">")},
                     mode);
}

}  // namespace kiln::frontend
