#include "curvebus/codec.hpp"

#include <chrono>
#include <cstring>

#include "curvebus/topic.hpp"

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

namespace {

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* put_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Wire tags: (field << 3) | type; type 0 = varint, 2 = length-delimited.
constexpr char kTagFrameOps = 0x0A;     // Frame.ops = 1
constexpr char kTagOpDeliver = 0x42;    // Op.deliver = 8
constexpr char kTagTopic = 0x0A;        // Deliver.topic = 1
constexpr char kTagPayload = 0x12;      // Deliver.payload = 2
constexpr char kTagSeq = 0x18;          // Deliver.seq = 3
constexpr char kTagPublisher = 0x22;    // Deliver.publisher = 4
constexpr char kTagTimestamp = 0x28;    // Deliver.timestamp_us = 5
constexpr char kTagRetained = 0x30;     // Deliver.retained = 6
constexpr char kTagContentType = 0x3A;  // Deliver.content_type = 7

std::size_t bytes_field_size(std::string_view s) {
  return s.empty() ? 0 : 1 + varint_size(s.size()) + s.size();
}

char* put_bytes_field(char* p, char tag, std::string_view s) {
  if (s.empty()) return p;  // proto3: default values are not written
  *p++ = tag;
  p = put_varint(p, s.size());
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

// Reads a varint at p (< end); false when truncated or longer than 64 bits.
inline bool get_varint(const std::uint8_t*& p, const std::uint8_t* end, std::uint64_t& v) {
  if (p < end && *p < 0x80) {  // one byte: tags, short lengths, small numbers
    v = *p++;
    return true;
  }
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const std::uint8_t b = *p++;
    if (shift == 63 && b > 1) return false;  // beyond 64 bits: let protobuf decide
    v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// is_valid_utf8, with ASCII (every topic and name in practice) checked eight
// bytes at a time first.
bool valid_text(std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if (w & 0x8080808080808080ull) return is_valid_utf8(s);
  }
  for (; i < s.size(); ++i)
    if (static_cast<unsigned char>(s[i]) >= 0x80) return is_valid_utf8(s);
  return true;
}

// Reads a length-delimited body after its tag; false when it overruns.
inline bool get_bytes(const std::uint8_t*& p, const std::uint8_t* end, std::string_view& out) {
  std::uint64_t len = 0;
  if (!get_varint(p, end, len) || len > static_cast<std::uint64_t>(end - p)) return false;
  out = std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(len));
  p += len;
  return true;
}

// Publish fields (Op.publish = 6).
constexpr char kTagOpPublish = 0x32;
constexpr char kTagPubRequestId = 0x08;    // Publish.request_id = 1
constexpr char kTagPubTopic = 0x12;        // Publish.topic = 2
constexpr char kTagPubPayload = 0x1A;      // Publish.payload = 3
constexpr char kTagPubAck = 0x20;          // Publish.ack = 4
constexpr char kTagPubRetain = 0x28;       // Publish.retain = 5
constexpr char kTagPubContentType = 0x32;  // Publish.content_type = 6

bool scan_deliver(std::string_view bytes, DeliverView& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  unsigned seen = 0;
  while (p < end) {
    std::uint64_t tag = 0;
    if (!get_varint(p, end, tag) || tag > 0xFF) return false;
    const unsigned field = static_cast<unsigned>(tag >> 3);
    const unsigned type = static_cast<unsigned>(tag & 7);
    if (field < 1 || field > 7 || (seen & (1u << field))) return false;  // unknown or repeated
    seen |= 1u << field;
    std::uint64_t n = 0;
    switch (field) {
      case 3:  // seq
      case 5:  // timestamp_us
      case 6:  // retained
        if (type != 0 || !get_varint(p, end, n)) return false;
        if (field == 3) v.seq = n;
        if (field == 5) v.timestamp_us = static_cast<std::int64_t>(n);
        if (field == 6) v.retained = n != 0;
        break;
      case 2:  // payload (bytes)
        if (type != 2 || !get_bytes(p, end, v.payload)) return false;
        break;
      default: {  // 1 topic, 4 publisher, 7 content_type (strings)
        std::string_view& text = field == 1 ? v.topic : field == 4 ? v.publisher : v.content_type;
        if (type != 2 || !get_bytes(p, end, text) || !valid_text(text)) return false;
        break;
      }
    }
  }
  return true;
}

bool scan_publish(std::string_view bytes, PublishView& v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  unsigned seen = 0;
  while (p < end) {
    std::uint64_t tag = 0;
    if (!get_varint(p, end, tag) || tag > 0xFF) return false;
    const unsigned field = static_cast<unsigned>(tag >> 3);
    const unsigned type = static_cast<unsigned>(tag & 7);
    if (field < 1 || field > 6 || (seen & (1u << field))) return false;  // unknown or repeated
    seen |= 1u << field;
    std::uint64_t n = 0;
    switch (field) {
      case 1:  // request_id
      case 4:  // ack
      case 5:  // retain
        if (type != 0 || !get_varint(p, end, n)) return false;
        if (field == 1) v.request_id = n;
        if (field == 4) v.ack = n != 0;
        if (field == 5) v.retain = n != 0;
        break;
      case 2:  // topic (string)
        if (type != 2 || !get_bytes(p, end, v.topic) || !is_valid_utf8(v.topic)) return false;
        break;
      case 3:  // payload (bytes)
        if (type != 2 || !get_bytes(p, end, v.payload)) return false;
        break;
      case 6:  // content_type (string)
        if (type != 2 || !get_bytes(p, end, v.content_type) || !is_valid_utf8(v.content_type))
          return false;
        break;
    }
  }
  return true;
}

}  // namespace

bool scan_publish_frame(const void* data, std::size_t size, std::vector<PublishView>& out) {
  out.clear();
  const auto* p = static_cast<const std::uint8_t*>(data);
  const auto* end = p + size;
  while (p < end) {
    std::string_view op, body;
    if (*p++ != kTagFrameOps || !get_bytes(p, end, op)) return false;
    // The op holds exactly one field: publish (6), length-delimited.
    const auto* q = reinterpret_cast<const std::uint8_t*>(op.data());
    const auto* op_end = q + op.size();
    if (q == op_end || *q++ != 0x32 || !get_bytes(q, op_end, body) || q != op_end) return false;
    out.emplace_back();
    if (!scan_publish(body, out.back())) return false;
  }
  return !out.empty();
}

bool scan_deliver_frame(const void* data, std::size_t size, std::vector<DeliverView>& out) {
  out.clear();
  if (size > static_cast<std::size_t>(INT32_MAX)) return false;  // protobuf's bound
  const auto* p = static_cast<const std::uint8_t*>(data);
  const auto* end = p + size;
  while (p < end) {
    std::string_view op, body;
    if (*p++ != kTagFrameOps || !get_bytes(p, end, op)) return false;
    // The op holds exactly one field: deliver (8), length-delimited.
    const auto* q = reinterpret_cast<const std::uint8_t*>(op.data());
    const auto* op_end = q + op.size();
    if (q == op_end || *q++ != static_cast<std::uint8_t>(kTagOpDeliver) ||
        !get_bytes(q, op_end, body) || q != op_end)
      return false;
    out.emplace_back();
    if (!scan_deliver(body, out.back())) return false;
  }
  return !out.empty();
}

void encode_publish(const PublishView& v, std::string& out) {
  // Field order as protobuf writes them (by field number).
  const std::size_t publish_len = (v.request_id ? 1 + varint_size(v.request_id) : 0) +
                                  bytes_field_size(v.topic) + bytes_field_size(v.payload) +
                                  (v.ack ? 2 : 0) + (v.retain ? 2 : 0) +
                                  bytes_field_size(v.content_type);
  const std::size_t op_len = 1 + varint_size(publish_len) + publish_len;
  const std::size_t total = 1 + varint_size(op_len) + op_len;
  out.resize(total);
  char* p = out.data();
  *p++ = kTagFrameOps;
  p = put_varint(p, op_len);
  *p++ = kTagOpPublish;
  p = put_varint(p, publish_len);
  if (v.request_id) {
    *p++ = kTagPubRequestId;
    p = put_varint(p, v.request_id);
  }
  p = put_bytes_field(p, kTagPubTopic, v.topic);
  p = put_bytes_field(p, kTagPubPayload, v.payload);
  if (v.ack) {
    *p++ = kTagPubAck;
    *p++ = 1;
  }
  if (v.retain) {
    *p++ = kTagPubRetain;
    *p++ = 1;
  }
  put_bytes_field(p, kTagPubContentType, v.content_type);
}

void encode_deliver(const DeliverView& d, std::string& out) {
  // Field order as protobuf writes them (by field number), so the bytes equal
  // SerializeToString of the same message.
  const std::size_t deliver_len =
      bytes_field_size(d.topic) + bytes_field_size(d.payload) +
      (d.seq ? 1 + varint_size(d.seq) : 0) + bytes_field_size(d.publisher) +
      (d.timestamp_us ? 1 + varint_size(static_cast<std::uint64_t>(d.timestamp_us)) : 0) +
      (d.retained ? 2 : 0) + bytes_field_size(d.content_type);
  const std::size_t op_len = 1 + varint_size(deliver_len) + deliver_len;
  const std::size_t total = 1 + varint_size(op_len) + op_len;
  out.resize(total);
  char* p = out.data();
  *p++ = kTagFrameOps;
  p = put_varint(p, op_len);
  *p++ = kTagOpDeliver;
  p = put_varint(p, deliver_len);
  p = put_bytes_field(p, kTagTopic, d.topic);
  p = put_bytes_field(p, kTagPayload, d.payload);
  if (d.seq) {
    *p++ = kTagSeq;
    p = put_varint(p, d.seq);
  }
  p = put_bytes_field(p, kTagPublisher, d.publisher);
  if (d.timestamp_us) {
    *p++ = kTagTimestamp;
    p = put_varint(p, static_cast<std::uint64_t>(d.timestamp_us));
  }
  if (d.retained) {
    *p++ = kTagRetained;
    *p++ = 1;
  }
  put_bytes_field(p, kTagContentType, d.content_type);
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

std::uint64_t answered_request_id(const v1::Op& op) {
  switch (op.body_case()) {
    case v1::Op::kRegistered:
      return op.registered().request_id();
    case v1::Op::kSuback:
      return op.suback().request_id();
    case v1::Op::kUnsuback:
      return op.unsuback().request_id();
    case v1::Op::kPuback:
      return op.puback().request_id();
    case v1::Op::kPullReply:
      return op.pull_reply().request_id();
    case v1::Op::kTopicsReply:
      return op.topics_reply().request_id();
    case v1::Op::kAdminReply:
      return op.admin_reply().request_id();
    case v1::Op::kError:
      return op.error().request_id();
    default:
      return 0;
  }
}

std::uint64_t request_id_of(const v1::Op& op) {
  switch (op.body_case()) {
    case v1::Op::kRegister:
      return op.register_().request_id();
    case v1::Op::kSubscribe:
      return op.subscribe().request_id();
    case v1::Op::kUnsubscribe:
      return op.unsubscribe().request_id();
    case v1::Op::kPublish:
      return op.publish().request_id();
    case v1::Op::kPull:
      return op.pull().request_id();
    case v1::Op::kTopics:
      return op.topics().request_id();
    case v1::Op::kAdmin:
      return op.admin().request_id();
    default:
      return 0;
  }
}

const char* op_name(v1::Op::BodyCase body) {
  switch (body) {
    case v1::Op::kRegister:
      return "register";
    case v1::Op::kRegistered:
      return "registered";
    case v1::Op::kSubscribe:
      return "subscribe";
    case v1::Op::kSuback:
      return "suback";
    case v1::Op::kUnsubscribe:
      return "unsubscribe";
    case v1::Op::kUnsuback:
      return "unsuback";
    case v1::Op::kPublish:
      return "publish";
    case v1::Op::kPuback:
      return "puback";
    case v1::Op::kDeliver:
      return "deliver";
    case v1::Op::kPull:
      return "pull";
    case v1::Op::kPullReply:
      return "pull_reply";
    case v1::Op::kHeartbeat:
      return "heartbeat";
    case v1::Op::kPing:
      return "ping";
    case v1::Op::kPong:
      return "pong";
    case v1::Op::kTopics:
      return "topics";
    case v1::Op::kTopicsReply:
      return "topics_reply";
    case v1::Op::kAdmin:
      return "admin";
    case v1::Op::kAdminReply:
      return "admin_reply";
    case v1::Op::kError:
      return "error";
    case v1::Op::kBye:
      return "bye";
    case v1::Op::BODY_NOT_SET:
      break;
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

}  // namespace curvebus
