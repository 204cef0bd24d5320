#include "requests.hpp"

#include "curvebus/codec.hpp"

namespace curvebus::client_detail {

void RequestTable::add(std::uint64_t id) {
  waiters_[id];
}

void RequestTable::remove(std::uint64_t id) {
  waiters_.erase(id);
}

std::optional<Result<v1::Op>> RequestTable::wait(std::unique_lock<std::mutex>& lock,
                                                 std::uint64_t id,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  // The map may rehash while we sleep: look the entry up again each time.
  while (!it->second.done) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      it = waiters_.find(id);
      if (it->second.done) break;
      if (!it->second.sent) cancelled_.insert(id);
      waiters_.erase(it);
      return std::nullopt;
    }
    it = waiters_.find(id);
  }
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  if (!w.failure.ok()) return Result<v1::Op>(w.failure);
  return Result<v1::Op>(std::move(w.reply));
}

void RequestTable::mark_sent(const std::vector<std::uint64_t>& tags) {
  for (const std::uint64_t id : tags) {
    auto it = waiters_.find(id);
    if (it != waiters_.end()) it->second.sent = true;
  }
}

bool RequestTable::complete(std::uint64_t id, const v1::Op& reply) {
  auto it = waiters_.find(id);
  if (it == waiters_.end() || it->second.done) return false;
  it->second.reply = reply;
  it->second.done = true;
  cv_.notify_all();
  return true;
}

void RequestTable::fail(const Status& why, bool only_sent) {
  bool any = false;
  for (auto& [id, w] : waiters_)
    if (!w.done && (w.sent || !only_sent)) {
      w.done = true;
      w.failure = why;
      any = true;
    }
  if (any) cv_.notify_all();
}

void RequestTable::fail_sent(const Status& why) {
  fail(why, true);
}

void RequestTable::fail_all(const Status& why) {
  fail(why, false);
}

bool RequestTable::strip_cancelled(const Outbox::Batch& batch, std::string& out) const {
  bool found = false;
  for (const std::uint64_t id : batch.tags)
    if (cancelled_.count(id)) found = true;
  if (!found) return false;
  // The batch is single-op frames end to end (tag 0x0A, length, op): keep
  // each whole frame unless it is a cancelled request.
  out.clear();
  const std::string& b = batch.bytes;
  std::size_t at = 0;
  v1::Op op;
  while (at < b.size()) {
    std::size_t p = at + 1, len = 0;
    for (int shift = 0; p < b.size(); shift += 7) {
      const auto byte = static_cast<unsigned char>(b[p++]);
      len |= static_cast<std::size_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) break;
    }
    const std::size_t end = std::min(b.size(), p + len);
    const bool drop = op.ParseFromArray(b.data() + p, static_cast<int>(end - p)) &&
                      cancelled_.count(request_id_of(op)) > 0;
    if (!drop) out.append(b, at, end - at);
    at = end;
  }
  return true;
}

void RequestTable::forget_cancelled(const std::vector<std::uint64_t>& tags) {
  for (const std::uint64_t id : tags) cancelled_.erase(id);
}

}  // namespace curvebus::client_detail
