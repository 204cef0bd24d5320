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

  void add(StoredPublication p);
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
