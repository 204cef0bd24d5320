// SerialLink on an in-process pseudo-terminal: raw mode, non-blocking reads,
// "nothing now" versus "device gone", write_all, and the open errors.
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "alex/packet.hpp"
#include "alex/serial_link.hpp"
#include "alex/stream_decoder.hpp"
#include "process.hpp"

using namespace curvebus;
using namespace curvebus::alex;
using namespace std::chrono_literals;

namespace {
struct Pty {
  int master = -1;
  std::string slave;
  Pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    slave = ::ptsname(master);
  }
  ~Pty() { close(); }
  void close() {
    if (master >= 0) ::close(master);
    master = -1;
  }
};
}  // namespace

TEST_CASE("SerialLink: raw 8N1 at the asked rate, non-blocking reads, writes arrive",
          "[alex][serial]") {
  Pty pty;
  SerialLink s;
  REQUIRE(s.open(pty.slave, 9600));
  CHECK(s.is_open());
  CHECK(s.fd() >= 0);
  termios t{};
  REQUIRE(::tcgetattr(s.fd(), &t) == 0);
  CHECK(::cfgetospeed(&t) == B9600);
  CHECK(::cfgetispeed(&t) == B9600);
  CHECK((t.c_cflag & CSIZE) == CS8);
  CHECK((t.c_cflag & (PARENB | CSTOPB | CRTSCTS)) == 0);
  CHECK((t.c_cflag & (CLOCAL | CREAD)) == (CLOCAL | CREAD));
  CHECK((t.c_lflag & (ICANON | ECHO | ISIG)) == 0);
  CHECK((t.c_iflag & (IXON | IXOFF | ICRNL)) == 0);
  CHECK((t.c_oflag & OPOST) == 0);
  CHECK(t.c_cc[VMIN] == 0);
  CHECK(t.c_cc[VTIME] == 0);
  CHECK((::fcntl(s.fd(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK((::fcntl(s.fd(), F_GETFD) & FD_CLOEXEC) != 0);

  // Nothing waiting: 0 at once, not an error.
  std::uint8_t buf[512];
  auto r = s.read_some(buf, sizeof buf);
  REQUIRE(r.ok());
  CHECK(*r == 0);

  // A frame from the "Arduino" (with bytes a cooked tty would mangle: 0x0d, 0x11, 0x03).
  Packet p = make_command(Command::Forward, 0x0d0a1103u, 0x7f1a0413u);
  auto f = encode_frame(p);
  REQUIRE(::write(pty.master, f.data(), f.size()) == static_cast<ssize_t>(f.size()));
  StreamDecoder d;
  Packet got;
  REQUIRE(test::wait_until(
      [&] {
        auto n = s.read_some(buf, sizeof buf);
        REQUIRE(n.ok());
        d.feed(buf, *n);
        return d.next(got);
      },
      2000ms, 1ms));
  CHECK(got == p);

  // And to it.
  auto stop = encode_frame(make_command(Command::Stop));
  REQUIRE(s.write_all(stop.data(), stop.size(), 1000));
  std::vector<std::uint8_t> seen;
  test::wait_until(
      [&] {
        std::uint8_t tmp[256];
        const ssize_t n = ::read(pty.master, tmp, sizeof tmp);
        if (n > 0) seen.insert(seen.end(), tmp, tmp + n);
        return seen.size() >= stop.size();
      },
      2000ms, 1ms);
  CHECK(seen == std::vector<std::uint8_t>(stop.begin(), stop.end()));
}

TEST_CASE("SerialLink: the other end going away is an error, not 'nothing yet'", "[alex][serial]") {
  Pty pty;
  SerialLink s;
  REQUIRE(s.open(pty.slave, 57600));
  std::uint8_t buf[64];
  REQUIRE(s.read_some(buf, sizeof buf).ok());
  pty.close();
  auto r = s.read_some(buf, sizeof buf);
  CHECK_FALSE(r.ok());
  CHECK(r.status().code() == "IO");
  auto f = encode_frame(make_command(Command::Stop));
  CHECK_FALSE(s.write_all(f.data(), f.size(), 200).ok());
  s.close();
  CHECK_FALSE(s.is_open());
  CHECK_FALSE(s.read_some(buf, sizeof buf).ok());
}

TEST_CASE("SerialLink: bad rates, missing devices and non-ttys give clear errors",
          "[alex][serial]") {
  Pty pty;
  SerialLink s;
  for (int baud : {9600, 19200, 38400, 57600, 115200}) {
    CHECK(supported_baud(baud));
    CHECK(s.open(pty.slave, baud).ok());
  }
  for (int baud : {0, 300, 14400, 230400, -9600}) {
    CHECK_FALSE(supported_baud(baud));
    Status st = s.open(pty.slave, baud);
    CHECK(st.code() == "USAGE");
    CHECK(st.message().find("unsupported baud rate") != std::string::npos);
    CHECK_FALSE(s.is_open());
  }
  Status missing = s.open("/nonexistent/ttyACM0", 9600);
  CHECK(missing.code() == "IO");
  CHECK(missing.message().find("/nonexistent/ttyACM0") != std::string::npos);
  Status not_tty = s.open("/dev/null", 9600);
  CHECK(not_tty.code() == "IO");
  CHECK(not_tty.message().find("not a serial port") != std::string::npos);
  CHECK_FALSE(s.is_open());
}

TEST_CASE("SerialLink: a port held by another process is refused, its settings untouched",
          "[alex][serial]") {
  Pty pty;
  SerialLink holder;
  REQUIRE(holder.open(pty.slave, 9600));
  // A second driver of the same Arduino would interleave frames with the
  // first; root is not stopped by TIOCEXCL, so the lock must refuse it.
  SerialLink second;
  Status busy = second.open(pty.slave, 115200);
  CHECK(busy.code() == "IO");
  CHECK(busy.message().find(pty.slave) != std::string::npos);
  CHECK(busy.message().find("in use by another process") != std::string::npos);
  CHECK_FALSE(second.is_open());
  termios t{};
  REQUIRE(::tcgetattr(holder.fd(), &t) == 0);
  CHECK(::cfgetospeed(&t) == B9600);
  // Once the holder lets go, the port is free again.
  holder.close();
  CHECK(second.open(pty.slave, 115200).ok());
}
