#include "curvebus/codec.hpp"

#include <chrono>

namespace curvebus {

void append_op(const v1::Op& op, std::string& out) {
  // Frame field 1 (ops), wire type 2 (length-delimited): tag byte 0x0A.
  const std::size_t len = op.ByteSizeLong();
  out.push_back('\x0A');
  std::size_t v = len;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  const std::size_t at = out.size();
  out.resize(at + len);
  op.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(&out[at]));
}

std::string encode_op(const v1::Op& op) {
  std::string out;
  out.reserve(op.ByteSizeLong() + 6);
  append_op(op, out);
  return out;
}

bool decode_frame(const void* data, std::size_t size, v1::Frame& out) {
  if (size > static_cast<std::size_t>(INT32_MAX)) return false;
  if (!out.ParseFromArray(data, static_cast<int>(size))) return false;
  return out.ops_size() > 0;
}

const char* op_name(v1::Op::BodyCase body) {
  switch (body) {
    case v1::Op::kRegister: return "register";
    case v1::Op::kRegistered: return "registered";
    case v1::Op::kSubscribe: return "subscribe";
    case v1::Op::kSuback: return "suback";
    case v1::Op::kUnsubscribe: return "unsubscribe";
    case v1::Op::kUnsuback: return "unsuback";
    case v1::Op::kPublish: return "publish";
    case v1::Op::kPuback: return "puback";
    case v1::Op::kDeliver: return "deliver";
    case v1::Op::kPull: return "pull";
    case v1::Op::kPullReply: return "pull_reply";
    case v1::Op::kHeartbeat: return "heartbeat";
    case v1::Op::kPing: return "ping";
    case v1::Op::kPong: return "pong";
    case v1::Op::kTopics: return "topics";
    case v1::Op::kTopicsReply: return "topics_reply";
    case v1::Op::kAdmin: return "admin";
    case v1::Op::kAdminReply: return "admin_reply";
    case v1::Op::kError: return "error";
    case v1::Op::kBye: return "bye";
    case v1::Op::BODY_NOT_SET: break;
  }
  return "unknown";
}

std::string error_code_name(v1::ErrorCode code) {
  std::string name = v1::ErrorCode_Name(code);
  const std::string_view prefix = "ERROR_";
  if (name.compare(0, prefix.size(), prefix) == 0) name.erase(0, prefix.size());
  return name.empty() ? std::string("CODE_") + std::to_string(static_cast<int>(code)) : name;
}

std::int64_t wall_clock_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void Batch::add(std::string_view encoded) {
  buffer_.append(encoded.data(), encoded.size());
  ++ops_;
}

std::string Batch::take() {
  std::string out;
  out.swap(buffer_);
  ops_ = 0;
  return out;
}

}  // namespace curvebus
