// libFuzzer target: parses and verifies arbitrary bytes as a Kiln graph. It must never crash,
// hang, leak or abort; every bad input has to come back as an Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ir/ProtoIO.h"
#include "ir/Verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the format (even: text, odd: binary); the rest is the file.
  const bool binary = (data[0] & 1) != 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto g = kiln::parseGraph(bytes, binary ? kiln::GraphFormat::Binary : kiln::GraphFormat::Text,
                            binary ? "fuzz.pb" : "fuzz.pbtxt");
  if (!g) {
    (void)g.error().str();
    return 0;
  }
  kiln::Status s = kiln::verifyGraph(**g);
  if (!s) (void)s.error().str();
  return 0;
}
