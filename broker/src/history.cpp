#include "curvebus/broker/history.hpp"

namespace curvebus::broker {

EvictionPlan TopicHistory::plan_add(std::size_t bytes, std::uint32_t owner) const {
  EvictionPlan plan;
  std::size_t size = ring_.size() + 1;
  std::size_t total = bytes_ + bytes;
  for (const auto& p : ring_) {  // oldest first, as add() evicts
    if (!(size > depth_ || (size > 1 && total > max_bytes_))) break;
    const std::size_t b = p.encoded ? p.encoded->size() : 0;
    plan.evicted_bytes += b;
    if (p.owner == owner) plan.evicted_owner_bytes += b;
    total -= b;
    --size;
  }
  return plan;
}

PullSelection TopicHistory::select(std::uint64_t since_seq, std::size_t max_count,
                                   std::uint64_t last_seq) const {
  PullSelection sel;
  sel.first_kept_seq = first_kept_seq();
  if (since_seq == 0) {
    if (!ring_.empty()) sel.items.push_back(&ring_.back());
    return sel;
  }
  if (since_seq < last_seq) {
    // Publications since_seq+1 .. last_seq were made; the oldest kept is first_kept_seq.
    sel.gap = ring_.empty() || sel.first_kept_seq > since_seq + 1;
  }
  for (const auto& p : ring_) {
    if (p.seq <= since_seq) continue;
    if (max_count != 0 && sel.items.size() >= max_count) break;
    sel.items.push_back(&p);
  }
  return sel;
}

}  // namespace curvebus::broker
