// The simulated firmware's behaviour (in process), and a real alex-sim
// process driven through SerialLink over its pseudo-terminal.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <climits>
#include <cstdlib>
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
// The firmware model wired straight to a host-side decoder, on a fake clock.
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
  void advance(std::int64_t ms) {
    now += ms;
    fw.tick(now);
  }
  bool saw(const std::string& needle) const {
    for (const auto& e : events)
      if (e.find(needle) != std::string::npos) return true;
    return false;
  }
};
bool is(const Packet& p, PacketType t, Response r) {
  return p.type == static_cast<std::uint8_t>(t) && p.command == static_cast<std::uint8_t>(r);
}
enum { kLeftFwd = 0, kRightFwd, kLeftRev, kRightRev, kLFT, kRFT, kLRT, kRRT, kFwdCm, kRevCm };
}  // namespace

TEST_CASE("sim firmware: OK before moving, ticks advance, the target stops it", "[alex][sim]") {
  Bench b;
  auto r = b.send(make_command(Command::Forward, 10, 100));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  CHECK(b.fw.moving());
  b.advance(100);
  CHECK(b.fw.counters()[kLeftFwd] > 0);
  CHECK(b.fw.counters()[kRightFwd] == b.fw.counters()[kLeftFwd]);
  b.advance(10000);
  CHECK_FALSE(b.fw.moving());
  CHECK(b.saw("motion stopped (target reached)"));
  CHECK(b.fw.counters()[kFwdCm] == 10);    // forward distance, cm
  CHECK(b.fw.counters()[kLeftFwd] == 94);  // 10 cm at 9.4 ticks/cm
  r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(r[0].params[kFwdCm] == 10);
  CHECK(r[0].params[kLeftFwd] == 94);
  r = b.send(make_command(Command::ClearStats, 0));
  CHECK(is(r.at(0), PacketType::Response, Response::Ok));
  r = b.send(make_command(Command::GetStats));
  CHECK(r.at(0).params == std::array<std::uint32_t, kParams>{});
}

TEST_CASE("sim firmware: reverse and turns count the right wheels, speed scales the rate",
          "[alex][sim]") {
  Bench b;
  b.send(make_command(Command::Reverse, 5, 100));
  b.advance(10000);
  CHECK(b.fw.counters()[kLeftRev] == 47);
  CHECK(b.fw.counters()[kRevCm] == 5);
  b.send(make_command(Command::TurnLeft, 90, 100));
  b.advance(10000);
  CHECK(b.fw.counters()[kLRT] == 90);  // left wheel back, right wheel forward
  CHECK(b.fw.counters()[kRFT] == 90);
  CHECK(b.fw.counters()[kLFT] == 0);
  b.send(make_command(Command::TurnRight, 45, 100));
  b.advance(10000);
  CHECK(b.fw.counters()[kLFT] == 45);
  CHECK(b.fw.counters()[kRRT] == 45);
  CHECK_FALSE(b.fw.moving());
  // Half power, half the ticks in the same time; 0 cm means "keep going".
  Bench fast, slow;
  fast.send(make_command(Command::Forward, 0, 100));
  slow.send(make_command(Command::Forward, 0, 50));
  fast.advance(1000);
  slow.advance(1000);
  CHECK(fast.fw.counters()[kLeftFwd] == 376);  // 40 cm/s * 9.4 ticks/cm
  CHECK(slow.fw.counters()[kLeftFwd] == 188);
  CHECK(fast.fw.moving());
  // Power above 100 % is clamped.
  Bench over;
  over.send(make_command(Command::Forward, 0, 250));
  over.advance(1000);
  CHECK(over.fw.counters()[kLeftFwd] == 376);
}

TEST_CASE("sim firmware: STOP answers OK and the counters stay put", "[alex][sim]") {
  Bench b;
  b.send(make_command(Command::Forward, 0, 80));
  b.advance(500);
  auto r = b.send(make_command(Command::Stop));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Ok));
  CHECK_FALSE(b.fw.moving());
  const auto at_stop = b.fw.counters();
  CHECK(at_stop[kLeftFwd] > 0);
  b.advance(5000);
  CHECK(b.fw.counters() == at_stop);
  CHECK(b.saw("rx COMMAND STOP p0=0 p1=0"));
  CHECK(b.saw("tx RESPONSE OK"));
  CHECK(b.saw("motion stopped (STOP)"));
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
  CHECK(b.send(make_message("hello")).empty());
  // A frame in 20 chunks of 7 bytes still works.
  auto g = encode_frame(make_command(Command::GetStats));
  for (std::size_t i = 0; i < g.size(); i += 7) b.fw.receive(g.data() + i, 7, b.now);
  r = b.drain();
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
}

TEST_CASE("sim firmware: the resync receiver survives stray bytes", "[alex][sim]") {
  Bench b;
  const std::uint8_t stray[] = {0x42, 0xff, 0x00};
  b.fw.receive(stray, sizeof stray, b.now);
  auto r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(b.saw("rx skipped 3 bytes"));
  CHECK_FALSE(b.saw("desync"));
}

TEST_CASE("sim firmware: HELLO answered, or required first", "[alex][sim]") {
  SECTION("answer") {
    Bench b;
    b.fw.set_hello(HelloMode::Answer);
    auto r = b.send(make_hello());
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Response, Response::Ok));
    CHECK(b.send(make_hello()).size() == 1);
  }
  SECTION("require") {
    Bench b;
    b.fw.set_hello(HelloMode::Require);
    auto r = b.send(make_command(Command::Forward, 10, 50));
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Error, Response::BadResponse));
    CHECK_FALSE(b.fw.moving());
    // Frame errors are still reported as such while waiting.
    auto f = encode_frame(make_command(Command::Stop));
    f[50] ^= 0x04;
    b.fw.receive(f.data(), f.size(), b.now);
    CHECK(is(b.drain().at(0), PacketType::Error, Response::BadChecksum));
    r = b.send(make_hello());
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Response, Response::Ok));
    r = b.send(make_command(Command::GetStats));
    CHECK(is(r.at(0), PacketType::Response, Response::Status));
    // After waitForHello() the main loop ignores HELLO.
    CHECK(b.send(make_hello()).empty());
    // A power cycle needs a new HELLO, and zeroes everything.
    b.send(make_command(Command::Forward, 0, 100));
    b.advance(200);
    REQUIRE(b.fw.moving());
    b.fw.reboot();
    CHECK_FALSE(b.fw.moving());
    CHECK(b.fw.counters() == std::array<std::uint32_t, kParams>{});
    CHECK(b.saw("reboot"));
    CHECK(is(b.send(make_command(Command::GetStats)).at(0), PacketType::Error,
             Response::BadResponse));
    CHECK(is(b.send(make_hello()).at(0), PacketType::Response, Response::Ok));
  }
}

TEST_CASE("strict sim firmware: one stray byte breaks framing, trickled zeros re-align it",
          "[alex][sim]") {
  Bench b;
  b.fw.set_strict(true);
  CHECK(is(b.send(make_command(Command::GetStats)).at(0), PacketType::Response, Response::Status));
  const std::uint8_t stray = 0x42;
  b.fw.receive(&stray, 1, b.now);
  // Every later valid frame is now out of window.
  for (int i = 0; i < 3; ++i) {
    auto r = b.send(make_command(Command::GetStats));
    REQUIRE(r.size() == 1);
    CHECK(is(r[0], PacketType::Error, Response::BadPacket));
  }
  CHECK(b.saw("desync"));
  // Re-align as the host does (§4.4): one zero at a time until any answer.
  int zeros = 0;
  while (b.host.buffered() == 0 && zeros < 200) {
    const std::uint8_t z = 0;
    b.fw.receive(&z, 1, b.now);
    ++zeros;
  }
  CHECK(zeros == 139);
  auto answer = b.drain();
  REQUIRE(answer.size() == 1);
  CHECK(is(answer[0], PacketType::Error, Response::BadPacket));
  auto r = b.send(make_command(Command::GetStats));
  REQUIRE(r.size() == 1);
  CHECK(is(r[0], PacketType::Response, Response::Status));
  CHECK(b.saw("realigned"));
}

TEST_CASE("sim firmware faults: drop, corrupt, garbage, every Nth", "[alex][sim]") {
  Bench b;
  b.fw.faults().drop_next = 1;
  CHECK(b.send(make_command(Command::GetStats)).empty());
  CHECK(b.saw("fault drop RESPONSE STATUS"));
  CHECK(b.send(make_command(Command::GetStats)).size() == 1);
  b.fw.faults().corrupt_next = 1;
  CHECK(b.send(make_command(Command::GetStats)).empty());
  CHECK(b.host.stats().bad_checksum == 1);
  CHECK(b.saw("fault corrupt RESPONSE STATUS"));
  b.fw.send_garbage(50);
  CHECK(b.send(make_command(Command::GetStats)).size() == 1);
  CHECK(b.host.stats().garbage_bytes >= 50);

  Bench every;
  every.fw.faults().drop_every = 3;
  every.fw.faults().garbage_every = 2;
  int answered = 0;
  for (int i = 0; i < 6; ++i)
    answered += static_cast<int>(every.send(make_hello()).size() +
                                 every.send(make_command(Command::Stop)).size());
  CHECK(answered == 4);  // 6 replies, every 3rd dropped
  CHECK(every.host.stats().garbage_bytes > 0);
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
  CHECK(sim.proc.wait_for_output("start device=" + dev + " baud=9600 framing=resync hello=ignore",
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
  // 280 bytes at 960 bytes/s cannot cross in much less than ~290 ms.
  CHECK(rtt >= 200ms);
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

TEST_CASE("alex-sim --strict: a stray byte desynchronises it, zeros re-align it",
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
    if (round == 0) CHECK(zeros >= 139);  // our frame's last byte opened the window
    auto back = receive(s, d);
    REQUIRE(back);
    CHECK(is(*back, PacketType::Error, Response::BadPacket));
    ok = ask(s, d, make_command(Command::GetStats));
    REQUIRE(ok);
  }
  CHECK(is(*ok, PacketType::Response, Response::Status));
  CHECK(sim.proc.wait_for_output("realigned", 2000ms));
  // Switched to the resync receiver at run time, stray bytes no longer matter.
  sim.ctl("strict off");
  REQUIRE(s.write_all(&stray, 1, 1000));
  auto fine = ask(s, d, make_command(Command::GetStats));
  REQUIRE(fine);
  CHECK(is(*fine, PacketType::Response, Response::Status));
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
  SimProcess sim({"--drop-every", "2", "--corrupt-every", "3", "--garbage-every", "5"}, "0");
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
  sim.ctl("vanish 800");
  bool failed = test::wait_until(
      [&] {
        std::uint8_t buf[64];
        return !s.read_some(buf, sizeof buf).ok();
      },
      3000ms);
  CHECK(failed);
  s.close();
  REQUIRE(sim.proc.wait_for_output("reappear device /dev/pts/", 5000ms));
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
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--hello", "maybe"}, {"--baud", "-1"}, {"--bogus"}}) {
    bad.insert(bad.begin(), ALEX_SIM_BIN);
    auto r = test::run(bad, dir / "bad", {}, 5000ms);
    CHECK(r.status != 0);
    CHECK(r.out.find("device") == std::string::npos);
  }
}
