#include "curvebus/outbox.hpp"

#include <utility>

namespace curvebus {

namespace {
// Buffers of sent batches kept for reuse.  Two suffice for a steady stream
// (one being filled, one on its way out) and bound what an idle outbox keeps.
constexpr std::size_t kSpareBatches = 2;
}  // namespace

bool Outbox::has_room(std::size_t bytes, Class cls) const {
  std::size_t max_ops = limits_.max_ops, max_bytes = limits_.max_bytes;
  if (cls == Class::kControl) {
    max_ops += limits_.headroom_ops;
    max_bytes += limits_.headroom_bytes;
  }
  return ops_ < max_ops && bytes_ + bytes <= max_bytes;
}

Outbox::Batch Outbox::fresh() {
  Batch b;
  if (!spare_.empty()) {
    b = std::move(spare_.back());
    spare_.pop_back();
  }
  // A batch started behind another one will be filled: allocate it whole
  // once instead of growing it by doubling.
  if (!batches_.empty() && b.bytes.capacity() < limits_.batch_bytes)
    b.bytes.reserve(limits_.batch_bytes);
  return b;
}

bool Outbox::push(std::string_view encoded, Class cls, std::uint64_t tag) {
  if (!has_room(encoded.size(), cls)) {
    ++dropped_;
    if (cls == Class::kControl) ++control_dropped_;
    return false;
  }
  if (batches_.empty() || (!batches_.back().bytes.empty() &&
                           batches_.back().bytes.size() + encoded.size() > limits_.batch_bytes))
    batches_.push_back(fresh());
  Batch& b = batches_.back();
  b.bytes.append(encoded.data(), encoded.size());
  ++b.ops;
  if (tag != 0) b.tags.push_back(tag);
  ++ops_;
  bytes_ += encoded.size();
  return true;
}

bool Outbox::take(Batch& out) {
  if (batches_.empty() || batches_.front().ops == 0) return false;
  if (out.bytes.capacity() > 0 && spare_.size() < kSpareBatches) {
    out.bytes.clear();
    out.ops = 0;
    out.tags.clear();
    spare_.push_back(std::move(out));
  }
  out = std::move(batches_.front());
  batches_.pop_front();
  taken_ops_ += out.ops;
  taken_bytes_ += out.bytes.size();
  return true;
}

void Outbox::restore(Batch&& batch) {
  if (batch.ops == 0) return;
  taken_ops_ -= batch.ops;
  taken_bytes_ -= batch.bytes.size();
  batches_.push_front(std::move(batch));
  batch = Batch{};
}

void Outbox::sent(Batch&& batch) {
  taken_ops_ -= batch.ops;
  taken_bytes_ -= batch.bytes.size();
  ops_ -= batch.ops;
  bytes_ -= batch.bytes.size();
  ops_sent_ += batch.ops;
  bytes_sent_ += batch.bytes.size();
  ++batches_sent_;
  batch.bytes.clear();
  batch.ops = 0;
  batch.tags.clear();
  if (spare_.size() < kSpareBatches) spare_.push_back(std::move(batch));
  batch = Batch{};
}

std::size_t Outbox::flush(const std::function<bool(const std::string&)>& send,
                          std::vector<std::uint64_t>* sent_tags) {
  std::size_t n = 0;
  Batch b;
  while (take(b)) {
    if (!send(b.bytes)) {
      restore(std::move(b));
      break;
    }
    n += b.ops;
    if (sent_tags) sent_tags->insert(sent_tags->end(), b.tags.begin(), b.tags.end());
    sent(std::move(b));
  }
  return n;
}

std::size_t Outbox::clear() {
  const std::size_t n = ops_ - taken_ops_;
  batches_.clear();
  ops_ = taken_ops_;
  bytes_ = taken_bytes_;
  return n;
}

}  // namespace curvebus
