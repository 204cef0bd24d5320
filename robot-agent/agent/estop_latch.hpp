// EstopLatch: the e-stop latch file, written off the agent's loop.
//
// The agent acks an e-stop (and a clear) only once the latch is on disk, so a
// crash right after the ack cannot lift it.  Making it durable takes an fsync
// of the file and one of its directory, and an fsync can take seconds: an SD
// card on a Raspberry Pi, or any ext4 disk whose journal commit must first
// write out another program's dirty data.  Done on the agent's loop, that
// stalled everything behind it — the STOP still waiting for the exchange in
// flight, the dead-man checks, the reading of the serial line.  Here one
// worker thread does the writing; the loop only asks and later asks whether
// it is done.
//
//   request(latched, reason) -> generation g      (loop thread, never blocks)
//   durable() >= g  once that state, or a newer one, is on disk (or failed)
//   on_done: runs on the worker after each write (the agent wakes its loop)
//
// Only the newest state is written: requests that a newer one overtook
// before the worker reached them are never written (the file says the
// newest).  A failed write is reported by error() (and logged by the agent);
// its generation still counts as done, as the synchronous version acked
// after a failure too.  The destructor finishes the write in progress and
// the newest request, then joins.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "curvebus/status.hpp"

namespace curvebus::agent {

// Writes `text` to `path` through a temporary file, fsync, rename, and an
// fsync of the directory.
Status write_file_synced(const std::string& path, const std::string& text);
// Removes `path` (absent is fine) and syncs its directory.
Status remove_file_synced(const std::string& path);

class EstopLatch {
 public:
  // `path` empty: memory only, every request is durable at once.
  EstopLatch(std::string path, std::function<void()> on_done);
  ~EstopLatch();
  EstopLatch(const EstopLatch&) = delete;
  EstopLatch& operator=(const EstopLatch&) = delete;

  std::uint64_t request(bool latched, const std::string& reason);
  std::uint64_t durable() const;
  // The last write's failure ("" after a success).
  std::string error() const;
  // Blocks until every request so far is done (shutdown).
  void wait_idle();

 private:
  void run();

  const std::string path_;
  const std::function<void()> on_done_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t requested_ = 0, durable_ = 0;
  bool latched_ = false;
  std::string reason_, error_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace curvebus::agent
