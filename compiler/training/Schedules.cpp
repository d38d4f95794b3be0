// Learning-rate schedules in the graph (chapter11.md, "Learning-rate schedules"), so a compiled
// training step needs no host code to know its rate. frontend/TrainingMath.cpp computes the
// same values on the host; tests compare the two.
#include "compiler/training/TrainingParts.h"

namespace kiln::training {
namespace {

using frontend::ScheduleKind;

// a + (b - a) * f, with a and b host constants.
Value* lerp(Builder& b, double a, double bEnd, Value* f, DType dt) {
  return b.add(b.scalar(a, dt), b.mul(b.scalar(bEnd - a, dt), f));
}

Value* lessEqual(Builder& b, Value* x, double v, DType dt) {
  return b.op(OpKind::LessEqual, {x, b.scalar(v, dt)});
}

Value* select(Builder& b, Value* c, Value* x, Value* y) { return b.op(OpKind::Select, {c, x, y}); }

}  // namespace

ScheduleValues buildSchedule(Builder& b, const frontend::TrainingSpec& spec, Value* t,
                             int64_t totalSteps, Value* performanceRate) {
  const frontend::ScheduleSpec& s = spec.schedule;
  const double eta0 = spec.optimizer.learningRate;
  const DType dt = t->type().dtype;
  ScheduleValues out;
  switch (s.kind) {
    case ScheduleKind::Constant:
      out.learningRate = b.scalar(eta0, dt);
      break;
    case ScheduleKind::Performance:
      out.learningRate = performanceRate;
      break;
    case ScheduleKind::Power: {
      // eta0 / (1 + t/s)^c
      Value* base = b.add(b.scalar(1, dt), b.div(t, b.scalar(double(s.decaySteps), dt)));
      out.learningRate = b.div(b.scalar(eta0, dt), b.op(OpKind::Pow, {base, b.scalar(s.power, dt)}));
      break;
    }
    case ScheduleKind::Exponential: {
      // eta0 * rate^(t/s)
      Value* e = b.div(t, b.scalar(double(s.decaySteps), dt));
      out.learningRate = b.mul(b.scalar(eta0, dt), b.op(OpKind::Pow, {b.scalar(s.decayRate, dt), e}));
      break;
    }
    case ScheduleKind::PiecewiseConstant: {
      // values[i] where i counts the boundaries strictly below t (Keras: values[0] while
      // t <= boundaries[0]); boundaries increase, so each select may overwrite the last.
      Value* lr = b.scalar(s.values[0], dt);
      for (size_t i = 0; i < s.boundaries.size(); ++i)
        lr = select(b, b.op(OpKind::Greater, {t, b.scalar(double(s.boundaries[i]), dt)}),
                    b.scalar(s.values[i + 1], dt), lr);
      out.learningRate = lr;
      break;
    }
    case ScheduleKind::OneCycle: {
      // Phases over T steps: [0, 0.45T] eta0 -> eta_max, (0.45T, 0.9T] eta_max -> eta0, then
      // eta0 -> eta0/1000 by T (held after it); momentum max -> min -> max, then max.
      const double total = double(s.totalSteps ? s.totalSteps : std::max<int64_t>(totalSteps, 1));
      const double p1 = 0.45 * total, p2 = 0.9 * total;
      Value* f1 = b.div(t, b.scalar(p1, dt));
      Value* f2 = b.div(b.sub(t, b.scalar(p1, dt)), b.scalar(p2 - p1, dt));
      Value* f3 = b.op(OpKind::Minimum, {b.scalar(1, dt), b.div(b.sub(t, b.scalar(p2, dt)), b.scalar(total - p2, dt))});
      Value* in1 = lessEqual(b, t, p1, dt);
      Value* in2 = lessEqual(b, t, p2, dt);
      out.learningRate = select(b, in1, lerp(b, eta0, s.maxLearningRate, f1, dt),
                                select(b, in2, lerp(b, s.maxLearningRate, eta0, f2, dt),
                                       lerp(b, eta0, eta0 / 1000, f3, dt)));
      if (spec.optimizer.hasMomentum())
        out.momentum = select(b, in1, lerp(b, s.maxMomentum, s.minMomentum, f1, dt),
                              select(b, in2, lerp(b, s.minMomentum, s.maxMomentum, f2, dt),
                                     b.scalar(s.maxMomentum, dt)));
      break;
    }
  }
  return out;
}

}  // namespace kiln::training
