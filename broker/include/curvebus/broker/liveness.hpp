// LivenessTimers: the broker's side of the alive signal (docs/protocol.md,
// "Liveness") for every session, with work proportional to what falls due,
// not to the number of sessions.
//
// Per session, with I its agreed interval:
//
//   ALIVE --(2 I without hearing anything: PING)--> PINGED
//   PINGED --(anything heard from the peer)--> ALIVE
//   ALIVE/PINGED --(3 I without hearing anything)--> EXPIRED (the caller drops it)
//
// The broker's own proof of life, so the peer can tell a dead broker (the
// peer gives up after 3 I of silence):
//   * Answer: a message from the peer is answered with HEARTBEAT at once when
//     the broker has sent that peer nothing for the answer time — I/2 for an
//     eager session (every heartbeat of the peer is answered), 3I/2 for a
//     relaxed one (about every second).  Answering in the same turn as the
//     peer's message costs far less than a send of its own: no extra wake-up,
//     and the TCP acknowledgement of the peer's message travels with it.
//   * Heartbeat: when the broker has sent a peer nothing for I (eager) or
//     5I/2 (relaxed) — a peer that keeps to its own heartbeat gets an answer
//     before that — it sends HEARTBEAT on its own.
//   So a peer hears from the broker at least every I (eager) or 5I/2
//   (relaxed).  Sessions with I under kRelaxedFromMs are eager: a peer that
//   chose a short interval wants a broken link noticed fast (a robot's
//   dead-man, a teleop controller), and the 3 I timeout leaves the relaxed
//   rule a margin of I/2 >= 500 ms only from there on.
//
// Cost.  Sessions of one interval form a group holding three lists, each
// kept in time order by moving an entry to its tail: alive (by last heard),
// pinged (by last heard), and sent (by last sent).  Hearing from a peer or
// sending to it is O(1); run() looks only at list heads that are due, and
// at groups through a min-heap of their earliest deadlines.  A live peer's
// entry is never visited by the timers at all.
//
// Ownership and thread: the caller owns each Entry (embedded in its session;
// it must not move while added) and calls everything from one thread.  An
// Entry belongs to at most one LivenessTimers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <utility>
#include <vector>

namespace curvebus::broker {

// timeout = 3 intervals, ping after 2 intervals of silence.
inline constexpr std::uint32_t kTimeoutIntervals = 3;
inline constexpr std::uint32_t kPingIntervals = 2;
// Sessions with an interval of at least this are relaxed (see above).
inline constexpr std::uint32_t kRelaxedFromMs = 1000;

class LivenessTimers {
 public:
  enum class Action { kPing, kExpire, kHeartbeat };
  struct Group;

  // One session's state, embedded in the session.  Read freely; change only
  // through LivenessTimers.
  struct Entry {
    std::uint64_t id = 0;           // the caller's key, passed back by run()
    std::int64_t last_seen_ms = 0;  // last message heard from the peer
    std::int64_t last_sent_ms = 0;  // last output to the peer (or a decided heartbeat)
    bool pinged = false;            // a PING is outstanding
    std::uint32_t interval_ms = 0;  // I
    Group* group = nullptr;         // null while not added
    Entry* seen_prev = nullptr;     // in the group's alive or pinged list
    Entry* seen_next = nullptr;
    Entry* sent_prev = nullptr;  // in the group's sent list
    Entry* sent_next = nullptr;
  };

  LivenessTimers();
  ~LivenessTimers();
  LivenessTimers(const LivenessTimers&) = delete;
  LivenessTimers& operator=(const LivenessTimers&) = delete;

  // Starts watching `e` (its id set by the caller) with interval I: heard
  // and sent at `now`, alive.  An entry already added is moved to the group
  // of the new interval, keeping its times (a second REGISTER).
  void add(Entry& e, std::uint32_t interval_ms, std::int64_t now);
  // Stops watching `e` (no-op when not added).
  void remove(Entry& e);

  // A message was heard from the peer at `now`: alive again.  True when the
  // broker should answer it with a HEARTBEAT now (nothing sent for the
  // answer time); the caller then sends one, or skips it when output is
  // already queued, and calls sent() when output leaves.
  bool heard(Entry& e, std::int64_t now);
  // Output left for the peer at `now`.
  void sent(Entry& e, std::int64_t now);

  // Calls act(entry, action) for what is due at `now`, in time order within
  // an interval.  Before the call the entry is updated: kPing marks it
  // pinged and sent at `now`; kHeartbeat marks it sent at `now` (whether the
  // caller sends one or has output pending); kExpire removes it.  `act` must
  // not add or remove other entries; it may destroy an expired one.
  void run(std::int64_t now, const std::function<void(Entry&, Action)>& act);

  // The earliest time run() may have something to do (INT64_MAX when nothing
  // is watched).  Never later than the real next deadline; may be earlier.
  std::int64_t next_due() const;

  std::size_t size() const { return size_; }

  // The answer and heartbeat times of interval I (see above).
  static std::int64_t answer_after_ms(std::uint32_t interval_ms);
  static std::int64_t heartbeat_after_ms(std::uint32_t interval_ms);

 private:
  void schedule(Group& g);
  void erase_group_if_empty(Group& g);

  std::map<std::uint32_t, std::unique_ptr<Group>> groups_;  // by interval
  // (deadline, interval): a group's earliest deadline when it was scheduled;
  // entries whose time is not the group's `scheduled_ms` any more are stale.
  using Due = std::pair<std::int64_t, std::uint32_t>;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::size_t size_ = 0;
  bool running_ = false;  // inside run(): groups are not erased
};

}  // namespace curvebus::broker
