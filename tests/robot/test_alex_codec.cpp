// The Alex codec against the specification's own bytes (alex-protocol.md §4.2)
// and the stream decoder against partial reads, garbage and bad checksums.
#include <catch2/catch.hpp>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "alex/packet.hpp"
#include "alex/stream_decoder.hpp"

using namespace curvebus::alex;

namespace {
std::vector<std::uint8_t> bytes_of(const Packet& p) {
  auto f = encode_frame(p);
  return {f.begin(), f.end()};
}

// Bytes written the way the specification writes them: "ff fe 32*00 |" is
// ff, fe and 32 zero bytes; "|" separators are ignored.
std::vector<std::uint8_t> hex(const std::string& text) {
  std::vector<std::uint8_t> out;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    if (tok == "|") continue;
    std::size_t times = 1;
    const auto star = tok.find('*');
    if (star != std::string::npos) {
      times = std::stoul(tok.substr(0, star));
      tok = tok.substr(star + 1);
    }
    // A group like "00000000" is several bytes.
    std::vector<std::uint8_t> group;
    for (std::size_t i = 0; i < tok.size(); i += 2)
      group.push_back(static_cast<std::uint8_t>(std::stoul(tok.substr(i, 2), nullptr, 16)));
    for (std::size_t k = 0; k < times; ++k) out.insert(out.end(), group.begin(), group.end());
  }
  return out;
}
}  // namespace

// The enumerations are the wire values of alex-protocol.md §3.
static_assert(static_cast<int>(PacketType::Command) == 0 &&
              static_cast<int>(PacketType::Response) == 1 &&
              static_cast<int>(PacketType::Error) == 2 &&
              static_cast<int>(PacketType::Message) == 3 &&
              static_cast<int>(PacketType::Hello) == 4);
static_assert(static_cast<int>(Response::Ok) == 0 && static_cast<int>(Response::Status) == 1 &&
              static_cast<int>(Response::BadPacket) == 2 &&
              static_cast<int>(Response::BadChecksum) == 3 &&
              static_cast<int>(Response::BadCommand) == 4 &&
              static_cast<int>(Response::BadResponse) == 5);
static_assert(static_cast<int>(Command::Forward) == 0 && static_cast<int>(Command::Reverse) == 1 &&
              static_cast<int>(Command::TurnLeft) == 2 &&
              static_cast<int>(Command::TurnRight) == 3 && static_cast<int>(Command::Stop) == 4 &&
              static_cast<int>(Command::GetStats) == 5 &&
              static_cast<int>(Command::ClearStats) == 6);
static_assert(kPacketSize == 100 && kFrameSize == 140);

TEST_CASE("FORWARD 50 cm 75 % encodes to the specification's test vector", "[alex][codec]") {
  const auto f = encode_frame(make_command(Command::Forward, 50, 75));
  std::array<std::uint8_t, kFrameSize> want{};
  const std::uint8_t head[] = {0xff, 0xfe, 0xfd, 0xfc, 0x64, 0x00, 0x00, 0x00};
  std::copy(std::begin(head), std::end(head), want.begin());
  want[44] = 0x32;  // params[0] at frame offset 44
  want[48] = 0x4b;  // params[1] at frame offset 48
  want[136] = 0x79;
  CHECK(f == want);
}

TEST_CASE("the test vector written out as in the specification, byte for byte", "[alex][codec]") {
  // §4.2, with the unused pads as 00.
  const auto want =
      hex("ff fe fd fc 64 00 00 00 | 00 00 00 00 | 32*00 | "
          "32 00 00 00 4b 00 00 00 | 14*00000000 | 28*00 | 79 | 00 00 00");
  REQUIRE(want.size() == kFrameSize);
  const auto f = encode_frame(make_command(Command::Forward, 50, 75));
  CHECK(std::vector<std::uint8_t>(f.begin(), f.end()) == want);
  // And it decodes back to the same command.
  Packet p;
  REQUIRE(check_frame(want.data(), &p) == FrameCheck::Ok);
  CHECK(p == make_command(Command::Forward, 50, 75));
  CHECK(describe(p) == "COMMAND FORWARD p0=50 p1=75");
}

TEST_CASE("hand-computed frames: OK, BAD_PACKET, STATUS, HELLO, MESSAGE", "[alex][codec]") {
  // RESPONSE/OK: the header seen from the real firmware in §9 (ff fe fd fc 64 00 00 00 01 00),
  // checksum 01.
  CHECK(bytes_of(make_response(Response::Ok)) ==
        hex("ff fe fd fc 64000000 | 01 00 0000 | 32*00 | 64*00 | 28*00 | 01 | 000000"));
  // ERROR/BAD_PACKET: 02 ^ 02 = 00.
  CHECK(bytes_of(make_error(Response::BadPacket)) ==
        hex("fffefdfc 64000000 | 02 02 0000 | 32*00 | 64*00 | 28*00 | 00 | 000000"));
  // STATUS with params 1..10: type 01 and command 01 cancel out, 1 ^ 2 ^ ... ^ 10 = 0b (§4.2).
  std::array<std::uint32_t, kParams> params{};
  for (std::uint32_t i = 0; i < 10; ++i) params[i] = i + 1;
  CHECK(bytes_of(make_status(params)) ==
        hex("fffefdfc 64000000 | 01 01 0000 | 32*00 | 01000000 02000000 03000000 04000000 "
            "05000000 06000000 07000000 08000000 09000000 0a000000 6*00000000 | 28*00 | 0b | "
            "000000"));
  // HELLO: type 04, checksum 04.
  CHECK(bytes_of(make_hello()) ==
        hex("fffefdfc 64000000 | 04 00 0000 | 32*00 | 64*00 | 28*00 | 04 | 000000"));
  // MESSAGE "hi": 03 ^ 'h' (68) ^ 'i' (69) = 02.
  CHECK(bytes_of(make_message("hi")) ==
        hex("fffefdfc 64000000 | 03 00 0000 | 68 69 30*00 | 64*00 | 28*00 | 02 | 000000"));
}

TEST_CASE("deserialize ignores the dummy bytes, serialize zero-fills them", "[alex][codec]") {
  auto raw = serialize(make_command(Command::ClearStats, 0));
  CHECK(raw.size() == kPacketSize);
  CHECK(raw[2] == 0);
  CHECK(raw[3] == 0);
  raw[2] = 0xAB;  // the course never initialises these
  raw[3] = 0xCD;
  CHECK(deserialize(raw.data()) == make_command(Command::ClearStats, 0));
}

TEST_CASE("names of types, commands and responses", "[alex][codec]") {
  CHECK(std::string(packet_type_name(4)) == "HELLO");
  CHECK(std::string(packet_type_name(9)) == "UNKNOWN_TYPE");
  CHECK(std::string(command_name(3)) == "TURN_RIGHT");
  CHECK(std::string(command_name(6)) == "CLEAR_STATS");
  CHECK(std::string(command_name(7)) == "UNKNOWN_COMMAND");
  CHECK(std::string(response_name(5)) == "BAD_RESPONSE");
  CHECK(describe(make_error(Response::BadChecksum)) == "ERROR BAD_CHECKSUM");
  CHECK(describe(make_message("DNE")) == "MESSAGE \"DNE\"");
}

TEST_CASE("checksums of the specification's other examples", "[alex][codec]") {
  CHECK(encode_frame(make_hello())[kChecksumOffset] == 0x04);
  std::array<std::uint32_t, kParams> params{};
  for (std::uint32_t i = 0; i < 10; ++i) params[i] = i + 1;
  CHECK(encode_frame(make_status(params))[kChecksumOffset] == 0x0B);
}

TEST_CASE("packets round-trip, little-endian params, 32-byte text without NUL", "[alex][codec]") {
  Packet p = make_command(Command::TurnRight, 0x01020304u, 0xA0B0C0D0u);
  auto f = encode_frame(p);
  CHECK(f[44] == 0x04);
  CHECK(f[45] == 0x03);
  CHECK(f[47] == 0x01);
  CHECK(f[48] == 0xD0);
  Packet back;
  REQUIRE(check_frame(f.data(), &back) == FrameCheck::Ok);
  CHECK(back == p);
  Packet m = make_message("0123456789abcdef0123456789abcdefTOO LONG");
  CHECK(message_text(m) == "0123456789abcdef0123456789abcdef");
  CHECK(message_text(make_message("hi")) == "hi");
  CHECK(describe(p) == "COMMAND TURN_RIGHT p0=16909060 p1=2695938256");
}

TEST_CASE("frame checks: magic, size, checksum", "[alex][codec]") {
  auto f = encode_frame(make_command(Command::Stop));
  auto bad = f;
  bad[0] = 0x00;
  CHECK(check_frame(bad.data(), nullptr) == FrameCheck::BadMagic);
  bad = f;
  bad[4] = 0x65;
  CHECK(check_frame(bad.data(), nullptr) == FrameCheck::BadSize);
  bad = f;
  bad[9] ^= 0x01;
  CHECK(check_frame(bad.data(), nullptr) == FrameCheck::BadChecksum);
  // Unused buffer and pad bytes are ignored (the course never initialises them).
  bad = f;
  bad[120] = 0xAA;
  bad[139] = 0x55;
  CHECK(check_frame(bad.data(), nullptr) == FrameCheck::Ok);
}

TEST_CASE("decoder: a frame split at every offset, and byte by byte", "[alex][decoder]") {
  const auto f = bytes_of(make_command(Command::GetStats));
  for (std::size_t cut = 0; cut <= f.size(); ++cut) {
    StreamDecoder d;
    Packet p;
    d.feed(f.data(), cut);
    if (cut < f.size()) CHECK_FALSE(d.next(p));
    d.feed(f.data() + cut, f.size() - cut);
    REQUIRE(d.next(p));
    CHECK(p.command == static_cast<std::uint8_t>(Command::GetStats));
    CHECK_FALSE(d.next(p));
  }
  StreamDecoder d;
  Packet p;
  int got = 0;
  for (int rep = 0; rep < 3; ++rep)
    for (auto b : f) {
      d.feed(&b, 1);
      while (d.next(p)) ++got;
    }
  CHECK(got == 3);
  CHECK(d.stats().garbage_bytes == 0);
}

TEST_CASE("decoder: garbage and a bad checksum are skipped, counted, and the next frame decodes",
          "[alex][decoder]") {
  std::vector<std::uint8_t> in = {0x01, 0xff, 0xfe,
                                  0x00, 0xfc, 0x33};  // includes a false magic start
  auto bad = bytes_of(make_response(Response::Ok));
  bad[20] ^= 0x10;  // corrupt the payload: checksum mismatch
  in.insert(in.end(), bad.begin(), bad.end());
  auto good = bytes_of(make_response(Response::Status));
  in.insert(in.end(), good.begin(), good.end());
  StreamDecoder d;
  d.feed(in.data(), in.size());
  Packet p;
  REQUIRE(d.next(p));
  CHECK(p.type == static_cast<std::uint8_t>(PacketType::Response));
  CHECK(p.command == static_cast<std::uint8_t>(Response::Status));
  CHECK_FALSE(d.next(p));
  CHECK(d.stats().bad_checksum == 1);
  CHECK(d.stats().garbage_bytes >= 6);
  CHECK(d.stats().frames_ok == 1);
}

TEST_CASE("decoder: a wrong dataSize is counted, and the following frame decodes",
          "[alex][decoder]") {
  auto bad = bytes_of(make_response(Response::Ok));
  bad[4] = 0x80;  // dataSize 128: the course receiver would trust it
  auto in = bad;
  const auto good = bytes_of(make_error(Response::BadCommand));
  in.insert(in.end(), good.begin(), good.end());
  StreamDecoder d;
  d.feed(in.data(), in.size());
  Packet p;
  REQUIRE(d.next(p));
  CHECK(p == make_error(Response::BadCommand));
  CHECK(d.stats().bad_size == 1);
  CHECK(d.stats().frames_ok == 1);
}

TEST_CASE("decoder: several frames in one read all come out, in order", "[alex][decoder]") {
  std::vector<std::uint8_t> in;
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto f = bytes_of(make_command(Command::Forward, i, 0));
    in.insert(in.end(), f.begin(), f.end());
  }
  StreamDecoder d;
  d.feed(in.data(), in.size());
  Packet p;
  for (std::uint32_t i = 0; i < 5; ++i) {
    REQUIRE(d.next(p));
    CHECK(p.params[0] == i);
  }
  CHECK_FALSE(d.next(p));
  CHECK(d.buffered() == 0);
}

TEST_CASE("decoder: a magic split across reads, a frame after a false magic", "[alex][decoder]") {
  const auto f = bytes_of(make_response(Response::Status));
  StreamDecoder d;
  Packet p;
  // A false start: the magic followed by too few bytes, then a real frame.
  std::vector<std::uint8_t> in = {0xff, 0xfe, 0xfd, 0xfc, 0x01, 0x02};
  in.insert(in.end(), f.begin(), f.end());
  for (std::size_t i = 0; i < in.size(); i += 3) {
    d.feed(in.data() + i, std::min<std::size_t>(3, in.size() - i));
  }
  REQUIRE(d.next(p));
  CHECK(p == make_response(Response::Status));
  CHECK(d.stats().garbage_bytes == 6);
  // reset() drops a half frame but keeps the counters.
  d.feed(f.data(), 70);
  d.reset();
  CHECK(d.buffered() == 0);
  d.feed(f.data() + 70, f.size() - 70);
  CHECK_FALSE(d.next(p));
  CHECK(d.stats().frames_ok == 1);
}

TEST_CASE("decoder: a huge read keeps at most the bounded tail", "[alex][decoder]") {
  std::vector<std::uint8_t> flood(1 << 20, 0xff);  // a stuck line: all ones
  const auto f = bytes_of(make_response(Response::Ok));
  flood.insert(flood.end(), f.begin(), f.end());
  StreamDecoder d;
  d.feed(flood.data(), flood.size());
  CHECK(d.buffered() <= kDecoderMaxBuffered);
  Packet p;
  REQUIRE(d.next(p));  // the frame at the end still comes out
  CHECK(p == make_response(Response::Ok));
  CHECK(d.stats().garbage_bytes == (1u << 20));
}

TEST_CASE("decoder: random input never crashes and memory stays bounded", "[alex][decoder]") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), len(1, 300);
  StreamDecoder d;
  Packet p;
  const auto good = bytes_of(make_command(Command::Forward, 10, 20));
  int inserted = 0, decoded = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> chunk(static_cast<std::size_t>(len(rng)));
    for (auto& b : chunk) b = static_cast<std::uint8_t>(byte(rng));
    if (i % 50 == 0) {
      chunk.insert(chunk.end(), good.begin(), good.end());
      ++inserted;
    }
    d.feed(chunk.data(), chunk.size());
    while (d.next(p)) ++decoded;
    REQUIRE(d.buffered() <= kDecoderMaxBuffered);
  }
  // Random bytes rarely form a valid frame; the inserted ones all come through
  // unless random bytes right before one happened to start a false frame.
  CHECK(decoded >= inserted - 2);
}
