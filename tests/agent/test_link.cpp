// AlexLink's write rule and STOP handling, in-process: the link on the slave
// side of a pseudo-terminal, the test on the master side as a scripted
// Arduino that sees every byte the host writes and answers when the test says.
// These pin the safety properties of alex_link.hpp: one frame in flight,
// STOP written only after the exchange in flight has ended, queued motion
// superseded, STOP resent (after re-aligning) until confirmed, STOP owed
// through a device that is gone and comes back.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "alex_link.hpp"
#include "curvebus/codec.hpp"
#include "fixture.hpp"

using namespace curvebus;
using namespace curvebus::agent;

namespace {

// A scripted Arduino on the master side of a pty.
class Wire {
 public:
  Wire() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    REQUIRE(master_ >= 0);
    REQUIRE(::grantpt(master_) == 0);
    REQUIRE(::unlockpt(master_) == 0);
    slave_ = ::ptsname(master_);
  }
  ~Wire() {
    if (master_ >= 0) ::close(master_);
  }
  const std::string& slave() const { return slave_; }

  // Bytes the host wrote, read as they come.
  std::vector<std::uint8_t> rx;
  std::size_t consumed = 0;  // bytes of rx already taken as frames or filler

  void pump() {
    std::uint8_t buf[512];
    while (true) {
      const ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) return;
      rx.insert(rx.end(), buf, buf + n);
    }
  }
  std::size_t pending() const { return rx.size() - consumed; }
  // The next whole frame the host wrote (after any filler zeros), if there is one.
  bool take_frame(alex::Packet& p, int* zeros_before = nullptr) {
    std::size_t i = consumed;
    int zeros = 0;
    while (i < rx.size() && rx[i] == 0) {
      ++i;
      ++zeros;
    }
    if (rx.size() - i < alex::kFrameSize) return false;
    REQUIRE(alex::check_frame(rx.data() + i, &p) == alex::FrameCheck::Ok);
    consumed = i + alex::kFrameSize;
    if (zeros_before) *zeros_before = zeros;
    return true;
  }
  int take_zeros() {
    int zeros = 0;
    while (consumed < rx.size() && rx[consumed] == 0) {
      ++consumed;
      ++zeros;
    }
    return zeros;
  }
  void write_raw(const std::uint8_t* p, std::size_t n) {
    REQUIRE(::write(master_, p, n) == static_cast<ssize_t>(n));
  }
  void reply(const alex::Packet& p) {
    const auto frame = alex::encode_frame(p);
    REQUIRE(::write(master_, frame.data(), frame.size()) == static_cast<ssize_t>(frame.size()));
  }

 private:
  int master_ = -1;
  std::string slave_;
};

AlexLinkConfig config_for(const std::string& device) {
  AlexLinkConfig c;
  c.device = device;
  c.baud = 115200;
  c.settle_ms = 0;
  c.hello_wait_ms = 20;
  c.reply_timeout_ms = 300;
  c.realign_byte_interval_ms = 2;
  return c;
}

// Runs the link's loop (and the wire's reader) until `done` or `ms` pass.
bool run(AlexLink& link, Wire& wire, const std::function<bool()>& done, int ms) {
  const std::int64_t end = steady_ms() + ms;
  while (steady_ms() < end) {
    pollfd fd{link.fd(), POLLIN, 0};
    ::poll(&fd, fd.fd >= 0 ? 1 : 0, 2);
    const std::int64_t now = steady_ms();
    if (fd.revents & (POLLIN | POLLHUP | POLLERR)) link.on_readable(now);
    link.tick(now);
    wire.pump();
    if (done()) return true;
  }
  return done();
}

// A link through its start-up (the HELLO taken off the wire).
void bring_up(AlexLink& link, Wire& wire) {
  REQUIRE(run(
      link, wire, [&] { return link.ready(); }, 2000));
  alex::Packet hello;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(hello); }, 500));
  CHECK(hello.type == static_cast<std::uint8_t>(alex::PacketType::Hello));
}

bool is_cmd(const alex::Packet& p, alex::Command c) {
  return p.type == static_cast<std::uint8_t>(alex::PacketType::Command) &&
         p.command == static_cast<std::uint8_t>(c);
}

}  // namespace

TEST_CASE("link: a STOP decided mid-exchange waits for the reply's last byte, then goes first",
          "[agent][link]") {
  Wire wire;
  AlexLink link(config_for(wire.slave()));
  bring_up(link, wire);

  std::vector<Outcome> stats;
  link.submit(alex::make_command(alex::Command::GetStats),
              [&](const Reply& r) { stats.push_back(r.outcome); });
  alex::Packet req;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(req); }, 500));
  CHECK(is_cmd(req, alex::Command::GetStats));

  // The Arduino is "answering" now: a STOP decided here must not be written.
  std::vector<Reply> stops;
  link.request_stop([&](const Reply& r) { stops.push_back(r); });
  CHECK(link.stop_pending());
  run(
      link, wire, [] { return false; }, 150);
  CHECK(wire.pending() == 0);  // nothing on the line while the reply is due

  wire.reply(alex::make_status({}));
  alex::Packet next;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(next); }, 500));
  CHECK(is_cmd(next, alex::Command::Stop));
  REQUIRE(stats.size() == 1);
  CHECK(stats[0] == Outcome::Status);
  CHECK(stops.empty());  // not confirmed yet

  wire.reply(alex::make_response(alex::Response::Ok));
  REQUIRE(run(
      link, wire, [&] { return !stops.empty(); }, 500));
  CHECK(stops[0].outcome == Outcome::Ok);
  CHECK(stops[0].attempts == 1);
  CHECK_FALSE(link.stop_pending());
}

TEST_CASE("link: motion queued before a STOP is superseded and never written", "[agent][link]") {
  Wire wire;
  AlexLink link(config_for(wire.slave()));
  bring_up(link, wire);

  link.submit(alex::make_command(alex::Command::GetStats), nullptr);
  alex::Packet req;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(req); }, 500));
  std::vector<Outcome> forward;
  link.submit(alex::make_command(alex::Command::Forward, 30, 60),
              [&](const Reply& r) { forward.push_back(r.outcome); });
  std::vector<Outcome> later_stats;
  link.submit(alex::make_command(alex::Command::GetStats),
              [&](const Reply& r) { later_stats.push_back(r.outcome); });
  link.request_stop(nullptr);
  REQUIRE(forward.size() == 1);
  CHECK(forward[0] == Outcome::Superseded);
  CHECK(link.counters().superseded == 1);

  wire.reply(alex::make_status({}));
  alex::Packet p;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 500));
  CHECK(is_cmd(p, alex::Command::Stop));
  wire.reply(alex::make_response(alex::Response::Ok));
  // Stats kept behind the STOP; the FORWARD never appears on the wire.
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 500));
  CHECK(is_cmd(p, alex::Command::GetStats));
  wire.reply(alex::make_status({}));
  REQUIRE(run(
      link, wire, [&] { return !later_stats.empty(); }, 500));
  run(
      link, wire, [] { return false; }, 100);
  CHECK(wire.pending() == 0);
}

TEST_CASE("link: a STOP answered BAD_CHECKSUM is re-aligned, then resent until confirmed",
          "[agent][link]") {
  Wire wire;
  AlexLink link(config_for(wire.slave()));
  bring_up(link, wire);
  std::vector<Reply> stops;
  link.request_stop([&](const Reply& r) { stops.push_back(r); });
  alex::Packet p;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 500));
  CHECK(is_cmd(p, alex::Command::Stop));
  wire.reply(alex::make_error(alex::Response::BadChecksum));
  // Filler, one byte at a time, until the Arduino answers (here after 7).
  REQUIRE(run(
      link, wire, [&] { return wire.pending() >= 7; }, 1000));
  CHECK(wire.take_zeros() >= 7);
  wire.reply(alex::make_error(alex::Response::BadPacket));
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 500));
  CHECK(is_cmd(p, alex::Command::Stop));
  CHECK(stops.empty());
  wire.reply(alex::make_response(alex::Response::Ok));
  REQUIRE(run(
      link, wire, [&] { return !stops.empty(); }, 500));
  CHECK(stops[0].outcome == Outcome::Ok);
  CHECK(stops[0].attempts == 2);
  CHECK(link.counters().stop_resends == 1);
  CHECK(link.counters().realignments == 1);
}

TEST_CASE("link: no answer re-aligns a counting receiver before the request goes again",
          "[agent][link]") {
  Wire wire;
  AlexLink link(config_for(wire.slave()));
  bring_up(link, wire);
  std::vector<Reply> done;
  link.submit(alex::make_command(alex::Command::GetStats),
              [&](const Reply& r) { done.push_back(r); });
  alex::Packet p;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 500));
  // Say nothing: after the timeout come zeros, not the frame again.
  REQUIRE(run(
      link, wire, [&] { return wire.pending() >= 3; }, 1000));
  for (std::size_t i = wire.consumed; i < wire.rx.size(); ++i) CHECK(wire.rx[i] == 0);
  wire.take_zeros();
  wire.reply(alex::make_error(alex::Response::BadPacket));  // window closed
  int zeros = 0;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p, &zeros); }, 500));
  CHECK(is_cmd(p, alex::Command::GetStats));
  wire.reply(alex::make_status({}));
  REQUIRE(run(
      link, wire, [&] { return !done.empty(); }, 500));
  CHECK(done[0].outcome == Outcome::Status);
  CHECK(done[0].attempts == 2);
}

TEST_CASE("link: a STOP owed while the device is gone is the first frame once it is back",
          "[agent][link]") {
  Wire wire;
  test::TempDir dir("link");
  const std::string device = dir / "tty";
  AlexLinkConfig c = config_for(device);
  c.reopen_min_ms = 20;
  c.reopen_max_ms = 50;
  AlexLink link(c);
  std::vector<Reply> stops;
  link.request_stop([&](const Reply& r) { stops.push_back(r); });  // no device yet
  run(
      link, wire, [] { return false; }, 100);
  CHECK(link.state() == LinkState::Down);
  CHECK(link.stop_pending());
  REQUIRE(::symlink(wire.slave().c_str(), device.c_str()) == 0);
  alex::Packet p;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 2000));
  CHECK(is_cmd(p, alex::Command::Stop));  // before any HELLO
  wire.reply(alex::make_response(alex::Response::Ok));
  REQUIRE(run(
      link, wire, [&] { return !stops.empty(); }, 500));
  CHECK(stops[0].outcome == Outcome::Ok);
}

TEST_CASE("link: an unsolicited frame after a reply delays the next write until it is over",
          "[agent][link]") {
  Wire wire;
  AlexLinkConfig c = config_for(wire.slave());
  c.baud = 9600;  // a frame takes 146 ms: room to see the link hold back
  AlexLink link(c);
  bring_up(link, wire);
  link.submit(alex::make_command(alex::Command::GetStats), nullptr);
  alex::Packet p;
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 1000));
  link.request_stop(nullptr);
  // The reply, then the first half of a MESSAGE the firmware sends by itself.
  wire.reply(alex::make_status({}));
  const auto msg = alex::encode_frame(alex::make_message("STOPPED"));
  wire.write_raw(msg.data(), 70);
  run(
      link, wire, [] { return false; }, 100);
  CHECK(wire.pending() == 0);  // part of a frame is arriving: no write
  wire.write_raw(msg.data() + 70, msg.size() - 70);
  REQUIRE(run(
      link, wire, [&] { return wire.take_frame(p); }, 1000));
  CHECK(is_cmd(p, alex::Command::Stop));
  CHECK(link.counters().messages == 1);
}
