// RetainedLog: the broker's retained values on disk, written incrementally and
// off the routing thread, so that a restarted broker (clean stop, SIGKILL or
// power loss) gives subscribers the last known state of every topic at once,
// and no retained publication ever waits for the disk.
//
// Threads and ownership
//   * load(), start(), put(), flush_and_wait() and the destructor are called
//     from one thread, the broker's routing thread.  stats() may be called
//     from any thread.
//   * load() reads the file on the calling thread (once, at startup).  After
//     that, one writer thread started by start() does every file operation:
//     appending, fsync, compaction, creating or rewriting the file.
//   * put() only records the topic's new value in a map of pending changes,
//     under a mutex the writer holds just long enough to swap that map for an
//     empty one, never during I/O: put() does not wait for a write or an fsync.
//     A later put for a topic replaces an earlier one the writer has not taken
//     yet, so pending memory is bounded by the number of topics, whatever the
//     publish rate.
//   * Values are shared, not copied: the log keeps the caller's immutable
//     std::shared_ptr<const std::string> (the broker's fan-out buffer) until
//     the topic's value changes or is cleared; load() hands out the buffers
//     the log itself keeps.
//
// Durability: what a crash can lose
//   * The writer takes the pending changes, appends them and fdatasyncs, at
//     most once every sync_ms (at once for flush_and_wait() and the
//     destructor).  A crash (SIGKILL, power loss) loses at most the puts of
//     the last sync_ms plus the time of one write and fsync (longer while the
//     disk is failing, below), never values that were synced earlier and
//     never the whole file.  A batch that would take the file past the
//     compaction bound (below) is written as a compaction instead.
//   * A failed write or fsync is counted (stats().failures), logged with
//     spdlog (rate-limited) and retried at the next sync (at least 100 ms
//     later) by rewriting the whole file from the live set: after an fsync
//     error the kernel may have dropped the dirty pages, so appending behind
//     them is not trusted.  put() keeps taking values meanwhile.
//
// File format (integers little-endian)
//   header, 16 bytes:   "CBRETLOG" | u32 version = 1 | u32 reserved = 0
//   then records back to back, each:
//     u32  body_len      bytes of body (at least 5)
//     u8   sum[16]       BLAKE2b-128 (libsodium crypto_generichash) of the
//                        4 bytes of body_len followed by body
//     body: u8 kind (1 = value, 0 = tombstone) | u32 topic_len | topic bytes |
//           value bytes (the rest of body; none for a tombstone)
//   A value is the encoded single-op v1::Frame holding the v1::Deliver with
//   retained = true that the broker fans out.  Replaying the records in order
//   gives the live set: the last record of a topic wins, a tombstone clears it.
//   Reading stops at the first record cut short or failing its checksum (the
//   torn tail of a crash, or garbage); the writer rewrites the file before it
//   appends again.  Records with a good checksum whose value is not such a
//   frame for that topic, or whose topic is empty or starts with '$', are
//   skipped and reading goes on.
//   Compaction, on the writer thread, when the file is larger than both
//   compact_min_bytes and compact_ratio times the live bytes (the size of the
//   records of the live values): the live set is written to path + ".tmp",
//   fsynced, renamed over path, and the directory fsynced, so a crash at any
//   moment leaves the old file or the new one, each complete.  A new file (no
//   file yet, after a torn tail or a migration) is made the same way.
//
// Older files: load() also reads the whole-file v1::RetainedStore (format 1)
// of earlier brokers (migrated = true); the writer rewrites it as a log when
// started.  A file that is neither is renamed to path + ".bad" (set_aside)
// and the log starts empty.  Topics starting with '$' are never persisted:
// put() ignores them.
//
// Use (the broker core): at startup load(), give each loaded buffer to its
// topic as the retained value (it is the log's own buffer: no copy), then
// start().  On every change of a retained value call put(topic, value) with
// the buffer the broker fans out, or put(topic, nullptr) when it is cleared.
// At a clean stop flush_and_wait() (or just destroy the log).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "curvebus/status.hpp"
#include "log_limiter.hpp"

namespace curvebus::broker {

class RetainedLog {
 public:
  struct Options {
    std::string path;                            // the log file (e.g. <home>/retained.pb)
    std::uint32_t sync_ms = 1000;                // write + fsync at most this often
    std::uint64_t compact_min_bytes = 1u << 20;  // never compact a smaller file
    double compact_ratio = 2.0;                  // compact when file bytes > ratio * live bytes
    // Test seam: called on the writer thread instead of each fdatasync/fsync
    // (of the log, of a rewritten file, of its directory), with the
    // descriptor; returns 0 or -1 with errno set, as those calls do.  A test
    // makes it slow (the disk of a Raspberry Pi's SD card) or fail.  Null:
    // the real calls.
    std::function<int(int fd)> sync;
  };

  struct Loaded {
    // One entry per topic with a retained value, in no particular order: the
    // encoded single-op v1::Frame holding a v1::Deliver with retained = true,
    // as kept on disk (the same buffer the log keeps; share it, do not copy).
    std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> values;
    std::size_t records = 0;  // records read (values and tombstones)
    std::size_t skipped = 0;  // a torn tail (counts 1) and undecodable records
    bool set_aside = false;   // the file was unreadable and moved to path + ".bad"
    bool migrated = false;    // an old whole-file RetainedStore was read (rewritten as a log)
  };

  struct Stats {
    std::uint64_t appends = 0;      // records appended to the log
    std::uint64_t syncs = 0;        // successful fsyncs of the log (appends and rewrites)
    std::uint64_t compactions = 0;  // successful rewrites of the whole file
    std::uint64_t failures = 0;     // failed writes, fsyncs, renames
    std::uint64_t file_bytes = 0;   // size of the log as far as it is valid
    std::uint64_t live_bytes = 0;   // size the records of the live set take
    std::uint64_t pending = 0;      // topics put but not yet taken by the writer
  };

  explicit RetainedLog(Options o);
  // Writes what is pending, fsyncs and joins the writer thread (or, when
  // start() was never called, writes what was put on the calling thread).
  ~RetainedLog();
  RetainedLog(const RetainedLog&) = delete;
  RetainedLog& operator=(const RetainedLog&) = delete;

  // Reads the file (either format) once, before start().  A missing file is
  // an empty log.  An error Status only for I/O failures (cannot open or map
  // an existing file, cannot move an unreadable one aside); the log then
  // never writes (it would replace a file it could not read): put() still
  // takes values, flush_and_wait() returns that error.
  Result<Loaded> load();

  // Starts the writer thread (calls load() first if it was not called, so an
  // existing file is never appended to unread).  At most once.
  void start();

  // The topic's retained value is now `value`, or cleared when null.  Never
  // blocks on I/O.  Topics that are empty or start with '$' are ignored.
  void put(const std::string& topic, std::shared_ptr<const std::string> value);

  // Clean stop: every value put before the call is written and fsynced when
  // it returns ok (callers that only stop may ignore the Status).  An error when the writer's
  // attempt failed (it retries later; the destructor tries once more).
  Status flush_and_wait();

  Stats stats() const;

 private:
  using Map = std::unordered_map<std::string, std::shared_ptr<const std::string>>;
  using Clock = std::chrono::steady_clock;

  void run();                      // the writer thread
  Status write_batch(Map& batch);  // writer: apply, then append or rewrite
  Status append(const std::vector<const Map::value_type*>& changes);
  Status rewrite();  // writes the live set to a new file, renames it over the log
  Status fail(const char* what, int err);  // counts, logs, schedules a rewrite
  int sync_file(int fd, bool data_only);   // Options::sync, or fdatasync/fsync
  bool compaction_due(std::uint64_t file_bytes) const;

  const Options opts_;

  // Shared with put() and flush_and_wait(), under mu_.
  std::mutex mu_;
  std::condition_variable wake_;     // writer waits for work
  std::condition_variable flushed_;  // flush_and_wait() waits for its ticket
  Map pending_;
  std::uint64_t flush_requested_ = 0, flush_done_ = 0;
  Status flush_status_;
  bool stop_ = false;

  // Routing thread only.
  bool loaded_ = false, started_ = false;
  Status load_error_;  // an I/O error of load(): the writer never starts
  std::thread writer_;

  // Writer only (set up by load() before the writer starts).
  Map live_;                      // the values the file holds
  int fd_ = -1;                   // the log, open for appending, or -1
  std::uint64_t file_end_ = 0;    // end of the last valid record
  std::uint64_t live_bytes_ = 0;  // bytes the records of live_ take
  bool rewrite_needed_ = false;   // no trusted file to append to
  bool last_failed_ = false;
  Clock::time_point last_cycle_{};
  LogLimiter log_limit_{3, 10000};

  std::atomic<std::uint64_t> appends_{0}, syncs_{0}, compactions_{0}, failures_{0};
  std::atomic<std::uint64_t> file_bytes_{0}, live_bytes_stat_{0}, pending_stat_{0};
};

}  // namespace curvebus::broker
