// Retained values on disk, so that a restarted broker (clean stop or
// SIGKILL) gives subscribers the last known state of every topic at once.
//
// RetainedLog (retained_log.hpp) owns the file and a writer thread: the
// routing thread only hands it the new value of a topic (the encoded bytes it
// already holds), never waits for a write or an fsync.  Sequence numbers
// continue from the kept value; the broker_id changes at every start, which
// is how a client knows that its older seqs (and the history behind them)
// are gone.  $SYS topics are not kept: the broker rebuilds them.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

bool write_file_atomically(const std::string& path, std::string_view bytes, int mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  bool ok = fd >= 0 && write_all(fd, bytes) && ::fsync(fd) == 0;
  if (fd >= 0) ok = (::close(fd) == 0) && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

void Core::load_retained() {
  if (config_.retained_sync_ms == 0 || config_.retained_file.empty()) return;
  RetainedLog::Options options;
  options.path = config_.retained_file;
  options.sync_ms = config_.retained_sync_ms;
  options.sync = env_.retained_sync;
  retained_log_ = std::make_unique<RetainedLog>(options);
  auto loaded = retained_log_->load();
  if (!loaded) {
    spdlog::error("retained values file {}: {}; keeping retained values in memory only",
                  config_.retained_file, loaded.status().message());
    retained_log_.reset();
    return;
  }
  if (loaded->set_aside)
    spdlog::error("retained values file {} was unreadable; moved to {}.bad, starting empty",
                  config_.retained_file, config_.retained_file);
  std::size_t skipped = loaded->skipped;
  const std::size_t restored = topics_.restore(*loaded, protocol_.now_ms(), &skipped);
  topics_.set_retained_log(retained_log_.get());
  spdlog::info("restored retained values file={} topics={} skipped={}{}", config_.retained_file,
               restored, skipped, loaded->migrated ? " (converted from the old format)" : "");
  retained_log_->start();
}

}  // namespace curvebus::broker
