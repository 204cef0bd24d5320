// The Alex codec against the specification's own bytes (alex-protocol.md §4.2)
// and the stream decoder against partial reads, garbage and bad checksums.
#include <catch2/catch.hpp>

#include <random>

#include "alex/packet.hpp"
#include "alex/stream_decoder.hpp"

using namespace curvebus::alex;

namespace {
std::vector<std::uint8_t> bytes_of(const Packet& p) {
  auto f = encode_frame(p);
  return {f.begin(), f.end()};
}
}  // namespace

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
    REQUIRE(d.buffered() <= 8 * kFrameSize);
  }
  // Random bytes rarely form a valid frame; the inserted ones all come through
  // unless random bytes right before one happened to start a false frame.
  CHECK(decoded >= inserted - 2);
}
