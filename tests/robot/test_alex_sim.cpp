// The simulated firmware (in process, on a simulated clock: no sleeping), and
// a real alex-sim process driven through SerialLink over its pseudo-terminal.
//
// The timing facts checked here are alex-protocol.md §10's, measured on the
// course firmware running on a simulated ATmega328P at true line rate.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <climits>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "alex/serial_link.hpp"
#include "alex/stream_decoder.hpp"
#include "curvebus/codec.hpp"
#include "fixture.hpp"
#include "process.hpp"
#include "sim/sim.hpp"

using namespace curvebus;
using namespace curvebus::alex;
using namespace curvebus::alexsim;
using namespace std::chrono_literals;

namespace {
constexpr std::int64_t kMs = 1000;  // model time is in µs

// The firmware model wired to a host-side decoder, on a simulated clock.
struct Rig {
  struct Reply {
    std::int64_t at_us;  // when its last byte reached the host
    Packet p;
  };
  StreamDecoder host;
  std::vector<std::pair<std::int64_t, std::string>> events;
  std::vector<std::int64_t> byte_at;  // when each byte reached the host
  std::vector<Reply> replies;
  std::unique_ptr<Firmware> fw;

  explicit Rig(UartConfig uart = UartConfig{}) {
    fw = std::make_unique<Firmware>(
        MotionConfig{}, uart,
        [this](const std::vector<std::uint8_t>& b) {
          for (std::size_t i = 0; i < b.size(); ++i) byte_at.push_back(fw->now_us());
          host.feed(b.data(), b.size());
          Packet p;
          while (host.next(p)) replies.push_back({fw->now_us(), p});
        },
        [this](const std::string& e) { events.emplace_back(fw->now_us(), e); });
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  std::int64_t now() const { return fw->now_us(); }
  void write(const Packet& p, std::int64_t at_us) {
    const auto f = encode_frame(p);
    fw->host_write(f.data(), f.size(), at_us);
  }
  void write_bytes(const std::vector<std::uint8_t>& b, std::int64_t at_us) {
    fw->host_write(b.data(), b.size(), at_us);
  }
  void run_until(std::int64_t t_us) { fw->run_until(t_us); }
  void advance_ms(std::int64_t ms) { run_until(now() + ms * kMs); }
  // Writes `bytes` now, runs `ms`, returns the replies that arrived meanwhile.
  std::vector<Packet> ask_bytes(const std::vector<std::uint8_t>& bytes, std::int64_t ms = 1000) {
    const std::size_t first = replies.size();
    write_bytes(bytes, now());
    advance_ms(ms);
    std::vector<Packet> out;
    for (std::size_t i = first; i < replies.size(); ++i) out.push_back(replies[i].p);
    return out;
  }
  std::vector<Packet> ask(const Packet& p, std::int64_t ms = 1000) {
    const auto f = encode_frame(p);
    return ask_bytes(std::vector<std::uint8_t>(f.begin(), f.end()), ms);
  }
  std::optional<std::int64_t> when(const std::string& needle) const {
    for (const auto& [t, e] : events)
      if (e.find(needle) != std::string::npos) return t;
    return std::nullopt;
  }
  bool saw(const std::string& needle) const { return when(needle).has_value(); }
};

bool is(const Packet& p, PacketType t, Response r) {
  return p.type == static_cast<std::uint8_t>(t) && p.command == static_cast<std::uint8_t>(r);
}
std::vector<std::uint8_t> frame_bytes(const Packet& p) {
  const auto f = encode_frame(p);
  return std::vector<std::uint8_t>(f.begin(), f.end());
}
UartConfig at_baud(int baud) {
  UartConfig u;
  u.baud = baud;
  return u;
}
enum { kLeftFwd = 0, kRightFwd, kLeftRev, kRightRev, kLFT, kRFT, kLRT, kRRT, kFwdCm, kRevCm };
}  // namespace

// ---------------------------------------------------------------------------
// The line and the Uno's buffers (alex-protocol.md §10)

TEST_CASE("byte times are an Uno's real rates: 1040 us at 9600, 170 at 57600, 85 at 115200",
          "[alex][sim]") {
  CHECK(byte_time_us(9600) == 1040);  // UBRR 207 double speed = UBRR 103: 9615 baud
  CHECK(byte_time_us(57600) == 170);  // the core's 57600 exception: 58824 baud
  CHECK(byte_time_us(115200) == 85);  // 117647 baud
  CHECK(byte_time_us(38400) == 260);
  CHECK(byte_time_us(0) == 0);
  CHECK(Rig().fw->byte_us() == 1040);  // 9600 is the default
  CHECK_FALSE(Rig().fw->lenient());
  CHECK(Rig().fw->strict());
  CHECK_THROWS_AS(Firmware(MotionConfig{}, UartConfig{9600, 1, 64, 50}, nullptr, nullptr),
                  std::invalid_argument);
}

TEST_CASE(
    "at 9600 a request/answer pair takes 290.5-294.3 ms, the reply starting right after "
    "the request's 140th byte",
    "[alex][sim]") {
  // Several phases of the firmware's loop against the host's write.
  for (std::int64_t t0 : {10'000, 10'013, 10'049, 123'457}) {
    INFO("request written at " << t0 << " us");
    Rig r;
    r.write(make_command(Command::GetStats), t0);
    r.run_until(t0 + 1000 * kMs);
    REQUIRE(r.replies.size() == 1);
    CHECK(is(r.replies[0].p, PacketType::Response, Response::Status));
    REQUIRE(r.byte_at.size() == kFrameSize);
    const std::int64_t last_request_byte = t0 + 140 * 1040;
    const std::int64_t first = r.byte_at.front() - t0, last = r.byte_at.back() - t0;
    // §10: 145.9-147.6 ms to the reply's first byte, 290.5-294.3 ms to its last.
    CHECK(first >= 145'900);
    CHECK(first <= 147'600);
    CHECK(last >= 290'500);
    CHECK(last <= 294'300);
    // Right after the 140th byte: within one loop turn plus one byte time.
    CHECK(r.byte_at.front() > last_request_byte);
    CHECK(r.byte_at.front() <= last_request_byte + 50 + 1040);
    // The reply leaves back to back at the line rate.
    CHECK(r.byte_at.back() - r.byte_at.front() == 139 * 1040);
    // Serial.write held the loop for (140 - 64) byte times.
    CHECK(r.fw->stats().blocked_writes == 1);
    CHECK(r.fw->stats().last_block_us == 76 * 1040);
    CHECK(r.saw("loop blocked 79.04 ms in Serial.write"));
  }
}

TEST_CASE(
    "while Serial.write blocks, the loop reads nothing: motors start only when the OK has "
    "gone into the transmit ring",
    "[alex][sim]") {
  Rig r;
  r.write(make_command(Command::Forward, 0, 100), 0);
  const std::int64_t arrived = 140 * 1040;
  r.run_until(arrived + 70 * kMs);
  CHECK_FALSE(r.fw->moving());  // still inside sendOK()
  CHECK(r.fw->loop_blocked());
  r.run_until(arrived + 80 * kMs);
  CHECK(r.fw->moving());
  CHECK_FALSE(r.fw->loop_blocked());
  // STOP: OK first, the motors go off when that write returns.
  r.run_until(1000 * kMs);
  r.write(make_command(Command::Stop), r.now());
  const std::int64_t stop_in = r.now() + 140 * 1040;
  r.run_until(stop_in + 70 * kMs);
  CHECK(r.saw("rx COMMAND STOP"));
  CHECK(r.fw->moving());
  r.run_until(stop_in + 80 * kMs);
  CHECK_FALSE(r.fw->moving());
}

TEST_CASE(
    "a frame written 0-145 ms after the previous request's first byte loses 13 bytes and "
    "fails, up to 158 ms it loses fewer and still fails, from 159 ms it is clean",
    "[alex][sim]") {
  // FORWARD at 0, STOP at every offset: the STOP queues behind FORWARD on
  // the line (< 145.6 ms) or follows it, and reaches the firmware while it is
  // stuck in Serial.write sending the FORWARD's OK.
  for (int offset_ms = 0; offset_ms <= 300; ++offset_ms) {
    INFO("STOP written " << offset_ms << " ms after FORWARD");
    Rig r;
    r.write(make_command(Command::Forward, 0, 50), 0);
    r.write(make_command(Command::Stop), offset_ms * kMs);
    r.run_until(1500 * kMs);
    const auto dropped = r.fw->stats().rx_dropped;
    if (offset_ms <= 145) {
      CHECK(dropped == 13);
      CHECK(r.fw->receiver().counter() == 127);  // the STOP's remains wait for 13 more bytes
    } else if (offset_ms <= 158) {
      CHECK(dropped >= 1);
      CHECK(dropped <= 12);
    } else {
      CHECK(dropped == 0);
    }
    const bool lost = offset_ms <= 158;
    CHECK(r.saw("rx COMMAND STOP") == !lost);
    CHECK(r.fw->moving() == lost);
    CHECK(r.replies.size() == (lost ? 1u : 2u));  // FORWARD's OK (and STOP's)
    CHECK(r.saw("rx dropped") == lost);
  }
}

TEST_CASE(
    "a second frame written during a reply loses bytes and fails, one written after the "
    "reply's last byte succeeds",
    "[alex][sim]") {
  SECTION("written when the reply's first byte arrives") {
    Rig r;
    r.write(make_command(Command::GetStats), 0);
    while (r.byte_at.empty()) r.run_until(r.now() + 10);
    REQUIRE(r.now() == r.byte_at[0]);
    r.write(make_command(Command::Stop), r.now());
    r.run_until(1500 * kMs);
    CHECK(r.fw->stats().rx_dropped == 12);
    CHECK_FALSE(r.saw("rx COMMAND STOP"));
    REQUIRE(r.replies.size() == 1);  // the STATUS, nothing for the STOP
    // Its window is now out of step: the next good frame gets an error.
    auto next = r.ask(make_command(Command::GetStats));
    REQUIRE_FALSE(next.empty());
    CHECK(next[0].type == static_cast<std::uint8_t>(PacketType::Error));
  }
  SECTION("written when the reply's last byte arrives") {
    Rig r;
    r.write(make_command(Command::Forward, 0, 50), 0);
    r.run_until(1000 * kMs);
    REQUIRE(r.replies.size() == 1);
    r.write(make_command(Command::Stop), r.replies[0].at_us);
    r.run_until(2000 * kMs);
    CHECK(r.fw->stats().rx_dropped == 0);
    REQUIRE(r.replies.size() == 2);
    CHECK(is(r.replies[1].p, PacketType::Response, Response::Ok));
    CHECK(r.saw("rx COMMAND STOP"));
    CHECK_FALSE(r.fw->moving());
  }
}

TEST_CASE(
    "the receive ring holds 63 bytes and drops exactly what does not fit while the loop "
    "is blocked",
    "[alex][sim]") {
  // GET_STATS, then N bytes right behind it: they arrive one byte time apart
  // while the loop sits 76 byte times in Serial.write.
  for (std::size_t n : {40u, 63u, 64u, 70u, 76u, 100u}) {
    INFO(n << " bytes behind the request");
    Rig r;
    r.write(make_command(Command::GetStats), 0);
    r.write_bytes(std::vector<std::uint8_t>(n, 0x00), 0);
    r.run_until(1000 * kMs);
    const std::size_t during_block = std::min<std::size_t>(n, 76);
    const std::size_t expected = during_block > 63 ? during_block - 63 : 0;
    CHECK(r.fw->stats().rx_dropped == expected);
    CHECK(r.fw->stats().rx_bytes == kFrameSize + n);
    CHECK(r.fw->stats().rx_ring_peak == std::min<std::size_t>(n, 63));
    CHECK(r.fw->receiver().counter() == n - expected);  // what survived is in the window
    CHECK(r.saw("rx dropped " + std::to_string(expected) + " bytes") == (expected > 0));
    REQUIRE(r.replies.size() == 1);
    CHECK(is(r.replies[0].p, PacketType::Response, Response::Status));
  }
}

TEST_CASE(
    "one stray byte needs exactly 139 trickled zeros to re-align, the reply 1.9-2.6 ms "
    "after the last zero",
    "[alex][sim]") {
  struct Case {
    int baud;
    std::int64_t lo_us, hi_us;  // the answer after the last zero
  };
  // 9600: §10's measured range; 57600: two byte times plus at most a loop turn.
  for (const Case c : {Case{9600, 1900, 2600}, Case{57600, 340, 390}}) {
    INFO("baud " << c.baud);
    Rig r(at_baud(c.baud));
    CHECK(is(r.ask(make_command(Command::GetStats)).at(0), PacketType::Response, Response::Status));
    r.write_bytes({0x42}, r.now());
    // Every later valid frame is now out of window.
    for (int i = 0; i < 3; ++i) {
      auto a = r.ask(make_command(Command::GetStats));
      REQUIRE(a.size() == 1);
      CHECK(is(a[0], PacketType::Error, Response::BadPacket));
    }
    CHECK(r.saw("desync"));
    // Re-align as the host does (§4.4): one zero, wait 5 ms for an answer.
    const std::size_t before = r.byte_at.size();
    int zeros = 0;
    std::int64_t last_zero = 0;
    while (r.byte_at.size() == before && zeros < 300) {
      last_zero = r.now();
      r.write_bytes({0x00}, last_zero);
      ++zeros;
      r.run_until(last_zero + 5 * kMs);
    }
    CHECK(zeros == 139);
    REQUIRE(r.byte_at.size() > before);
    const std::int64_t answer = r.byte_at[before] - last_zero;
    CHECK(answer >= c.lo_us);
    CHECK(answer <= c.hi_us);
    // Let the answer finish (the loop is blocked while it goes out), then
    // the next frame is in step again.
    r.advance_ms(500);
    CHECK(is(r.replies.back().p, PacketType::Error, Response::BadPacket));
    auto ok = r.ask(make_command(Command::GetStats));
    REQUIRE(ok.size() == 1);
    CHECK(is(ok[0], PacketType::Response, Response::Status));
    CHECK(r.saw("realigned"));
    CHECK(r.fw->stats().rx_dropped == 0);
  }
}

TEST_CASE(
    "at 57600 the same buffers cost 170 us per byte: 47.6 ms per exchange, 12.92 ms in "
    "Serial.write, 13 bytes lost behind a request",
    "[alex][sim]") {
  Rig r(at_baud(57600));
  r.write(make_command(Command::GetStats), 0);
  r.run_until(200 * kMs);
  REQUIRE(r.byte_at.size() == kFrameSize);
  CHECK(r.byte_at.front() >= 141 * 170);  // after the request's 140th byte
  CHECK(r.byte_at.front() <= 141 * 170 + 50);
  CHECK(r.byte_at.back() >= 280 * 170);  // 47.6 ms
  CHECK(r.byte_at.back() <= 280 * 170 + 50);
  CHECK(r.fw->stats().last_block_us == 76 * 170);

  Rig c(at_baud(57600));
  c.write(make_command(Command::Forward, 0, 50), 0);
  c.write(make_command(Command::Stop), 0);
  c.run_until(500 * kMs);
  CHECK(c.fw->stats().rx_dropped == 13);
  CHECK_FALSE(c.saw("rx COMMAND STOP"));
  CHECK(c.fw->moving());
}

// ---------------------------------------------------------------------------
// The course receiver (alex-protocol.md §4.3)

TEST_CASE(
    "course receiver: a 140-byte window by counting, at most one frame per call, the "
    "rest kept for the next call",
    "[alex][sim]") {
  const auto a = frame_bytes(make_command(Command::Forward, 50, 75));
  const auto b = frame_bytes(make_command(Command::Stop));
  using R = CourseReceiver::Result;
  Packet p;

  SECTION("two frames in one chunk: the second comes out on the next call, after 1 more byte") {
    CourseReceiver rx;
    std::vector<std::uint8_t> both(a);
    both.insert(both.end(), b.begin(), b.end());
    REQUIRE(rx.deserialize(both.data(), both.size(), &p) == R::Ok);
    CHECK(p == make_command(Command::Forward, 50, 75));
    CHECK(rx.leftover() == 140);
    CHECK(rx.counter() == 0);
    const std::uint8_t extra = 0;
    REQUIRE(rx.deserialize(&extra, 1, &p) == R::Ok);
    CHECK(p == make_command(Command::Stop));
    CHECK(rx.leftover() == 1);  // the extra byte opens the next window
    const std::vector<std::uint8_t> rest(138, 0);
    CHECK(rx.deserialize(rest.data(), rest.size(), &p) == R::Incomplete);
    CHECK(rx.counter() == 139);
  }
  SECTION("a frame in 20 chunks of 7 bytes") {
    CourseReceiver rx;
    for (std::size_t i = 0; i + 7 < a.size(); i += 7)
      CHECK(rx.deserialize(a.data() + i, 7, &p) == R::Incomplete);
    CHECK(rx.deserialize(a.data() + 133, 7, &p) == R::Ok);
    CHECK(p == make_command(Command::Forward, 50, 75));
  }
  SECTION("a chunk across a frame boundary: its tail starts the next window") {
    CourseReceiver rx;
    CHECK(rx.deserialize(a.data(), 130, &p) == R::Incomplete);
    CHECK(rx.counter() == 130);
    std::vector<std::uint8_t> mid(a.begin() + 130, a.end());
    mid.insert(mid.end(), b.begin(), b.begin() + 10);
    REQUIRE(rx.deserialize(mid.data(), mid.size(), &p) == R::Ok);
    CHECK(rx.leftover() == 10);
    REQUIRE(rx.deserialize(b.data() + 10, 130, &p) == R::Ok);
    CHECK(p == make_command(Command::Stop));
    CHECK(rx.leftover() == 0);
    CHECK(rx.counter() == 0);
  }
  SECTION("bad magic, bad checksum, a dataSize past the buffer") {
    CourseReceiver rx;
    auto bad = a;
    bad[0] = 0x00;
    CHECK(rx.deserialize(bad.data(), bad.size(), &p) == R::BadMagic);
    bad = a;
    bad[30] ^= 0x01;
    CHECK(rx.deserialize(bad.data(), bad.size(), &p) == R::BadChecksum);
    bad = a;
    bad[4] = 200;
    CHECK(rx.deserialize(bad.data(), bad.size(), &p) == R::BadSize);
    CHECK(rx.deserialize(a.data(), a.size(), &p) == R::Ok);  // each window stands alone
  }
  SECTION("one stray byte shifts every later window") {
    CourseReceiver rx;
    const std::uint8_t stray = 0x42;
    CHECK(rx.deserialize(&stray, 1, &p) == R::Incomplete);
    for (int i = 0; i < 3; ++i) {
      CHECK(rx.deserialize(a.data(), a.size(), &p) == R::BadMagic);
      CHECK(rx.leftover() == 1);
    }
  }
}

TEST_CASE(
    "one packet per loop turn: a second frame read in the same chunk waits in the leftover "
    "buffer until another byte arrives",
    "[alex][sim]") {
  // A firmware whose loop takes 400 ms (a delay() in loop) with a ring big
  // enough to hold both frames, so one turn reads GET_STATS and STOP at once.
  UartConfig slow;
  slow.rx_ring = 1024;
  slow.loop_us = 400 * kMs;
  Rig r(slow);
  std::vector<std::uint8_t> both = frame_bytes(make_command(Command::GetStats));
  const auto stop = frame_bytes(make_command(Command::Stop));
  both.insert(both.end(), stop.begin(), stop.end());
  r.write_bytes(both, 0);
  r.run_until(3000 * kMs);
  CHECK(r.fw->stats().rx_ring_peak == 280);
  REQUIRE(r.replies.size() == 1);
  CHECK(is(r.replies[0].p, PacketType::Response, Response::Status));
  CHECK_FALSE(r.saw("rx COMMAND STOP"));
  CHECK(r.fw->receiver().leftover() == 140);
  // One more byte: the next turn reads it and the STOP comes out.
  r.write_bytes({0x00}, r.now());
  r.run_until(4000 * kMs);
  REQUIRE(r.replies.size() == 2);
  CHECK(is(r.replies[1].p, PacketType::Response, Response::Ok));
  CHECK(r.saw("rx COMMAND STOP"));
  CHECK(r.fw->receiver().leftover() == 1);
  CHECK(r.fw->stats().dispatched == 2);
  CHECK(r.fw->stats().max_dispatch_per_turn == 1);
}

// ---------------------------------------------------------------------------
// Replies, motion, HELLO, faults, variants

TEST_CASE("sim firmware: OK before moving, ticks advance, the target stops it", "[alex][sim]") {
  Rig b;
  auto r = b.ask(make_command(Command::Forward, 10, 100), 300);
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  CHECK(b.fw->moving());
  CHECK(b.fw->counters()[kLeftFwd] > 0);
  CHECK(b.fw->counters()[kRightFwd] == b.fw->counters()[kLeftFwd]);
  b.advance_ms(10000);
  CHECK_FALSE(b.fw->moving());
  CHECK(b.saw("motion stopped (target reached)"));
  CHECK(b.fw->counters()[kFwdCm] == 10);    // forward distance, cm
  CHECK(b.fw->counters()[kLeftFwd] == 94);  // 10 cm at 9.4 ticks/cm
  r = b.ask(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(r[0].params[kFwdCm] == 10);
  CHECK(r[0].params[kLeftFwd] == 94);
  r = b.ask(make_command(Command::ClearStats, 0));
  CHECK(is(r.at(0), PacketType::Response, Response::Ok));
  r = b.ask(make_command(Command::GetStats));
  CHECK(r.at(0).params == std::array<std::uint32_t, kParams>{});
}

TEST_CASE("sim firmware: reverse and turns count the right wheels, speed scales the rate",
          "[alex][sim]") {
  Rig b;
  b.ask(make_command(Command::Reverse, 5, 100));
  b.advance_ms(10000);
  CHECK(b.fw->counters()[kLeftRev] == 47);
  CHECK(b.fw->counters()[kRevCm] == 5);
  b.ask(make_command(Command::TurnLeft, 90, 100));
  b.advance_ms(10000);
  CHECK(b.fw->counters()[kLRT] == 90);  // left wheel back, right wheel forward
  CHECK(b.fw->counters()[kRFT] == 90);
  CHECK(b.fw->counters()[kLFT] == 0);
  b.ask(make_command(Command::TurnRight, 45, 100));
  b.advance_ms(10000);
  CHECK(b.fw->counters()[kLFT] == 45);
  CHECK(b.fw->counters()[kRRT] == 45);
  CHECK_FALSE(b.fw->moving());
  // Half power, half the ticks in the same time; 0 cm means "keep going";
  // power above 100 % is clamped.
  const auto ticks_in_a_second = [](std::uint32_t power) {
    Rig r;
    r.ask(make_command(Command::Forward, 0, power));
    REQUIRE(r.fw->moving());
    const auto before = r.fw->counters()[kLeftFwd];
    r.advance_ms(1000);
    CHECK(r.fw->moving());
    return static_cast<double>(r.fw->counters()[kLeftFwd] - before);
  };
  CHECK(ticks_in_a_second(100) == Approx(376).margin(1));  // 40 cm/s * 9.4 ticks/cm
  CHECK(ticks_in_a_second(50) == Approx(188).margin(1));
  CHECK(ticks_in_a_second(250) == Approx(376).margin(1));
}

TEST_CASE("sim firmware: STOP answers OK and the counters stay put", "[alex][sim]") {
  Rig b;
  b.ask(make_command(Command::Forward, 0, 80));
  b.advance_ms(500);
  auto r = b.ask(make_command(Command::Stop));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  CHECK_FALSE(b.fw->moving());
  const auto at_stop = b.fw->counters();
  CHECK(at_stop[kLeftFwd] > 0);
  b.advance_ms(5000);
  CHECK(b.fw->counters() == at_stop);
  CHECK(b.saw("rx COMMAND STOP p0=0 p1=0"));
  CHECK(b.saw("tx RESPONSE OK"));
  CHECK(b.saw("motion stopped (STOP)"));
}

TEST_CASE("sim firmware: bad command, bad checksum, HELLO ignored, other types silent",
          "[alex][sim]") {
  Rig b;
  Packet unknown = make_command(Command::Stop);
  unknown.command = 9;
  auto r = b.ask(unknown);
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Error, Response::BadCommand));
  auto f = frame_bytes(make_command(Command::Stop));
  f[30] ^= 0x01;
  r = b.ask_bytes(f);
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Error, Response::BadChecksum));
  CHECK(b.saw("rx BAD_CHECKSUM"));
  CHECK(b.ask(make_hello()).empty());
  CHECK(b.ask(make_response(Response::Ok)).empty());
  CHECK(b.ask(make_message("hello")).empty());
  // A frame written in 20 pieces of 7 bytes, 10 ms apart, still works.
  const auto g = frame_bytes(make_command(Command::GetStats));
  const std::size_t first = b.replies.size();
  for (std::size_t i = 0; i < g.size(); i += 7) {
    b.write_bytes(std::vector<std::uint8_t>(g.begin() + static_cast<std::ptrdiff_t>(i),
                                            g.begin() + static_cast<std::ptrdiff_t>(i + 7)),
                  b.now());
    b.advance_ms(10);
  }
  b.advance_ms(500);
  REQUIRE(b.replies.size() == first + 1);
  CHECK(is(b.replies.back().p, PacketType::Response, Response::Status));
}

TEST_CASE("sim firmware: the resynchronising receiver (strict off) survives stray bytes",
          "[alex][sim]") {
  Rig b;
  b.fw->set_strict(false);
  b.write_bytes({0x42, 0xff, 0x00}, 0);
  auto r = b.ask(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(b.saw("rx skipped 3 bytes"));
  CHECK_FALSE(b.saw("desync"));
}

TEST_CASE("sim firmware: HELLO answered, or required first", "[alex][sim]") {
  SECTION("answer") {
    Rig b;
    b.fw->set_hello(HelloMode::Answer);
    auto r = b.ask(make_hello());
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Response, Response::Ok));
    CHECK(b.ask(make_hello()).size() == 1);
  }
  SECTION("require") {
    Rig b;
    b.fw->set_hello(HelloMode::Require);
    auto r = b.ask(make_command(Command::Forward, 10, 50));
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Error, Response::BadResponse));
    CHECK_FALSE(b.fw->moving());
    // Frame errors are still reported as such while waiting.
    auto f = frame_bytes(make_command(Command::Stop));
    f[50] ^= 0x04;
    CHECK(is(b.ask_bytes(f).at(0), PacketType::Error, Response::BadChecksum));
    r = b.ask(make_hello());
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Response, Response::Ok));
    r = b.ask(make_command(Command::GetStats));
    CHECK(is(r.at(0), PacketType::Response, Response::Status));
    // After waitForHello() the main loop ignores HELLO.
    CHECK(b.ask(make_hello()).empty());
    // A power cycle needs a new HELLO, and zeroes everything.
    b.ask(make_command(Command::Forward, 0, 100));
    REQUIRE(b.fw->moving());
    b.fw->reboot();
    CHECK_FALSE(b.fw->moving());
    CHECK(b.fw->counters() == std::array<std::uint32_t, kParams>{});
    CHECK(b.saw("reboot"));
    CHECK(
        is(b.ask(make_command(Command::GetStats)).at(0), PacketType::Error, Response::BadResponse));
    CHECK(is(b.ask(make_hello()).at(0), PacketType::Response, Response::Ok));
  }
}

TEST_CASE("sim firmware faults: drop, corrupt, garbage, every Nth", "[alex][sim]") {
  Rig b;
  b.fw->faults().drop_next = 1;
  CHECK(b.ask(make_command(Command::GetStats)).empty());
  CHECK(b.saw("fault drop RESPONSE STATUS"));
  CHECK(b.ask(make_command(Command::GetStats)).size() == 1);
  b.fw->faults().corrupt_next = 1;
  CHECK(b.ask(make_command(Command::GetStats)).empty());
  CHECK(b.host.stats().bad_checksum == 1);
  CHECK(b.saw("fault corrupt RESPONSE STATUS"));
  // A debug print goes out at the loop's next turn.
  b.fw->send_garbage(50);
  b.advance_ms(100);
  CHECK(b.saw("fault garbage 50 bytes"));
  CHECK(b.ask(make_command(Command::GetStats)).size() == 1);
  CHECK(b.host.stats().garbage_bytes >= 50);

  Rig every;
  every.fw->faults().drop_every = 3;
  every.fw->faults().garbage_every = 2;
  std::size_t answered = 0;
  for (int i = 0; i < 6; ++i)
    answered += every.ask(make_hello()).size() + every.ask(make_command(Command::Stop)).size();
  CHECK(answered == 4);  // 6 replies, every 3rd dropped
  CHECK(every.host.stats().garbage_bytes > 0);
}

TEST_CASE(
    "a team variant sends MESSAGE STOPPED right after STOP's OK: back to back, and a "
    "frame written when the OK has arrived collides with it",
    "[alex][sim]") {
  Rig r;
  r.fw->set_message_after_stop(true);
  r.ask(make_command(Command::Forward, 0, 50));
  const std::size_t first = r.replies.size(), first_byte = r.byte_at.size();
  auto got = r.ask(make_command(Command::Stop));
  REQUIRE(got.size() == 2);
  CHECK(is(got[0], PacketType::Response, Response::Ok));
  CHECK(got[1].type == static_cast<std::uint8_t>(PacketType::Message));
  CHECK(message_text(got[1]) == "STOPPED");
  CHECK_FALSE(r.fw->moving());
  // Back to back on the line: the MESSAGE's first byte one byte time after
  // the OK's last.
  REQUIRE(r.byte_at.size() == first_byte + 280);
  CHECK(r.byte_at[first_byte + 140] - r.byte_at[first_byte + 139] == 1040);
  CHECK(r.replies[first + 1].at_us - r.replies[first].at_us == 140 * 1040);

  // A host that writes as soon as its STOP is acknowledged collides.
  Rig c;
  c.fw->set_message_after_stop(true);
  c.ask(make_command(Command::Forward, 0, 50));
  c.write(make_command(Command::Stop), c.now());
  const std::size_t before = c.replies.size(), before_bytes = c.byte_at.size();
  while (c.byte_at.size() == before_bytes) c.advance_ms(1);
  // Written the moment the OK's last byte is in.
  c.run_until(c.byte_at[before_bytes] + 139 * 1040);
  REQUIRE(c.replies.size() == before + 1);
  CHECK(is(c.replies.back().p, PacketType::Response, Response::Ok));
  c.write(make_command(Command::GetStats), c.now());
  c.advance_ms(1500);
  CHECK(c.fw->stats().rx_dropped == 13);
  CHECK_FALSE(c.saw("rx COMMAND GET_STATS"));
  REQUIRE(c.replies.size() == before + 2);  // the OK and the MESSAGE, nothing more
  CHECK(c.replies.back().p.type == static_cast<std::uint8_t>(PacketType::Message));
}

TEST_CASE(
    "lenient (opt-in) accepts what a real Uno drops: a frame written during a reply is "
    "answered",
    "[alex][sim]") {
  Rig r;
  REQUIRE(r.fw->set_lenient(true));
  CHECK_FALSE(r.fw->strict());  // lenient resynchronises unless told otherwise
  r.write(make_command(Command::Forward, 0, 50), 0);
  r.write(make_command(Command::Stop), 50 * kMs);
  r.run_until(1500 * kMs);
  CHECK(r.fw->stats().rx_dropped == 0);
  CHECK(r.fw->stats().blocked_writes == 0);
  REQUIRE(r.replies.size() == 2);
  CHECK(r.saw("rx COMMAND STOP"));
  CHECK_FALSE(r.fw->moving());
  // Counting framing in the lenient model: a stray byte still shifts windows.
  r.fw->set_strict(true);
  r.write_bytes({0x42}, r.now());
  auto a = r.ask(make_command(Command::GetStats));
  REQUIRE(a.size() == 1);
  CHECK(is(a[0], PacketType::Error, Response::BadPacket));
  // An instantaneous line exists only in the lenient model.
  Rig instant(at_baud(0));
  CHECK(instant.fw->lenient());
  CHECK_FALSE(instant.fw->set_lenient(false));
  auto s = instant.ask(make_command(Command::GetStats), 0);
  REQUIRE(s.size() == 1);
  CHECK(is(s[0], PacketType::Response, Response::Status));
}

// ---------------------------------------------------------------------------
// The real alex-sim process.

namespace {
// "event wall_ms=W mono_ms=M what..."
struct Event {
  std::int64_t wall_ms = 0, mono_ms = 0;
  std::string what;
};
bool parse_event(const std::string& line, Event& e) {
  std::istringstream in(line);
  std::string tag, wall, mono;
  if (!(in >> tag >> wall >> mono) || tag != "event" || wall.rfind("wall_ms=", 0) != 0 ||
      mono.rfind("mono_ms=", 0) != 0)
    return false;
  const std::string w = wall.substr(8), m = mono.substr(8);
  const auto digits = [](const std::string& x) {
    return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(w) || !digits(m)) return false;
  e.wall_ms = std::stoll(w);
  e.mono_ms = std::stoll(m);
  std::getline(in >> std::ws, e.what);
  return !e.what.empty();
}

struct SimProcess {
  test::TempDir dir{"alexsim"};
  std::string tty = dir / "tty", control = dir / "control";
  test::Process proc;
  explicit SimProcess(std::vector<std::string> extra = {}, const std::string& baud = "115200") {
    std::vector<std::string> argv{ALEX_SIM_BIN, "--link", tty, "--control", control};
    if (!baud.empty()) {
      argv.push_back("--baud");
      argv.push_back(baud);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = test::Process(argv, dir / "sim");
    test::wait_until(
        [&] { return ::access(tty.c_str(), F_OK) == 0 && ::access(control.c_str(), F_OK) == 0; },
        5000ms);
  }
  void ctl(const std::string& line) {
    const int fd = ::open(control.c_str(), O_WRONLY | O_NONBLOCK);
    REQUIRE(fd >= 0);
    const std::string l = line + "\n";
    REQUIRE(::write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
    ::close(fd);
    // Applied once the sim logs it.
    REQUIRE(proc.wait_for_output("control " + line, 3000ms));
  }
  // mono_ms of the first event line containing `needle`, at or after `since`.
  std::optional<std::int64_t> event_mono(const std::string& needle, std::int64_t since = 0) {
    std::istringstream in(proc.out());
    std::string line;
    while (std::getline(in, line)) {
      Event e;
      if (!parse_event(line, e)) continue;
      if (e.mono_ms >= since && e.what.find(needle) != std::string::npos) return e.mono_ms;
    }
    return std::nullopt;
  }
};

// Reads whatever is waiting into the decoder; false if the device is gone.
bool pump(SerialLink& s, StreamDecoder& d) {
  std::uint8_t buf[512];
  auto n = s.read_some(buf, sizeof buf);
  if (!n) return false;
  d.feed(buf, *n);
  return true;
}

std::optional<Packet> receive(SerialLink& s, StreamDecoder& d,
                              std::chrono::milliseconds timeout = 3000ms) {
  std::optional<Packet> got;
  test::wait_until(
      [&] {
        pump(s, d);
        Packet r;
        if (d.next(r)) got = r;
        return got.has_value();
      },
      timeout, 1ms);
  return got;
}

// Sends `p` and waits up to `timeout` for one answer.
std::optional<Packet> ask(SerialLink& s, StreamDecoder& d, const Packet& p,
                          std::chrono::milliseconds timeout = 3000ms) {
  auto f = encode_frame(p);
  if (!s.write_all(f.data(), f.size(), 1000)) return std::nullopt;
  return receive(s, d, timeout);
}
}  // namespace

TEST_CASE("alex-sim at 9600 baud: device line, commands, telemetry, STOP, paced line",
          "[alex][sim][process]") {
  SimProcess sim({}, "");  // the default line rate, 9600
  // The first stdout line names the device, and --link points at it.
  const std::string out = sim.proc.out();
  REQUIRE(out.rfind("device /dev/pts/", 0) == 0);
  const std::string dev = out.substr(7, out.find('\n') - 7);
  char target[PATH_MAX] = {};
  REQUIRE(::readlink(sim.tty.c_str(), target, sizeof target - 1) > 0);
  CHECK(dev == target);
  CHECK(sim.proc.wait_for_output("start device=" + dev +
                                     " baud=9600 model=faithful framing=count hello=ignore "
                                     "byte_us=1040 rx_ring=64 tx_ring=64 loop_us=50",
                                 3000ms));

  SerialLink s;
  REQUIRE(s.open(sim.tty, 9600));
  StreamDecoder d;
  auto r = ask(s, d, make_command(Command::Forward, 0, 100));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Ok));

  // Ticks keep increasing while it moves.
  const auto t0 = std::chrono::steady_clock::now();
  auto a = ask(s, d, make_command(Command::GetStats));
  const auto rtt = std::chrono::steady_clock::now() - t0;
  REQUIRE(a);
  CHECK(is(*a, PacketType::Response, Response::Status));
  auto a2 = ask(s, d, make_command(Command::GetStats));
  REQUIRE(a2);
  CHECK(a->params[kLeftFwd] > 0);
  CHECK(a2->params[kLeftFwd] > a->params[kLeftFwd]);
  // 280 bytes at 1040 us each: 291 ms at least, however fast the machine.
  CHECK(rtt >= 285ms);
  CHECK(rtt < 3000ms);

  // STOP: OK, then the ticks hold still.  The "Arduino" logs the moment STOP
  // arrived, between our send and its answer.
  const std::int64_t sent = steady_ms();
  auto st = ask(s, d, make_command(Command::Stop));
  const std::int64_t answered = steady_ms();
  REQUIRE(st);
  CHECK(is(*st, PacketType::Response, Response::Ok));
  auto stop_at = sim.event_mono("rx COMMAND STOP p0=0 p1=0");
  REQUIRE(stop_at);
  CHECK(*stop_at >= sent);
  CHECK(*stop_at <= answered);
  auto b1 = ask(s, d, make_command(Command::GetStats));
  std::this_thread::sleep_for(300ms);
  auto b2 = ask(s, d, make_command(Command::GetStats));
  REQUIRE(b1);
  REQUIRE(b2);
  CHECK(b1->params == b2->params);
  // Unknown commands get BAD_COMMAND.
  Packet bad = make_command(Command::Stop);
  bad.command = 7;
  auto e = ask(s, d, bad);
  REQUIRE(e);
  CHECK(is(*e, PacketType::Error, Response::BadCommand));
  CHECK(d.stats().bad_checksum == 0);
  CHECK(d.stats().garbage_bytes == 0);

  // Every event line has both timestamps.
  std::istringstream lines(sim.proc.out());
  std::string line;
  std::getline(lines, line);  // device line
  int events = 0;
  while (std::getline(lines, line)) {
    Event ev;
    CHECK(parse_event(line, ev));
    // Wall clock agrees with ours to within a generous minute.
    CHECK(std::abs(ev.wall_ms - wall_clock_us() / 1000) < 60000);
    ++events;
  }
  CHECK(events >= 12);
}

TEST_CASE(
    "alex-sim --strict (counting, the default): a stray byte desynchronises it, zeros "
    "re-align it",
    "[alex][sim][process]") {
  SimProcess sim({"--strict"});
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  REQUIRE(ask(s, d, make_command(Command::GetStats)));
  const std::uint8_t stray = 0x42;
  REQUIRE(s.write_all(&stray, 1, 1000));
  auto r = ask(s, d, make_command(Command::GetStats));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Error, Response::BadPacket));
  CHECK(sim.proc.wait_for_output("desync", 2000ms));
  // One zero at a time until any answer starts to arrive (§4.4).  The window
  // needs 139 more bytes; if the machine is slow and the answer starts late,
  // extra zeros knock it out again and the host simply re-aligns once more.
  std::optional<Packet> ok;
  int first_round_zeros = 0;
  for (int round = 0; round < 3 && !(ok && is(*ok, PacketType::Response, Response::Status));
       ++round) {
    int zeros = 0;
    bool answered = false;
    while (!answered && zeros < 300) {
      const std::uint8_t z = 0;
      REQUIRE(s.write_all(&z, 1, 1000));
      ++zeros;
      answered = test::wait_until(
          [&] {
            pump(s, d);
            return d.buffered() > 0;
          },
          12ms, 1ms);
    }
    REQUIRE(answered);
    if (round == 0) first_round_zeros = zeros;
    auto back = receive(s, d);
    REQUIRE(back);
    CHECK(is(*back, PacketType::Error, Response::BadPacket));
    ok = ask(s, d, make_command(Command::GetStats));
    REQUIRE(ok);
  }
  CHECK(is(*ok, PacketType::Response, Response::Status));
  // Our frame's last byte opened the window: 139 more close it (more only if
  // this machine was too slow to see the answer before the next zero).
  CHECK(first_round_zeros >= 139);
  CHECK(sim.proc.wait_for_output("realigned", 2000ms));
  // Switched to the resync receiver at run time, stray bytes no longer matter.
  sim.ctl("strict off");
  REQUIRE(s.write_all(&stray, 1, 1000));
  auto fine = ask(s, d, make_command(Command::GetStats));
  REQUIRE(fine);
  CHECK(is(*fine, PacketType::Response, Response::Status));
}

TEST_CASE(
    "alex-sim paces the line and drops what a real Uno drops: a STOP written right behind "
    "a request loses 13 bytes, unless --lenient",
    "[alex][sim][process]") {
  // One write of GET_STATS + STOP, as a host that does not wait for the
  // exchange in flight.  The pty delivers both at once; the model puts them
  // on the 9600-baud line one after the other.
  std::vector<std::uint8_t> both;
  for (const auto& p : {make_command(Command::GetStats), make_command(Command::Stop)}) {
    const auto f = encode_frame(p);
    both.insert(both.end(), f.begin(), f.end());
  }
  SECTION("faithful (default)") {
    SimProcess sim({}, "9600");
    SerialLink s;
    REQUIRE(s.open(sim.tty, 9600));
    StreamDecoder d;
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(s.write_all(both.data(), both.size(), 1000));
    auto r = receive(s, d);
    REQUIRE(r);
    CHECK(is(*r, PacketType::Response, Response::Status));
    CHECK(std::chrono::steady_clock::now() - t0 >= 285ms);  // 280 byte times
    CHECK_FALSE(receive(s, d, 1000ms));                     // the STOP never took effect
    CHECK(sim.proc.wait_for_output("rx dropped 13 bytes (receive ring full, 63 held", 2000ms));
    CHECK(sim.proc.out().find("rx COMMAND STOP") == std::string::npos);
    CHECK(sim.proc.out().find("loop blocked 79.04 ms in Serial.write") != std::string::npos);
  }
  SECTION("--lenient") {
    SimProcess sim({"--lenient"}, "9600");
    SerialLink s;
    REQUIRE(s.open(sim.tty, 9600));
    StreamDecoder d;
    REQUIRE(s.write_all(both.data(), both.size(), 1000));
    auto a = receive(s, d);
    auto b = receive(s, d);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(is(*a, PacketType::Response, Response::Status));
    CHECK(is(*b, PacketType::Response, Response::Ok));
    CHECK(sim.proc.out().find("model=lenient framing=resync") != std::string::npos);
    CHECK(sim.proc.out().find("rx dropped") == std::string::npos);
  }
}

TEST_CASE("alex-sim --message-after-stop: the OK for STOP is followed by a MESSAGE",
          "[alex][sim][process]") {
  SimProcess sim({"--message-after-stop"});
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  auto r = ask(s, d, make_command(Command::Stop));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Ok));
  auto m = receive(s, d);
  REQUIRE(m);
  CHECK(m->type == static_cast<std::uint8_t>(PacketType::Message));
  CHECK(message_text(*m) == "STOPPED");
  // Switched off at run time: STOP gets its OK alone.
  sim.ctl("message-after-stop off");
  REQUIRE(ask(s, d, make_command(Command::Stop)));
  CHECK_FALSE(receive(s, d, 300ms));
}

TEST_CASE("alex-sim --hello require: nothing moves until HELLO", "[alex][sim][process]") {
  SimProcess sim({"--hello", "require"});
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  auto r = ask(s, d, make_command(Command::Forward, 0, 100));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Error, Response::BadResponse));
  r = ask(s, d, make_hello());
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Ok));
  r = ask(s, d, make_command(Command::GetStats));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Status));
  CHECK(r->params[kLeftFwd] == 0);  // the refused FORWARD never moved it
  // Switched to the course default at run time: HELLO gets no answer.
  sim.ctl("hello ignore");
  CHECK_FALSE(ask(s, d, make_hello(), 400ms));
  sim.ctl("hello answer");
  r = ask(s, d, make_hello());
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Ok));
}

TEST_CASE("alex-sim faults at run time: drop, corrupt, garbage, delay, bad commands",
          "[alex][sim][process]") {
  SimProcess sim;
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  sim.ctl("drop 1");
  CHECK_FALSE(ask(s, d, make_command(Command::GetStats), 500ms));
  CHECK(sim.proc.wait_for_output("fault drop RESPONSE STATUS", 2000ms));
  CHECK(ask(s, d, make_command(Command::GetStats)));
  sim.ctl("corrupt 1");
  CHECK_FALSE(ask(s, d, make_command(Command::GetStats), 500ms));
  CHECK(d.stats().bad_checksum == 1);
  sim.ctl("garbage 100");
  auto r = ask(s, d, make_command(Command::GetStats));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Status));
  CHECK(d.stats().garbage_bytes >= 100);
  sim.ctl("delay 400");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(ask(s, d, make_command(Command::GetStats)));
  CHECK(std::chrono::steady_clock::now() - t0 >= 350ms);
  sim.ctl("delay 0");
  // Nonsense on the control channel is reported and ignored.
  const int fd = ::open(sim.control.c_str(), O_WRONLY | O_NONBLOCK);
  REQUIRE(fd >= 0);
  const std::string junk = "fly 3\ndrop many\n";
  REQUIRE(::write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
  ::close(fd);
  CHECK(sim.proc.wait_for_output("control: unknown command 'drop many'", 2000ms));
  CHECK(sim.proc.out().find("control: unknown command 'fly 3'") != std::string::npos);
  CHECK(ask(s, d, make_command(Command::GetStats)));
  // A frame with a bad checksum from the host gets ERROR BAD_CHECKSUM.
  auto f = encode_frame(make_command(Command::Stop));
  f[10] ^= 0x80;
  REQUIRE(s.write_all(f.data(), f.size(), 1000));
  r = receive(s, d);
  REQUIRE(r);
  CHECK(is(*r, PacketType::Error, Response::BadChecksum));
}

TEST_CASE("alex-sim fault flags: every Nth reply dropped, corrupted, or after garbage",
          "[alex][sim][process]") {
  // An instantaneous line (--baud 0) exists only in the lenient model.
  SimProcess sim({"--lenient", "--drop-every", "2", "--corrupt-every", "3", "--garbage-every", "5"},
                 "0");
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  // Replies 1..6: 2, 4, 6 dropped; 3 corrupted; 5 after garbage; 1 clean.
  int good = 0;
  for (int i = 0; i < 6; ++i)
    if (ask(s, d, make_command(Command::GetStats), 300ms)) ++good;
  CHECK(good == 2);
  CHECK(d.stats().bad_checksum == 1);
  CHECK(d.stats().garbage_bytes > 0);
}

TEST_CASE("alex-sim vanishes: reads fail, the device comes back and reopens",
          "[alex][sim][process]") {
  SimProcess sim;
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  char before[PATH_MAX] = {};
  REQUIRE(::readlink(sim.tty.c_str(), before, sizeof before - 1) > 0);
  REQUIRE(ask(s, d, make_command(Command::Forward, 0, 100)));
  std::this_thread::sleep_for(100ms);
  sim.ctl("vanish 2000");
  bool failed = test::wait_until(
      [&] {
        std::uint8_t buf[64];
        return !s.read_some(buf, sizeof buf).ok();
      },
      3000ms);
  CHECK(failed);
  s.close();
  // While it is gone its name names nothing (a freed pty number may be
  // another program's terminal by now).
  struct stat st {};
  CHECK(::lstat(sim.tty.c_str(), &st) != 0);
  REQUIRE(sim.proc.wait_for_output("reappear device /dev/pts/", 8000ms));
  REQUIRE(s.open(sim.tty, 115200));
  d.reset();
  auto r = ask(s, d, make_command(Command::GetStats));
  REQUIRE(r);
  // It lost power with the port: motors off, counters zero.
  CHECK(r->params[kLeftFwd] == 0);
  CHECK(sim.proc.out().find("reboot") != std::string::npos);
  char after[PATH_MAX] = {};
  REQUIRE(::readlink(sim.tty.c_str(), after, sizeof after - 1) > 0);
  CHECK(sim.proc.out().find(std::string("reappear device ") + after) != std::string::npos);
}

TEST_CASE("alex-sim --vanish-after-ms: the device disappears by itself and comes back",
          "[alex][sim][process]") {
  SimProcess sim({"--vanish-after-ms", "600", "--vanish-for-ms", "500"});
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  REQUIRE(ask(s, d, make_command(Command::GetStats)));
  CHECK(test::wait_until(
      [&] {
        std::uint8_t buf[64];
        return !s.read_some(buf, sizeof buf).ok();
      },
      5000ms));
  s.close();
  REQUIRE(sim.proc.wait_for_output("reappear device", 5000ms));
  REQUIRE(s.open(sim.tty, 115200));
  CHECK(ask(s, d, make_command(Command::GetStats)));
}

TEST_CASE("alex-sim exits cleanly on SIGTERM and SIGINT, removing its link and FIFO",
          "[alex][sim][process]") {
  for (int sig : {SIGTERM, SIGINT}) {
    SimProcess sim;
    struct stat st {};
    REQUIRE(::lstat(sim.tty.c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    REQUIRE(::stat(sim.control.c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    sim.proc.signal(sig);
    CHECK(sim.proc.wait(3000ms) == 0);
    CHECK(::lstat(sim.tty.c_str(), &st) != 0);
    CHECK(::lstat(sim.control.c_str(), &st) != 0);
    CHECK(sim.proc.out().find("exit") != std::string::npos);
  }
}

TEST_CASE("alex-sim rejects bad options", "[alex][sim][process]") {
  test::TempDir dir{"alexsim"};
  for (std::vector<std::string> bad : {std::vector<std::string>{"--hello", "maybe"},
                                       {"--baud", "-1"},
                                       {"--bogus"},
                                       {"--baud", "0"},  // a faithful Uno has a line rate
                                       {"--strict", "--framing", "resync"},
                                       {"--framing", "maybe"},
                                       {"--rx-ring", "1"},
                                       {"--loop-us", "0"}}) {
    bad.insert(bad.begin(), ALEX_SIM_BIN);
    auto r = test::run(bad, dir / "bad", {}, 5000ms);
    CHECK(r.status != 0);
    CHECK(r.out.find("device") == std::string::npos);
  }
}
