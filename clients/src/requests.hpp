// RequestTable: the client's requests that wait for the broker's answer
// (SUBSCRIBE, UNSUBSCRIBE, PUBLISH with ack, PULL, TOPICS, ADMIN).
//
// Life of a request:
//   1. a caller thread takes an id (next_id()), encodes its op with it, and,
//      holding the client's mutex, add()s the id and pushes the op into the
//      connection's Outbox as Class::kControl with tag = id;
//   2. it wait()s; the I/O thread
//        * mark_sent()s the ids of a batch once the socket has taken it,
//        * complete()s an id with the broker's reply (REGISTERED excepted:
//          the link itself handles it), or
//        * fail_sent()s every sent request when the link is lost ("NO_BROKER":
//          its answer will never come), and fail_all()s at close ("CLOSED");
//      requests not yet sent when the link is lost stay queued and wait on;
//   3. wait() returns the reply or the failure, or nothing when the time is
//      up; either way the entry is gone.  A request whose time ran out before
//      it was sent is cancelled: the I/O thread strips it from its batch
//      (strip_cancelled) so it never reaches the broker after its caller was
//      told it failed.  One that was sent may still be answered; the answer
//      finds no waiter and is dropped.
//
// Ids are unique for the client's lifetime (a 64-bit counter from 1); 0 means
// "no request" on the wire.
//
// Thread: next_id() is lock-free; every other method must be called with the
// client's mutex held (the one guarding the Outbox), which wait() releases
// while it sleeps.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "curvebus.pb.h"
#include "curvebus/outbox.hpp"
#include "curvebus/status.hpp"

namespace curvebus::client_detail {

class RequestTable {
 public:
  std::uint64_t next_id() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  // Registers a waiter for `id` (not yet sent).
  void add(std::uint64_t id);
  // Forgets `id` without waiting (its op could not be queued).
  void remove(std::uint64_t id);

  // Sleeps on `lock` (holding the client's mutex) until `id` is answered or
  // failed, or `timeout` passes (nullopt).  The entry is removed either way.
  // The reply may be an ERROR op: the caller turns it into a Status.
  std::optional<Result<v1::Op>> wait(std::unique_lock<std::mutex>& lock, std::uint64_t id,
                                     std::chrono::milliseconds timeout);

  // I/O thread.  The ops tagged `tags` left in a batch the socket accepted.
  void mark_sent(const std::vector<std::uint64_t>& tags);
  // Hands `reply` to the waiter of `id`; false when nobody waits for it.
  bool complete(std::uint64_t id, const v1::Op& reply);
  // Fails every waiter whose request was sent / every waiter.
  void fail_sent(const Status& why);
  void fail_all(const Status& why);

  // True when some queued request was cancelled and not stripped yet.
  bool has_cancelled() const { return !cancelled_.empty(); }
  // Writes into `out` the ops of `batch` minus cancelled requests and
  // returns true, or returns false (and leaves `out` alone) when the batch
  // holds none.  The cancelled ids stay cancelled until forget_cancelled()
  // with the tags of the batch once it is sent.
  bool strip_cancelled(const Outbox::Batch& batch, std::string& out) const;
  void forget_cancelled(const std::vector<std::uint64_t>& tags);

  std::size_t waiting() const { return waiters_.size(); }

 private:
  struct Waiter {
    bool sent = false;
    bool done = false;
    v1::Op reply;
    Status failure;
  };
  void fail(const Status& why, bool only_sent);

  std::atomic<std::uint64_t> next_id_{1};
  std::unordered_map<std::uint64_t, Waiter> waiters_;
  std::unordered_set<std::uint64_t> cancelled_;
  std::condition_variable cv_;
};

}  // namespace curvebus::client_detail
