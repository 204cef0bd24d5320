// AuditLog: the broker's audit trail of security decisions (handshake
// failures, unknown keys, ACL denials, admin actions, revocations, rate-limit
// hits) as JSON lines in a file of its own:
//
//   {"ts":"2026-12-01T10:00:00.123456Z","event":"acl_denied","who":"alex","topic":"robot/x/cmd"}
//
// Every string in a line (keys and values) goes through json_string(), so a
// peer-supplied name, topic or address can neither end the line nor add a
// field.  `ts` is wall-clock UTC with microseconds; the window arithmetic uses
// the caller's steady-clock milliseconds.
//
// Under flood, lines are aggregated per (who, event) in fixed windows of
// `window_ms`: the first `burst` events of a key in a window are written in
// full, the rest only counted; when the window ends one aggregate line per key
// that went past its burst says how many were not written in full:
//
//   {"ts":"...","event":"acl_denied","who":"alex","count":99995,"window_ms":1000,"aggregated":true}
//
// At most `max_keys` distinct (who, event) keys are tracked per window; an
// event whose key finds the table full is accounted to the key ("*", event):
// its first `burst` events in the window are still written in full (with the
// real who), the rest counted in that key's aggregate.  So for every window
// (events written in full) + (sum of aggregate counts) == events recorded, and
// a window adds at most (max_keys + distinct event names) * (burst + 1) lines
// whatever the peers send.  `who` is keyed on its first 256 bytes, the part
// json_string() shows.
//
// Cost: record() formats into a memory buffer; flush() issues one write() of
// what is buffered (no fsync), and rotates the file to `path + ".1"` (one old
// file kept, the previous one replaced) before a write that would take it
// past `max_bytes`.  Write and rotation failures are counted in stats() and
// never thrown; lines that could not be written are dropped, the broker goes
// on.  The buffer is flushed by record() itself past 1 MiB.
//
// Thread: not thread-safe; owned and called by the broker's routing thread,
// which calls tick() and flush() once per loop turn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "curvebus/status.hpp"

namespace curvebus::broker {

// One field of an audit line.  `value` is written as a JSON number when
// is_number and it is one (e.g. "42", "-1.5"); anything else is written as a
// JSON string.  Keys should not repeat "ts", "event" or "who".
struct AuditField {
  std::string_view key;
  std::string_view value;
  bool is_number = false;
};

class AuditLog {
 public:
  struct Options {
    std::string path;                       // empty = no file (lines still built and counted)
    std::uint64_t max_bytes = 64ull << 20;  // rotate to path + ".1" past this
    std::uint32_t burst = 5;                // full lines per (who, event) per window
    std::int64_t window_ms = 1000;          // aggregation window (steady clock)
    std::size_t max_keys = 1000;            // distinct (who, event) per window; beyond, who = "*"
  };

  struct Stats {
    std::uint64_t events = 0;         // record() calls
    std::uint64_t written = 0;        // events written in full (record() returned true)
    std::uint64_t aggregated = 0;     // events only counted (record() returned false)
    std::uint64_t overflow_keys = 0;  // events accounted to who = "*" (key table full)
    std::uint64_t write_failures =
        0;                        // flushes whose write() failed or fell short, or found no file
    std::uint64_t rotations = 0;  // files moved to path + ".1"
  };

  explicit AuditLog(Options o);
  ~AuditLog();  // flushes what is buffered
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Opens (creating or appending) the file with mode 0600.  Ok when `path` is
  // empty.  An error Status names the path and the reason.  Without a
  // successful open() lines are counted as write failures and dropped.
  Status open();

  // Records one security decision at `now_ms` (steady clock, ms) by `who` (a
  // client name, a key fingerprint or an address:port).  Returns true when it
  // is written in full, with *line (when non-null) set to the JSON line
  // without its newline; returns false, *line cleared, when it is only counted
  // into this window's aggregate.  A window that ended before `now_ms` is
  // closed first, its aggregate lines kept for the next tick().
  bool record(std::int64_t now_ms, std::string_view event, std::string_view who,
              std::initializer_list<AuditField> fields, std::string* line = nullptr);

  // Closes the window when it has ended by `now_ms`: writes one aggregate line
  // per (who, event) that had events beyond its burst, and appends to *lines
  // (when non-null) these lines and those of windows record() closed since the
  // last tick (at most 4 * (max_keys + 1) waiting lines are kept for tick()),
  // e.g. for the broker to publish on $SYS/audit/<event>.
  void tick(std::int64_t now_ms, std::vector<std::string>* lines = nullptr);

  // Writes what is buffered with one write(), rotating first when the file
  // would pass max_bytes.  Cheap when nothing is buffered.
  void flush();

  const Stats& stats() const { return stats_; }

 private:
  struct Key {
    std::string event;
    std::string who;
    std::uint64_t count = 0;  // events of this key in the window
  };

  Key& key_for(std::string_view event, std::string_view who);
  void close_window(std::vector<std::string>* lines);
  void begin_line(std::string& out, std::string_view event, std::string_view who);
  void append_line(const std::string& line);
  bool open_file();
  void rotate();

  Options opt_;
  Stats stats_;
  int fd_ = -1;
  bool opened_ = false;     // open() succeeded once: reopen after a failed rotation
  bool torn_line_ = false;  // a short write left a partial line in the file
  std::uint64_t file_bytes_ = 0;
  std::string buffer_;                // lines waiting for flush()
  std::vector<std::string> waiting_;  // aggregate lines not yet handed out by tick()

  bool window_open_ = false;
  std::int64_t window_start_ = 0;
  std::vector<Key> keys_;                               // this window's keys, in first-seen order
  std::unordered_map<std::string, std::size_t> index_;  // event '\0' who -> keys_ index
  std::size_t tracked_ = 0;                             // keys_ entries that are not who = "*"
  std::string scratch_;                                 // lookup key, reused
};

}  // namespace curvebus::broker
