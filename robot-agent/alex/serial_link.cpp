#include "alex/serial_link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace curvebus::alex {

namespace {
speed_t speed_of(int baud) {
  switch (baud) {
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    default:
      return B0;
  }
}
std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}
}  // namespace

bool supported_baud(int baud) {
  return speed_of(baud) != B0;
}

SerialLink::~SerialLink() {
  close();
}

Status SerialLink::open(const std::string& device, int baud) {
  close();
  const speed_t speed = speed_of(baud);
  if (speed == B0)
    return Status::Error("unsupported baud rate " + std::to_string(baud) +
                             " (supported: 9600, 19200, 38400, 57600, 115200)",
                         "USAGE");
  const int fd = ::open(device.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno_text(("cannot open " + device).c_str()), "IO");
  // One driver per Arduino: a second agent (or a stale one, or a terminal
  // left open) interleaving frames with ours would defeat the one-frame-in-
  // flight rule, STOP included.  The lock is taken before the port is touched
  // (termios, flush), so the holder's line is left as it was.  TIOCEXCL below
  // does not stop root; this lock does, for everyone who asks for it (pyserial's
  // exclusive mode, other agents).  A device path that now names a different
  // device (a pty number or a ttyACM name reused) is refused the same way when
  // its user holds the lock.
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::Error(e == EWOULDBLOCK
                             ? device + " is in use by another process (it holds the port's lock)"
                             : "cannot lock " + device + ": " + std::strerror(e),
                         "IO");
  }
  termios t{};
  if (::tcgetattr(fd, &t) != 0) {
    Status s = Status::Error(errno_text((device + " is not a serial port").c_str()), "IO");
    ::close(fd);
    return s;
  }
  ::cfmakeraw(&t);
  t.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | CRTSCTS | PARENB | CSIZE);
  t.c_cflag |= CS8 | CLOCAL | CREAD;
  t.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY);
  // With O_NONBLOCK, VMIN 0 / VTIME 0 makes read() return at once; "nothing
  // waiting" and "hung up" both read 0 bytes, so read_some() asks poll().
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  ::cfsetispeed(&t, speed);
  ::cfsetospeed(&t, speed);
  if (::tcsetattr(fd, TCSANOW, &t) != 0) {
    Status s = Status::Error(errno_text(("cannot configure " + device).c_str()), "IO");
    ::close(fd);
    return s;
  }
  // Nobody else may open the port while we hold it (root still can).
  ::ioctl(fd, TIOCEXCL);
  // Drop whatever the line or a previous user left in the queues.
  ::tcflush(fd, TCIOFLUSH);
  fd_ = fd;
  device_ = device;
  return Status::Ok();
}

void SerialLink::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status SerialLink::write_all(const std::uint8_t* p, std::size_t n, int timeout_ms) {
  if (fd_ < 0) return Status::Error("serial port is not open", "IO");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::write(fd_, p + done, n - done);
    if (w > 0) {
      done += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) return Status::Error(errno_text("write"), "IO");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return Status::Error("write timed out (port not draining)", "TIMEOUT");
    pollfd pfd{fd_, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) return Status::Error(errno_text("poll"), "IO");
    if (r > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
      return Status::Error("device hung up", "IO");
  }
  return Status::Ok();
}

Result<std::size_t> SerialLink::read_some(std::uint8_t* buf, std::size_t n) {
  if (fd_ < 0) return Status::Error("serial port is not open", "IO");
  if (n == 0) return std::size_t{0};
  while (true) {
    const ssize_t r = ::read(fd_, buf, n);
    if (r > 0) return static_cast<std::size_t>(r);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != EAGAIN) {
      // EIO: a pty whose master closed; ENXIO/ENODEV: a USB device unplugged.
      return Status::Error(errno_text(("read " + device_).c_str()), "IO");
    }
    // 0 bytes (or EAGAIN): nothing waiting, or a hung-up line.  A hung-up tty
    // polls as POLLHUP (a pty whose master closed, a USB device removed).
    pollfd pfd{fd_, POLLIN, 0};
    int pr;
    do {
      pr = ::poll(&pfd, 1, 0);
    } while (pr < 0 && errno == EINTR);
    if (pr > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
      return Status::Error("device " + device_ + " hung up", "IO");
    // Readable, yet read() said 0 bytes: end of file.
    if (pr > 0 && (pfd.revents & POLLIN) && r == 0) {
      std::uint8_t probe;
      const ssize_t again = ::read(fd_, &probe, 1);
      if (again > 0) {
        buf[0] = probe;
        return std::size_t{1};
      }
      if (again == 0 || (errno != EAGAIN && errno != EINTR))
        return Status::Error("device " + device_ + " closed (end of file)", "IO");
    }
    return std::size_t{0};
  }
}

}  // namespace curvebus::alex
