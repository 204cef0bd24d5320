// The simulated firmware's behaviour, and a real alex-sim process driven
// through SerialLink over its pseudo-terminal.
#include <fcntl.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <thread>

#include "alex/serial_link.hpp"
#include "alex/stream_decoder.hpp"
#include "fixture.hpp"
#include "process.hpp"
#include "sim/sim.hpp"

using namespace curvebus;
using namespace curvebus::alex;
using namespace curvebus::alexsim;
using namespace std::chrono_literals;

namespace {
struct Bench {
  StreamDecoder host;
  std::vector<std::string> events;
  Firmware fw{MotionConfig{},
              [this](const std::vector<std::uint8_t>& b) { host.feed(b.data(), b.size()); },
              [this](const std::string& e) { events.push_back(e); }};
  std::int64_t now = 1000;
  std::vector<Packet> send(const Packet& p) {
    auto f = encode_frame(p);
    fw.receive(f.data(), f.size(), now);
    return drain();
  }
  std::vector<Packet> drain() {
    std::vector<Packet> out;
    Packet r;
    while (host.next(r)) out.push_back(r);
    return out;
  }
};
bool is(const Packet& p, PacketType t, Response r) {
  return p.type == static_cast<std::uint8_t>(t) && p.command == static_cast<std::uint8_t>(r);
}
}  // namespace

TEST_CASE("sim firmware: OK before moving, ticks advance, the target stops it", "[alex][sim]") {
  Bench b;
  auto r = b.send(make_command(Command::Forward, 10, 100));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  CHECK(b.fw.moving());
  b.now += 100;
  b.fw.tick(b.now);
  CHECK(b.fw.counters()[0] > 0);
  b.now += 10000;
  b.fw.tick(b.now);
  CHECK_FALSE(b.fw.moving());
  CHECK(b.fw.counters()[8] == 10);  // forward distance, cm
  r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(r[0].params[8] == 10);
  r = b.send(make_command(Command::ClearStats, 0));
  r = b.send(make_command(Command::GetStats));
  CHECK(r.at(0).params[0] == 0);
}

TEST_CASE("sim firmware: bad command, bad checksum, HELLO ignored, other types silent",
          "[alex][sim]") {
  Bench b;
  Packet unknown = make_command(Command::Stop);
  unknown.command = 9;
  auto r = b.send(unknown);
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Error, Response::BadCommand));
  auto f = encode_frame(make_command(Command::Stop));
  f[30] ^= 0x01;
  b.fw.receive(f.data(), f.size(), b.now);
  r = b.drain();
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Error, Response::BadChecksum));
  CHECK(b.send(make_hello()).empty());
  CHECK(b.send(make_response(Response::Ok)).empty());
}

TEST_CASE("sim firmware: HELLO required first, then normal service", "[alex][sim]") {
  Bench b;
  b.fw.set_hello(HelloMode::Require);
  auto r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Error, Response::BadResponse));
  r = b.send(make_hello());
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  r = b.send(make_command(Command::GetStats));
  CHECK(is(r.at(0), PacketType::Response, Response::Status));
}

TEST_CASE("strict sim firmware: one stray byte breaks framing, trickled zeros re-align it",
          "[alex][sim]") {
  Bench b;
  b.fw.set_strict(true);
  const std::uint8_t stray = 0x42;
  b.fw.receive(&stray, 1, b.now);
  // Every later valid frame is now out of window.
  for (int i = 0; i < 3; ++i) {
    auto r = b.send(make_command(Command::GetStats));
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Error, Response::BadPacket));
  }
  // Re-align as the host does (§4.4): one zero at a time until any answer.
  int zeros = 0;
  while (b.drain().empty() && zeros < 200) {
    const std::uint8_t z = 0;
    b.fw.receive(&z, 1, b.now);
    ++zeros;
    if (!b.host.buffered()) continue;
    break;
  }
  CHECK(zeros == 139);
  auto answer = b.drain();
  REQUIRE(answer.size() == 1);
  CHECK(is(answer[0], PacketType::Error, Response::BadPacket));
  auto r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
}

TEST_CASE("sim firmware faults: drop, corrupt", "[alex][sim]") {
  Bench b;
  b.fw.faults().drop_next = 1;
  CHECK(b.send(make_command(Command::GetStats)).empty());
  CHECK(b.send(make_command(Command::GetStats)).size() == 1);
  b.fw.faults().corrupt_next = 1;
  CHECK(b.send(make_command(Command::GetStats)).empty());
  CHECK(b.host.stats().bad_checksum == 1);
}

namespace {
struct SimProcess {
  test::TempDir dir{"alexsim"};
  std::string tty = dir / "tty", control = dir / "control";
  test::Process proc;
  explicit SimProcess(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{ALEX_SIM_BIN, "--link", tty,     "--control",
                                  control,      "--baud", "115200"};
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
  }
};

// Sends `p` and waits up to `timeout` for one answer.
std::optional<Packet> ask(SerialLink& s, StreamDecoder& d, const Packet& p,
                          std::chrono::milliseconds timeout = 2000ms) {
  auto f = encode_frame(p);
  if (!s.write_all(f.data(), f.size(), 1000)) return std::nullopt;
  std::optional<Packet> got;
  test::wait_until(
      [&] {
        std::uint8_t buf[512];
        auto n = s.read_some(buf, sizeof buf);
        if (n && *n > 0) d.feed(buf, *n);
        Packet r;
        if (d.next(r)) got = r;
        return got.has_value();
      },
      timeout, 2ms);
  return got;
}
}  // namespace

TEST_CASE("alex-sim on a pty: commands, telemetry, STOP, through SerialLink",
          "[alex][sim][process]") {
  SimProcess sim;
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  auto r = ask(s, d, make_command(Command::Forward, 0, 100));
  REQUIRE(r);
  CHECK(is(*r, PacketType::Response, Response::Ok));
  std::this_thread::sleep_for(200ms);
  auto a = ask(s, d, make_command(Command::GetStats));
  REQUIRE(a);
  CHECK(a->params[0] > 0);
  REQUIRE(ask(s, d, make_command(Command::Stop)));
  auto b1 = ask(s, d, make_command(Command::GetStats));
  std::this_thread::sleep_for(200ms);
  auto b2 = ask(s, d, make_command(Command::GetStats));
  REQUIRE(b1);
  REQUIRE(b2);
  CHECK(b1->params[0] == b2->params[0]);
  CHECK(sim.proc.out().find("rx COMMAND STOP") != std::string::npos);
  CHECK(s.open("/nonexistent/tty", 9600).code() == "IO");
  CHECK(s.open(sim.tty, 12345).code() == "USAGE");
}

TEST_CASE("alex-sim faults at run time: drop, corrupt, garbage", "[alex][sim][process]") {
  SimProcess sim;
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  sim.ctl("drop 1");
  std::this_thread::sleep_for(100ms);
  CHECK_FALSE(ask(s, d, make_command(Command::GetStats), 500ms));
  CHECK(ask(s, d, make_command(Command::GetStats)));
  sim.ctl("corrupt 1");
  std::this_thread::sleep_for(100ms);
  CHECK_FALSE(ask(s, d, make_command(Command::GetStats), 500ms));
  CHECK(d.stats().bad_checksum == 1);
  sim.ctl("garbage 100");
  std::this_thread::sleep_for(100ms);
  CHECK(ask(s, d, make_command(Command::GetStats)));
  CHECK(d.stats().garbage_bytes >= 100);
}

TEST_CASE("alex-sim vanishes: reads fail, the device comes back and reopens",
          "[alex][sim][process]") {
  SimProcess sim;
  SerialLink s;
  REQUIRE(s.open(sim.tty, 115200));
  StreamDecoder d;
  REQUIRE(ask(s, d, make_command(Command::GetStats)));
  sim.ctl("vanish 800");
  bool failed = test::wait_until(
      [&] {
        std::uint8_t buf[64];
        return !s.read_some(buf, sizeof buf).ok();
      },
      3000ms);
  CHECK(failed);
  s.close();
  REQUIRE(test::wait_until([&] { return sim.proc.out().find("reappear") != std::string::npos; },
                           5000ms));
  REQUIRE(s.open(sim.tty, 115200));
  d.reset();
  CHECK(ask(s, d, make_command(Command::GetStats)));
}
