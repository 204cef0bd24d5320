// A serial port in raw mode for the Alex protocol: termios raw 8N1, no flow
// control, non-blocking, exclusive.  Open/close/read/write only; the agent's
// link state machine decides about timeouts, retries and reopening.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "curvebus/status.hpp"

namespace curvebus::alex {

class SerialLink {
 public:
  SerialLink() = default;
  ~SerialLink();
  SerialLink(const SerialLink&) = delete;
  SerialLink& operator=(const SerialLink&) = delete;

  // Opens `device` at `baud` (9600, 19200, 38400, 57600, 115200);
  // anything else is a USAGE error.  Raw 8N1, no flow control, CLOCAL|CREAD,
  // VMIN 0 / VTIME 0, O_NONBLOCK|O_NOCTTY|O_CLOEXEC, TIOCEXCL, queues flushed.
  // The port is held with an exclusive flock() until close(): a device that
  // another process holds locked is refused ("in use by another process")
  // before its settings or queues are touched.
  // Errors: code "USAGE" (baud) or "IO" (open/lock/configure).
  Status open(const std::string& device, int baud);
  void close();
  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  const std::string& device() const { return device_; }

  // Writes all bytes, waiting for the port up to `timeout_ms` in total.
  Status write_all(const std::uint8_t* p, std::size_t n, int timeout_ms);
  // Non-blocking read: 0 when nothing is waiting; an error when the device is
  // gone (EOF, EIO, ENXIO, hang-up).
  Result<std::size_t> read_some(std::uint8_t* buf, std::size_t n);

 private:
  int fd_ = -1;
  std::string device_;
};

// true when `baud` is one SerialLink can set.
bool supported_baud(int baud);

}  // namespace curvebus::alex
