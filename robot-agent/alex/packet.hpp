// The Alex serial protocol's packets and frames (alex-protocol.md §2-§4).
//
// A TPacket is 100 bytes (type, command, 2 pad bytes, 32 bytes of text, 16
// little-endian uint32 params).  On the wire it travels inside a 140-byte
// TComms frame: magic FF FE FD FC, dataSize 100, the packet, unused buffer
// bytes, an XOR checksum over the 100 packet bytes at offset 136, 3 pad bytes.
// This codec zero-fills everything it does not use and ignores unused bytes
// it receives.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace curvebus::alex {

enum class PacketType : std::uint8_t {
  Command = 0,
  Response = 1,
  Error = 2,
  Message = 3,
  Hello = 4
};

enum class Response : std::uint8_t {
  Ok = 0,
  Status = 1,
  BadPacket = 2,
  BadChecksum = 3,
  BadCommand = 4,
  BadResponse = 5,
};

enum class Command : std::uint8_t {
  Forward = 0,
  Reverse = 1,
  TurnLeft = 2,
  TurnRight = 3,
  Stop = 4,
  GetStats = 5,
  ClearStats = 6,
};

inline constexpr std::size_t kPacketSize = 100;
inline constexpr std::size_t kFrameSize = 140;
inline constexpr std::size_t kMaxText = 32;
inline constexpr std::size_t kParams = 16;
inline constexpr std::uint32_t kMagic = 0xFCFDFEFFu;  // bytes FF FE FD FC
inline constexpr std::size_t kPayloadOffset = 8;
inline constexpr std::size_t kChecksumOffset = 136;

struct Packet {
  std::uint8_t type = 0;
  std::uint8_t command = 0;
  std::array<std::uint8_t, kMaxText> data{};
  std::array<std::uint32_t, kParams> params{};
};

bool operator==(const Packet& a, const Packet& b);

std::array<std::uint8_t, kPacketSize> serialize(const Packet& p);
Packet deserialize(const std::uint8_t* bytes);  // reads kPacketSize bytes
std::uint8_t checksum(const std::uint8_t* payload, std::size_t n);
std::array<std::uint8_t, kFrameSize> encode_frame(const Packet& p);

// Checks one 140-byte frame as the recommended receiver does (§4.4).
enum class FrameCheck { Ok, BadMagic, BadSize, BadChecksum };
FrameCheck check_frame(const std::uint8_t* frame, Packet* out);

Packet make_command(Command c, std::uint32_t p0 = 0, std::uint32_t p1 = 0);
Packet make_response(Response r);
Packet make_error(Response r);
Packet make_status(const std::array<std::uint32_t, kParams>& params);
Packet make_message(std::string_view text);
Packet make_hello();

// Text of a MESSAGE packet (up to 32 bytes, NUL-terminated only if shorter).
std::string message_text(const Packet& p);

const char* packet_type_name(std::uint8_t type);
const char* command_name(std::uint8_t command);
const char* response_name(std::uint8_t response);
// "COMMAND FORWARD p0=50 p1=75", "RESPONSE OK", "ERROR BAD_PACKET", ...
std::string describe(const Packet& p);

}  // namespace curvebus::alex
