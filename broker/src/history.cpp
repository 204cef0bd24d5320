#include "curvebus/broker/history.hpp"

namespace curvebus::broker {

void TopicHistory::add(StoredPublication p) {
  bytes_ += p.encoded ? p.encoded->size() : 0;
  ring_.push_back(std::move(p));
  while (ring_.size() > depth_ || (ring_.size() > 1 && bytes_ > max_bytes_)) {
    bytes_ -= ring_.front().encoded ? ring_.front().encoded->size() : 0;
    ring_.pop_front();
  }
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
