// What the broker keeps of one topic for PULL: a ring of the latest
// publications, bounded by count and by bytes (the latest one is always kept,
// whatever its size).  Each entry holds the already-encoded DELIVER frame that
// was fanned out, shared with the subscriber queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace curvebus::broker {

struct StoredPublication {
  std::uint64_t seq = 0;
  std::int64_t timestamp_us = 0;
  std::shared_ptr<const std::string> encoded;  // a single-op Frame holding the Deliver
  std::uint32_t owner = 0;  // who is charged for these bytes (the broker's storage accounting)
};

// What adding a publication of `bytes` would evict (see TopicHistory::plan_add).
struct EvictionPlan {
  std::size_t evicted_bytes = 0;        // all owners
  std::size_t evicted_owner_bytes = 0;  // of the given owner only
};

struct PullSelection {
  std::vector<const StoredPublication*> items;  // oldest first
  std::uint64_t first_kept_seq = 0;             // 0 when nothing is kept
  bool gap = false;  // some publications after since_seq are no longer kept
};

class TopicHistory {
 public:
  TopicHistory(std::size_t depth, std::size_t max_bytes)
      : depth_(depth == 0 ? 1 : depth), max_bytes_(max_bytes) {}

  // Appends `p`, evicting the oldest entries past the bounds; each evicted
  // entry is passed to `evicted` (when set) so its bytes can be credited back.
  template <typename OnEvict>
  void add(StoredPublication p, OnEvict&& evicted) {
    bytes_ += p.encoded ? p.encoded->size() : 0;
    ring_.push_back(std::move(p));
    while (ring_.size() > depth_ || (ring_.size() > 1 && bytes_ > max_bytes_)) {
      bytes_ -= ring_.front().encoded ? ring_.front().encoded->size() : 0;
      evicted(ring_.front());
      ring_.pop_front();
    }
  }
  void add(StoredPublication p) {
    add(std::move(p), [](const StoredPublication&) {});
  }
  // What add() of a publication of `bytes` by `owner` would evict, without
  // changing anything (the broker checks quotas before accepting).
  EvictionPlan plan_add(std::size_t bytes, std::uint32_t owner) const;
  // Visits every kept entry (for crediting the bytes back when the topic is freed).
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& p : ring_) f(p);
  }
  const StoredPublication* latest() const { return ring_.empty() ? nullptr : &ring_.back(); }
  std::size_t size() const { return ring_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::uint64_t first_kept_seq() const { return ring_.empty() ? 0 : ring_.front().seq; }

  // since_seq 0: the latest publication only.  Otherwise every kept
  // publication with seq > since_seq, oldest first, at most max_count
  // (0 = no bound).  `last_seq` is the topic's newest seq.
  PullSelection select(std::uint64_t since_seq, std::size_t max_count,
                       std::uint64_t last_seq) const;

 private:
  std::size_t depth_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::deque<StoredPublication> ring_;
};

}  // namespace curvebus::broker
