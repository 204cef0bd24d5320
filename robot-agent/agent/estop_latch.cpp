#include "estop_latch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace curvebus::agent {

namespace {
Status sync_dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open " + dir + ": " + std::strerror(errno), "IO");
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? Status::Ok() : Status::Error("cannot sync " + dir, "IO");
}
}  // namespace

Status write_file_synced(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot write " + tmp + ": " + std::strerror(errno), "IO");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::Error("cannot write " + path + ": " + std::strerror(errno), "IO");
  return sync_dir_of(path);
}

Status remove_file_synced(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Status::Error("cannot remove " + path + ": " + std::strerror(errno), "IO");
  return sync_dir_of(path);
}

EstopLatch::EstopLatch(std::string path, std::function<void()> on_done)
    : path_(std::move(path)), on_done_(std::move(on_done)) {
  if (!path_.empty()) worker_ = std::thread([this] { run(); });
}

EstopLatch::~EstopLatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::uint64_t EstopLatch::request(bool latched, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requested_;
  if (path_.empty()) {
    durable_ = requested_;
    return requested_;
  }
  latched_ = latched;
  reason_ = reason;
  cv_.notify_all();
  return requested_;
}

std::uint64_t EstopLatch::durable() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return durable_;
}

std::string EstopLatch::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

void EstopLatch::wait_idle() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [this] { return durable_ == requested_; });
}

void EstopLatch::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    // Pending work is finished before stopping: a requested latch is written.
    cv_.wait(lock, [this] { return stopping_ || durable_ != requested_; });
    if (durable_ == requested_) return;  // stopping, nothing left
    const std::uint64_t gen = requested_;
    const bool latched = latched_;
    const std::string reason = reason_;
    lock.unlock();
    Status s = latched ? write_file_synced(path_, reason + "\n") : remove_file_synced(path_);
    lock.lock();
    durable_ = gen;
    error_ = s ? std::string() : s.message();
    cv_.notify_all();
    if (on_done_) {
      lock.unlock();
      on_done_();
      lock.lock();
    }
  }
}

}  // namespace curvebus::agent
