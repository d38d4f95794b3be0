// Reading and writing tensors as NumPy .npy files for the CLI.
#include "compiler/driver/Commands.h"
#include "ir/ProtoIO.h"
#include "runtime/Npy.h"

namespace kiln::driver {
namespace {
std::string descrOf(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::Bool: return "|b1";
  }
  return "";
}
}  // namespace

Expected<Tensor> readTensorNpy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, readFileBytes(path));
  rt::NpyArray a;
  if (std::string err = rt::decodeNpy(bytes, &a); !err.empty())
    return Error(Diagnostic{{path}, {}, {}, err});
  if (a.descr == "|u1")  // Data sets may hold uint8 images; tensors have no uint8 dtype.
    return Error(Diagnostic{{path}, {}, {}, "uint8 arrays are not supported as tensors (convert to float32)"});
  DType dt = a.descr == "<f4" ? DType::Float32 : a.descr == "<f8" ? DType::Float64
           : a.descr == "<i4" ? DType::Int32 : a.descr == "<i8" ? DType::Int64 : DType::Bool;
  for (int64_t d : a.shape)
    if (d <= 0) return Error(Diagnostic{{path}, {}, {}, "empty arrays are not supported (shape " + shapeStr(a.shape) + ")"});
  Tensor t(dt, a.shape);
  std::copy(a.data.begin(), a.data.end(), static_cast<unsigned char*>(t.raw()));
  if (dt == DType::Bool)  // Any non-zero byte is true; normalize so bool loads stay 0/1.
    for (int64_t i = 0; i < t.size(); ++i) static_cast<unsigned char*>(t.raw())[i] = t.getDouble(i) != 0;
  return t;
}

Status writeTensorNpy(const Tensor& t, const std::string& path) {
  return writeFileAtomic(path, rt::encodeNpy(descrOf(t.dtype()), t.shape(), t.raw(),
                                             static_cast<size_t>(t.byteSize())));
}

}  // namespace kiln::driver
