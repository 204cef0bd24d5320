#include "alex/packet.hpp"

#include <algorithm>
#include <cstring>

namespace curvebus::alex {

namespace {
void put_u32(std::uint8_t* out, std::uint32_t v) {
  out[0] = static_cast<std::uint8_t>(v);
  out[1] = static_cast<std::uint8_t>(v >> 8);
  out[2] = static_cast<std::uint8_t>(v >> 16);
  out[3] = static_cast<std::uint8_t>(v >> 24);
}
std::uint32_t get_u32(const std::uint8_t* in) {
  return std::uint32_t{in[0]} | std::uint32_t{in[1]} << 8 | std::uint32_t{in[2]} << 16 |
         std::uint32_t{in[3]} << 24;
}
constexpr std::size_t kDataOffset = 4;
constexpr std::size_t kParamsOffset = 36;
}  // namespace

bool operator==(const Packet& a, const Packet& b) {
  return a.type == b.type && a.command == b.command && a.data == b.data && a.params == b.params;
}

std::array<std::uint8_t, kPacketSize> serialize(const Packet& p) {
  std::array<std::uint8_t, kPacketSize> out{};
  out[0] = p.type;
  out[1] = p.command;
  std::copy(p.data.begin(), p.data.end(), out.begin() + kDataOffset);
  for (std::size_t i = 0; i < kParams; ++i)
    put_u32(out.data() + kParamsOffset + 4 * i, p.params[i]);
  return out;
}

Packet deserialize(const std::uint8_t* bytes) {
  Packet p;
  p.type = bytes[0];
  p.command = bytes[1];
  std::copy(bytes + kDataOffset, bytes + kDataOffset + kMaxText, p.data.begin());
  for (std::size_t i = 0; i < kParams; ++i) p.params[i] = get_u32(bytes + kParamsOffset + 4 * i);
  return p;
}

std::uint8_t checksum(const std::uint8_t* payload, std::size_t n) {
  std::uint8_t c = 0;
  for (std::size_t i = 0; i < n; ++i) c ^= payload[i];
  return c;
}

std::array<std::uint8_t, kFrameSize> encode_frame(const Packet& p) {
  std::array<std::uint8_t, kFrameSize> f{};
  put_u32(f.data(), kMagic);
  put_u32(f.data() + 4, static_cast<std::uint32_t>(kPacketSize));
  const auto payload = serialize(p);
  std::copy(payload.begin(), payload.end(), f.begin() + kPayloadOffset);
  f[kChecksumOffset] = checksum(payload.data(), payload.size());
  return f;
}

FrameCheck check_frame(const std::uint8_t* frame, Packet* out) {
  if (get_u32(frame) != kMagic) return FrameCheck::BadMagic;
  if (get_u32(frame + 4) != kPacketSize) return FrameCheck::BadSize;
  if (checksum(frame + kPayloadOffset, kPacketSize) != frame[kChecksumOffset])
    return FrameCheck::BadChecksum;
  if (out) *out = deserialize(frame + kPayloadOffset);
  return FrameCheck::Ok;
}

Packet make_command(Command c, std::uint32_t p0, std::uint32_t p1) {
  Packet p;
  p.type = static_cast<std::uint8_t>(PacketType::Command);
  p.command = static_cast<std::uint8_t>(c);
  p.params[0] = p0;
  p.params[1] = p1;
  return p;
}

Packet make_response(Response r) {
  Packet p;
  p.type = static_cast<std::uint8_t>(PacketType::Response);
  p.command = static_cast<std::uint8_t>(r);
  return p;
}

Packet make_error(Response r) {
  Packet p;
  p.type = static_cast<std::uint8_t>(PacketType::Error);
  p.command = static_cast<std::uint8_t>(r);
  return p;
}

Packet make_status(const std::array<std::uint32_t, kParams>& params) {
  Packet p = make_response(Response::Status);
  p.params = params;
  return p;
}

Packet make_message(std::string_view text) {
  Packet p;
  p.type = static_cast<std::uint8_t>(PacketType::Message);
  const std::size_t n = std::min(text.size(), kMaxText);
  std::memcpy(p.data.data(), text.data(), n);
  return p;
}

Packet make_hello() {
  Packet p;
  p.type = static_cast<std::uint8_t>(PacketType::Hello);
  return p;
}

std::string message_text(const Packet& p) {
  const auto* begin = reinterpret_cast<const char*>(p.data.data());
  const auto* nul = static_cast<const char*>(std::memchr(begin, 0, kMaxText));
  return std::string(begin, nul ? static_cast<std::size_t>(nul - begin) : kMaxText);
}

const char* packet_type_name(std::uint8_t type) {
  switch (type) {
    case 0:
      return "COMMAND";
    case 1:
      return "RESPONSE";
    case 2:
      return "ERROR";
    case 3:
      return "MESSAGE";
    case 4:
      return "HELLO";
    default:
      return "UNKNOWN_TYPE";
  }
}

const char* command_name(std::uint8_t command) {
  switch (command) {
    case 0:
      return "FORWARD";
    case 1:
      return "REVERSE";
    case 2:
      return "TURN_LEFT";
    case 3:
      return "TURN_RIGHT";
    case 4:
      return "STOP";
    case 5:
      return "GET_STATS";
    case 6:
      return "CLEAR_STATS";
    default:
      return "UNKNOWN_COMMAND";
  }
}

const char* response_name(std::uint8_t response) {
  switch (response) {
    case 0:
      return "OK";
    case 1:
      return "STATUS";
    case 2:
      return "BAD_PACKET";
    case 3:
      return "BAD_CHECKSUM";
    case 4:
      return "BAD_COMMAND";
    case 5:
      return "BAD_RESPONSE";
    default:
      return "UNKNOWN_RESPONSE";
  }
}

std::string describe(const Packet& p) {
  std::string s = packet_type_name(p.type);
  switch (static_cast<PacketType>(p.type)) {
    case PacketType::Command:
      s += std::string(" ") + command_name(p.command) + " p0=" + std::to_string(p.params[0]) +
           " p1=" + std::to_string(p.params[1]);
      break;
    case PacketType::Response:
    case PacketType::Error:
      s += std::string(" ") + response_name(p.command);
      break;
    case PacketType::Message:
      s += " \"" + message_text(p) + "\"";
      break;
    default:
      break;
  }
  return s;
}

}  // namespace curvebus::alex
