// Philox4x32-10 in LLVM IR: the compiled dropout, alpha dropout and rrelu masks are the
// interpreter's bit for bit (runtime/Random.h), because each draw is a pure function of
// (seed, stream, element index) and the same integer operations compute it here.
#include <string>

#include "compiler/codegen/Emitter.h"
#include "runtime/Random.h"

namespace kiln::codegen {

using llvm::Value;

Value* FunctionEmitter::uniform(const Node& n, Value* i) {
  assert(seed_ && step_ && "random numbers need the entry point's seed and step");
  llvm::IRBuilder<>& b = b_;
  llvm::Type* i32 = b.getInt32Ty();
  llvm::Type* i64t = b.getInt64Ty();
  // The stream: mix64(hashName(name) + step). The name is known now, so its hash is a constant;
  // a gradient's noise_from names the forward node whose mask it reuses.
  auto it = n.attrs().find("noise_from");
  const std::string* from = it == n.attrs().end() ? nullptr : std::get_if<std::string>(&it->second);
  const std::string& name = from && !from->empty() ? *from : n.name();
  Value* x = b.CreateAdd(b.getInt64(rt::hashName(name)), step_);
  // SplitMix64's finalizer (rt::mix64); it does not depend on i, so LICM hoists it out of loops.
  x = b.CreateAdd(x, b.getInt64(0x9E3779B97F4A7C15ull));
  x = b.CreateMul(b.CreateXor(x, b.CreateLShr(x, 30)), b.getInt64(0xBF58476D1CE4E5B9ull));
  x = b.CreateMul(b.CreateXor(x, b.CreateLShr(x, 27)), b.getInt64(0x94D049BB133111EBull));
  Value* stream = b.CreateXor(x, b.CreateLShr(x, 31));

  auto lo = [&](Value* v) { return b.CreateTrunc(v, i32); };
  auto hi = [&](Value* v) { return b.CreateTrunc(b.CreateLShr(v, 32), i32); };
  // Counter (i, stream), key seed, as RandomStream::bits lays them out.
  Value* c0 = lo(i);
  Value* c1 = hi(i);
  Value* c2 = lo(stream);
  Value* c3 = hi(stream);
  Value* k0 = lo(seed_);
  Value* k1 = hi(seed_);
  for (int r = 0; r < 10; ++r) {
    // 32 x 32 -> 64-bit products; their high halves feed the next round's words.
    Value* p0 = b.CreateMul(b.CreateZExt(c0, i64t), b.getInt64(0xD2511F53u));
    Value* p1 = b.CreateMul(b.CreateZExt(c2, i64t), b.getInt64(0xCD9E8D57u));
    Value* n0 = b.CreateXor(b.CreateXor(hi(p1), c1), k0);
    Value* n2 = b.CreateXor(b.CreateXor(hi(p0), c3), k1);
    c0 = n0;
    c1 = lo(p1);
    c2 = n2;
    c3 = lo(p0);
    k0 = b.CreateAdd(k0, b.getInt32(0x9E3779B9u));
    k1 = b.CreateAdd(k1, b.getInt32(0xBB67AE85u));
  }
  // bits = out0:out1; uniform = (bits >> 11) * 2^-53, exact in double (53 bits).
  Value* bits = b.CreateOr(b.CreateShl(b.CreateZExt(c0, i64t), 32), b.CreateZExt(c1, i64t));
  Value* mant = b.CreateUIToFP(b.CreateLShr(bits, 11), b.getDoubleTy());
  return b.CreateFMul(mant, llvm::ConstantFP::get(b.getDoubleTy(), 0x1.0p-53));
}

}  // namespace kiln::codegen
