// Wakeup: how any thread interrupts the client's I/O thread in its poll.
//
// An eventfd: the I/O thread polls fd() beside its ZeroMQ sockets and calls
// clear() when it is readable; any thread calls signal().  Signals coalesce
// (ten signals before the I/O thread looks are one wakeup), so callers need
// not track whether one is pending, but the hot path does (SharedState::
// wake_pending) to spare the system call.
//
// Ownership: owns the descriptor, closed on destruction.  Thread: signal()
// from any thread, fd()/clear() from the I/O thread.  ok() is false when the
// descriptor could not be created (Client::connect reports it).
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace curvebus::client_detail {

class Wakeup {
 public:
  Wakeup() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Wakeup() {
    if (fd_ >= 0) ::close(fd_);
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  void signal() {
    const std::uint64_t one = 1;
    // A full counter (2^64 - 2 pending signals) cannot happen; EAGAIN would
    // still leave the descriptor readable, which is all a signal means.
    [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
  }

  void clear() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
  }

 private:
  int fd_;
};

}  // namespace curvebus::client_detail
