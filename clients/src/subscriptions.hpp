// Subscriptions and Dispatcher: which handler gets which delivery.
//
// Subscriptions is the registry the caller threads edit: one entry per
// Client::subscribe() call (its patterns and its handler).  Every change bumps
// generation(), so the I/O thread's per-topic cache knows it is stale.
// Thread: guarded by the client's mutex, except generation() (lock-free).
//
// Dispatcher is the I/O thread's side: deliver() builds one Message from the
// wire fields and calls every matching handler with it, in subscription
// order.  It keeps, per topic seen:
//   * the handlers whose patterns match it, recomputed (under the client's
//     mutex) only when the registry's generation moved, so a steady stream
//     costs one hash lookup per delivery, no lock and no pattern matching;
//   * the highest live seq, to count sequence gaps (a live delivery whose seq
//     skips ahead of the last one + 1; retained values are not counted).
// The per-topic table grows with the distinct topics delivered and is never
// trimmed (as the earlier per-topic last-seq map was not).
// Counters are written by the I/O thread only and read from any thread.
// Thread: deliver() on the I/O thread only; handlers run there, one message
// at a time, with no lock held.  The Message passed to a handler is valid for
// the duration of the call (it is reused for the next delivery).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "curvebus/client.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::client_detail {

struct Subscription {
  std::vector<std::string> patterns;  // guarded by the client's mutex
  MessageHandler handler;             // fixed once added
};

class Subscriptions {
 public:
  std::shared_ptr<Subscription> add(const std::vector<std::string>& patterns,
                                    MessageHandler handler);
  void remove(const std::shared_ptr<Subscription>& s);
  // Takes `patterns` out of every entry; entries left without any go.
  void remove_patterns(const std::vector<std::string>& patterns);
  // Every pattern of every entry, sorted, each once (for re-subscribing).
  std::vector<std::string> patterns() const;
  // Appends the entries with a pattern matching `topic`, in registry order.
  void match(std::string_view topic, std::vector<std::shared_ptr<Subscription>>& out) const;

  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  void bump() { generation_.fetch_add(1, std::memory_order_release); }
  std::vector<std::shared_ptr<Subscription>> entries_;
  std::atomic<std::uint64_t> generation_{1};
};

class Dispatcher {
 public:
  // `mu` guards `subs`; both outlive the Dispatcher.
  Dispatcher(std::mutex& mu, const Subscriptions& subs) : mu_(mu), subs_(subs) {}

  void deliver(const DeliverView& d);

  std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  std::uint64_t sequence_gaps() const { return gaps_.load(std::memory_order_relaxed); }

 private:
  struct Topic {
    std::uint64_t last_seq = 0;
    std::uint64_t generation = 0;  // of the registry `handlers` was computed from
    std::vector<std::shared_ptr<Subscription>> handlers;
  };
  // Single writer (this thread): a plain load and store, no locked instruction.
  static void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::mutex& mu_;
  const Subscriptions& subs_;
  std::unordered_map<std::string, Topic> topics_;  // entries never move nor go
  Topic* last_ = nullptr;                          // the entry of message_.topic
  Message message_;
  std::atomic<std::uint64_t> delivered_{0}, gaps_{0};
};

}  // namespace curvebus::client_detail
