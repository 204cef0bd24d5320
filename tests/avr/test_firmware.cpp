// Our Alex firmware (firmware/alex) on a simulated ATmega328P in alex-avr,
// talked to straight over the pseudo-terminal: the course protocol's answers,
// the runner's real-time line, the Uno's buffer behaviour, the motion stops
// and the opt-in watchdog.
#include <catch2/catch.hpp>

#include <cstdio>
#include <thread>

#include "avr_env.hpp"

using namespace curvebus::test;
using namespace curvebus::test::avr;

namespace {

// Waits for `ms` of real time.
void pause_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

TEST_CASE("the firmware answers every command as the course firmware does", "[avr][firmware]") {
  TempDir dir("avr-fw");
  AvrRunner avr(dir.path(), firmware("alex.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());

  // HELLO and non-COMMAND packets get no answer.
  REQUIRE(port.write(frame(kHello, 0)));
  REQUIRE(port.write(frame(kResponse, kOk)));
  CHECK(port.read(1, 600ms).empty());

  // FORWARD 0 cm (keep going) at 60 %: OK, then the motors run.
  auto r = port.exchange(frame(kCommand, kForward, {0, 60}));
  REQUIRE(r);
  CHECK(r->type == kResponse);
  CHECK(r->code == kOk);
  REQUIRE(avr.wait_event("motors forward 60%", 0, 1000ms));
  pause_ms(300);

  // GET_STATS: STATUS with the forward counters moving.
  r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  CHECK(r->type == kResponse);
  CHECK(r->code == kStatus);
  CHECK(r->params[0] > 0);   // left forward ticks
  CHECK(r->params[1] > 0);   // right forward ticks
  CHECK(r->params[2] == 0);  // no reverse ticks
  const std::uint32_t ticks = r->params[0];

  // STOP: OK, motors off.
  const std::int64_t before_stop = now_wall_ms();
  r = port.exchange(frame(kCommand, kStop));
  REQUIRE(r);
  CHECK(r->type == kResponse);
  CHECK(r->code == kOk);
  CHECK(avr.wait_event("motors stopped", before_stop, 500ms));

  // The counters stay, CLEAR_STATS clears them all.
  r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  CHECK(r->params[0] >= ticks);
  r = port.exchange(frame(kCommand, kClearStats, {0}));
  REQUIRE(r);
  CHECK(r->type == kResponse);
  CHECK(r->code == kOk);
  r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  for (int i = 0; i < 10; ++i) CHECK(r->params[static_cast<std::size_t>(i)] == 0);

  // An unknown command: ERROR/BAD_COMMAND.
  r = port.exchange(frame(kCommand, 9));
  REQUIRE(r);
  CHECK(r->type == kError);
  CHECK(r->code == kBadCommand);

  // A bad magic number: ERROR/BAD_PACKET.  A bad checksum: ERROR/BAD_CHECKSUM.
  std::string bad = frame(kCommand, kGetStats);
  bad[0] = 0x12;
  r = port.exchange(bad);
  REQUIRE(r);
  CHECK(r->type == kError);
  CHECK(r->code == kBadPacket);
  bad = frame(kCommand, kGetStats);
  bad[136] = static_cast<char>(bad[136] ^ 0x01);
  r = port.exchange(bad);
  REQUIRE(r);
  CHECK(r->type == kError);
  CHECK(r->code == kBadChecksum);

  // A frame written in 20 chunks of 7 bytes still counts as one.
  const std::string stats = frame(kCommand, kGetStats);
  for (std::size_t i = 0; i < stats.size(); i += 7) {
    REQUIRE(port.write(stats.substr(i, 7)));
    pause_ms(3);
  }
  r = parse(port.read(140, 1000ms));
  REQUIRE(r);
  CHECK(r->code == kStatus);

  // Nothing unsolicited came in between.
  pause_ms(300);
  CHECK(port.drain().empty());
}

TEST_CASE("a GET_STATS round trip through alex-avr takes the real line time", "[avr][firmware]") {
  struct Case {
    const char* image;
    double low_ms, high_ms;  // 2 x 140 bytes of 10 bits, plus slack
  };
  for (const Case& c : {Case{"alex.elf", 280, 330}, Case{"alex-57600.elf", 45, 75}}) {
    TempDir dir("avr-rt");
    AvrRunner avr(dir.path(), firmware(c.image));
    REQUIRE(avr.ok());
    SerialPort port(avr.tty());
    REQUIRE(port.ok());
    std::vector<double> times;
    for (int i = 0; i < 5; ++i) {
      double ms = 0;
      auto r = port.exchange(frame(kCommand, kGetStats), &ms);
      REQUIRE(r);
      CHECK(r->code == kStatus);
      times.push_back(ms);
      pause_ms(50);
    }
    const double median = percentile(times, 50);
    std::printf("GET_STATS round trip through alex-avr, %s: median %.1f ms (min %.1f, max %.1f)\n",
                c.image, median, percentile(times, 0), percentile(times, 100));
    INFO(c.image << " median " << median << " ms");
    CHECK(median >= c.low_ms);
    CHECK(median <= c.high_ms);
  }
}

TEST_CASE("a frame written while the firmware sends its reply loses bytes in the receive ring",
          "[avr][firmware]") {
  // What a real Uno does (protocol specification 10): while the firmware
  // pushes a 140-byte reply through its 64-byte transmit ring it reads
  // nothing, its 63-byte receive ring fills and the rest is dropped.
  TempDir dir("avr-ring");
  AvrRunner avr(dir.path(), firmware("alex.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());
  REQUIRE(port.write(frame(kCommand, kForward, {0, 50})));
  REQUIRE(port.read(140, 1000ms).size() == 140);
  REQUIRE(avr.wait_event("motors forward", 0, 500ms));

  // GET_STATS, and a STOP as soon as the reply starts to arrive.
  REQUIRE(port.write(frame(kCommand, kGetStats)));
  REQUIRE(port.read(1, 1000ms).size() == 1);
  const std::int64_t stop_written = now_wall_ms();
  REQUIRE(port.write(frame(kCommand, kStop)));
  const std::string rest = port.read(139 + 140, 1000ms);
  CHECK(rest.size() == 139);  // the STATUS only: the STOP was not complete
  CHECK_FALSE(avr.wait_event("motors stopped", stop_written, 300ms));
  CHECK(avr.motors_at(now_wall_ms()).rfind("forward", 0) == 0);
}

TEST_CASE("a stray byte shifts the firmware's window until single zeros re-align it",
          "[avr][firmware]") {
  TempDir dir("avr-stray");
  AvrRunner avr(dir.path(), firmware("alex.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());
  auto r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  REQUIRE(avr.control("stray 1"));
  REQUIRE(avr.wait_event("inject stray", 0, 1000ms));

  // The window now starts one byte early: bad magic.
  r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  CHECK(r->type == kError);
  CHECK(r->code == kBadPacket);

  // One zero at a time until the firmware answers: 139 (its window holds the
  // frame's last byte), then a real frame works again.
  int zeros = 0;
  std::string answer;
  while (zeros < 200 && answer.empty()) {
    REQUIRE(port.write(std::string(1, '\0')));
    ++zeros;
    answer = port.read(1, 15ms);
  }
  answer += port.read(139, 1000ms);
  CHECK(zeros == 139);
  r = parse(answer);
  REQUIRE(r);
  CHECK(r->type == kError);
  CHECK(r->code == kBadPacket);
  r = port.exchange(frame(kCommand, kGetStats));
  REQUIRE(r);
  CHECK(r->code == kStatus);
}

TEST_CASE("forward, reverse and turns stop by themselves at their distance or angle",
          "[avr][firmware]") {
  TempDir dir("avr-stops");
  AvrRunner avr(dir.path(), firmware("alex.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());
  // 400 ticks/s at 100 %, 192 ticks per 20 cm turn of the wheel: 10 cm is 96
  // ticks, about 0.25 s; 90 degrees is 128 ticks, about 0.33 s.
  struct Move {
    std::uint8_t command;
    std::uint32_t amount;
    const char* state;
    std::size_t param;  // the counter that must have reached the target
    std::uint32_t at_least;
  };
  for (const Move& m : {Move{kForward, 10, "motors forward 100%", 8, 10},
                        Move{kReverse, 10, "motors reverse 100%", 9, 10},
                        Move{kTurnLeft, 90, "motors left 100%", 6, 128},
                        Move{kTurnRight, 90, "motors right 100%", 4, 128}}) {
    REQUIRE(port.exchange(frame(kCommand, kClearStats, {0})));
    const std::int64_t t0 = now_wall_ms();
    auto r = port.exchange(frame(kCommand, m.command, {m.amount, 100}));
    REQUIRE(r);
    CHECK(r->code == kOk);
    auto started = avr.wait_event(m.state, t0, 1000ms);
    REQUIRE(started);
    auto stopped = avr.wait_event("motors stopped", started->wall_ms, 2000ms);
    REQUIRE(stopped);
    CHECK(stopped->t - started->t < 0.6);
    r = port.exchange(frame(kCommand, kGetStats));
    REQUIRE(r);
    CHECK(r->params[m.param] >= m.at_least);
  }
}

TEST_CASE("the watchdog firmware stops the motors when no valid frame came for 1 s",
          "[avr][firmware]") {
  TempDir dir("avr-wd");
  AvrRunner avr(dir.path(), firmware("alex-watchdog.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());
  REQUIRE(port.exchange(frame(kCommand, kForward, {0, 70})));
  REQUIRE(avr.wait_event("motors forward 70%", 0, 500ms));
  // Polled every 400 ms (the heartbeat) it keeps going for 2 s.
  for (int i = 0; i < 5; ++i) {
    pause_ms(100);
    REQUIRE(port.exchange(frame(kCommand, kGetStats)));
  }
  CHECK(avr.motors_at(now_wall_ms()).rfind("forward", 0) == 0);
  // Silence: the motors stop on their own 1 s (simulated time, so a busy
  // machine cannot blur it) after the last frame reached the firmware, and
  // nothing is sent to the host.
  std::optional<AvrEvent> last_in;
  for (const auto& e : avr.events())
    if (e.text.rfind("line in ", 0) == 0) last_in = e;
  REQUIRE(last_in);
  auto stopped = avr.wait_event("motors stopped", last_in->wall_ms, 3000ms);
  REQUIRE(stopped);
  CHECK(stopped->t - last_in->t >= 0.99);
  CHECK(stopped->t - last_in->t <= 1.05);
  CHECK(port.drain().empty());
}

TEST_CASE("the default firmware has no watchdog: the motors run on without frames",
          "[avr][firmware]") {
  TempDir dir("avr-nowd");
  AvrRunner avr(dir.path(), firmware("alex.elf"));
  REQUIRE(avr.ok());
  SerialPort port(avr.tty());
  REQUIRE(port.ok());
  REQUIRE(port.exchange(frame(kCommand, kForward, {0, 70})));
  REQUIRE(avr.wait_event("motors forward 70%", 0, 500ms));
  pause_ms(2000);
  CHECK(avr.motors_at(now_wall_ms()).rfind("forward", 0) == 0);
}
