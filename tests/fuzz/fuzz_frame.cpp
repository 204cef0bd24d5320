// libFuzzer harness: the wire codec on arbitrary bytes.  A frame that
// decodes must re-encode op by op and decode again, and the broker's fast
// PUBLISH scan (scan_publish_frame) must accept only what protobuf reads the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "curvebus/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  curvebus::v1::Frame frame;
  // The broker's fast path must agree with protobuf whenever it accepts.
  static std::vector<curvebus::PublishView> views;
  const bool scanned = curvebus::scan_publish_frame(data, size, views);
  if (!curvebus::decode_frame(data, size, frame)) {
    if (scanned) __builtin_trap();
    return 0;
  }
  if (scanned) {
    if (static_cast<int>(views.size()) != frame.ops_size()) __builtin_trap();
    for (int i = 0; i < frame.ops_size(); ++i) {
      const auto& op = frame.ops(i);
      const auto& v = views[static_cast<std::size_t>(i)];
      if (!op.has_publish()) __builtin_trap();
      const auto& p = op.publish();
      if (v.request_id != p.request_id() || v.topic != p.topic() || v.payload != p.payload() ||
          v.ack != p.ack() || v.retain != p.retain() || v.content_type != p.content_type())
        __builtin_trap();
    }
  }
  for (const auto& op : frame.ops()) {
    const char* name = curvebus::op_name(op.body_case());
    if (name == nullptr) __builtin_trap();
    std::string enc = curvebus::encode_op(op);
    curvebus::v1::Frame again;
    (void)curvebus::decode_frame(enc.data(), enc.size(), again);
  }
  return 0;
}
