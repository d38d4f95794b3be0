// Gradient clipping (chapter11.md, "Gradient clipping"): after the loss, before the optimizer.
#include "compiler/training/TrainingParts.h"

namespace kiln::training {

int64_t insertGradientClipping(Builder& b, const frontend::ClippingSpec& clip, std::vector<Value*>& grads) {
  using frontend::ClipMode;
  if (clip.mode == ClipMode::None) return 0;
  const size_t before = b.graph().nodes().size();
  b.setPrefix("clip/");
  auto sumSquares = [&](Value* g) { return b.reduceSum(b.square(g), {}); };
  switch (clip.mode) {
    case ClipMode::None:
      break;
    case ClipMode::Value:
      // g <- min(max(g, -t), t), per component.
      for (Value*& g : grads) {
        if (!g) continue;
        DType dt = g->type().dtype;
        g = b.op(OpKind::Minimum, {b.op(OpKind::Maximum, {g, b.scalar(-clip.threshold, dt)}),
                                   b.scalar(clip.threshold, dt)});
      }
      break;
    case ClipMode::Norm:
      // g <- g * t / max(||g||, t), per tensor (Keras clipnorm).
      for (Value*& g : grads) {
        if (!g) continue;
        Value* t = b.scalar(clip.threshold, g->type().dtype);
        Value* norm = b.op(OpKind::Sqrt, {sumSquares(g)});
        g = b.mul(g, b.div(t, b.op(OpKind::Maximum, {norm, t})));
      }
      break;
    case ClipMode::GlobalNorm: {
      // N = sqrt(sum_i ||g_i||^2); g_i <- g_i * t / max(N, t) (Keras global_clipnorm).
      Value* total = nullptr;
      for (Value* g : grads)
        if (g) total = total ? b.add(total, sumSquares(g)) : sumSquares(g);
      if (!total) break;
      Value* t = b.scalar(clip.threshold, total->type().dtype);
      Value* scale = b.div(t, b.op(OpKind::Maximum, {b.op(OpKind::Sqrt, {total}), t}));
      for (Value*& g : grads)
        if (g) g = b.mul(g, scale);
      break;
    }
  }
  return static_cast<int64_t>(b.graph().nodes().size() - before);
}

}  // namespace kiln::training
