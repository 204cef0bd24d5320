// Sessions and their outbound queues: bounded queues of encoded ops, flushed
// as batches (concatenated frames, one ZeroMQ message, one CURVE box).
#include <cerrno>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {
constexpr std::size_t kControlHeadroomOps = 1024;
constexpr std::size_t kControlHeadroomBytes = 1u << 20;
constexpr std::size_t kMaxTombstones = 10000;
constexpr std::size_t kEagerFlushOps = 64;
}  // namespace

Session* Core::find_session(const std::string& routing_id) {
  auto it = by_routing_id_.find(routing_id);
  return it == by_routing_id_.end() ? nullptr : it->second;
}

Session* Core::find_session(std::uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Core::mark_dirty(Session& s) {
  if (s.dirty) return;
  s.dirty = true;
  dirty_.push_back(s.id);
}

bool Core::enqueue_delivery(Session& s, const Bytes& bytes) {
  if (s.pending_ops() >= config_.queue_limit ||
      s.queue_bytes + bytes->size() > config_.queue_limit_bytes) {
    ++s.dropped;
    ++counters_.dropped;
    std::uint64_t suppressed = 0;
    if (log_drop_.allow(suppressed))
      spdlog::warn(
          "queue full, delivery dropped name={} session={} queued={} bytes={} dropped={}{}", s.name,
          s.session_id, s.pending_ops(), s.queue_bytes, s.dropped,
          suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    return false;
  }
  s.queue.push_back(bytes);
  s.queue_bytes += bytes->size();
  ++counters_.deliveries;
  mark_dirty(s);
  // Hand a full batch to libzmq at once rather than holding it for the rest
  // of the input burst: the queue bound is about what the broker holds.
  if (s.queue_bytes >= config_.max_batch_bytes || s.queue.size() >= kEagerFlushOps)
    flush_session(s, false);
  return true;
}

void Core::send_control(Session& s, const v1::Op& op) {
  send_control(s, std::make_shared<const std::string>(encode_op(op)), op_name(op.body_case()));
}

void Core::send_control(Session& s, const Bytes& bytes, const char* what) {
  // Control replies may use headroom beyond the delivery bound; a peer that
  // floods requests without reading eventually loses replies, counted and logged.
  if (s.pending_ops() >= config_.queue_limit + kControlHeadroomOps ||
      s.queue_bytes + bytes->size() > config_.queue_limit_bytes + kControlHeadroomBytes) {
    ++s.control_dropped;
    ++s.dropped;
    ++counters_.dropped;
    std::uint64_t suppressed = 0;
    if (log_drop_.allow(suppressed))
      spdlog::warn("queue full, {} reply dropped name={} session={} queued={}{}", what, s.name,
                   s.session_id, s.pending_ops(),
                   suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    return;
  }
  s.queue_bytes += bytes->size();
  s.queue.push_back(bytes);
  mark_dirty(s);
}

void Core::send_error(Session& s, v1::ErrorCode code, std::uint64_t request_id,
                      const std::string& message, const std::string& topic, const char* answers,
                      std::uint64_t count) {
  v1::Op op;
  auto* e = op.mutable_error();
  e->set_request_id(request_id);
  e->set_code(code);
  e->set_message(message);
  e->set_topic(topic);
  e->set_answers(answers);
  e->set_count(count);
  ++counters_.errors_sent;
  send_control(s, op);
}

bool Core::flush_session(Session& s, bool may_drop) {
  s.dirty = false;
  const std::int64_t now = now_ms();
  while (true) {
    if (s.stalled.empty()) {
      if (s.queue.empty()) break;
      // Concatenate queued frames into one batch (one op bigger than the
      // bound travels alone).
      while (!s.queue.empty()) {
        const std::string& next = *s.queue.front();
        if (!s.stalled.empty() && s.stalled.size() + next.size() > config_.max_batch_bytes) break;
        s.stalled.append(next);
        ++s.stalled_ops;
        s.queue.pop_front();
      }
    }
    switch (write(s.routing_id, s.stalled, s.stalled_ops)) {
      case PeerWriter::Result::kSent:
        break;
      case PeerWriter::Result::kWouldBlock:
        backlogged_.insert(s.id);
        return true;
      case PeerWriter::Result::kGone:
        if (!may_drop) {
          backlogged_.insert(s.id);
          return true;
        }
        drop_session(s, CloseReason::kTimeout, "connection lost");
        return false;
      case PeerWriter::Result::kFailed:
        spdlog::error("send failed name={} session={}: {}", s.name, s.session_id, writer_->error());
        backlogged_.insert(s.id);
        return true;
    }
    s.messages_out += s.stalled_ops;
    s.queue_bytes -= s.stalled.size();
    liveness_.sent(s.alive, now);
    s.stalled.clear();
    s.stalled_ops = 0;
  }
  backlogged_.erase(s.id);
  return true;
}

void Core::flush_all() {
  for (std::uint64_t id : backlogged_) {
    if (Session* s = find_session(id)) mark_dirty(*s);
  }
  std::vector<std::uint64_t> ids;
  ids.swap(dirty_);
  for (std::uint64_t id : ids) {
    if (Session* s = find_session(id)) flush_session(*s);
  }
  // Sessions dropped while flushing may leave stale ids behind.
  for (auto it = backlogged_.begin(); it != backlogged_.end();)
    it = sessions_.count(*it) ? std::next(it) : backlogged_.erase(it);
}

void Core::add_provides(const Session& s) {
  for (const auto& topic : s.provides) ++directory_[topic].providers[s.name];
}

void Core::remove_provides(const Session& s) {
  for (const auto& topic : s.provides) {
    auto it = directory_.find(topic);
    if (it == directory_.end()) continue;
    auto p = it->second.providers.find(s.name);
    if (p != it->second.providers.end() && --p->second == 0) it->second.providers.erase(p);
    if (!it->second.topic && it->second.providers.empty()) directory_.erase(it);
  }
}

void Core::tombstone(const std::string& routing_id, v1::ErrorCode code) {
  if (tombstones_.emplace(routing_id, code).second) {
    tombstone_order_.push_back(routing_id);
  } else {
    tombstones_[routing_id] = code;
  }
  while (tombstone_order_.size() > kMaxTombstones) {
    tombstones_.erase(tombstone_order_.front());
    tombstone_order_.pop_front();
  }
}

void Core::drop_session(Session& s, CloseReason reason, const std::string& detail) {
  const std::uint64_t id = s.id;
  // Last words (ERROR KICKED / REVOKED) go out if the pipe takes them; the
  // session is forgotten either way.  Never when the routing id now belongs
  // to another key's connection (identity mismatch): that would hand it this
  // session's deliveries.
  if (s.has_output() && reason != CloseReason::kTimeout && reason != CloseReason::kIdentity) {
    std::string rest = s.stalled;
    for (const auto& b : s.queue) rest.append(*b);
    (void)write(s.routing_id, rest, s.pending_ops());
  }
  for (const auto& pattern : s.subscriptions) tree_.unsubscribe(pattern, id);
  remove_provides(s);
  liveness_.remove(s.alive);
  by_routing_id_.erase(s.routing_id);
  backlogged_.erase(id);
  if (s.ns && s.ns->sessions > 0) --s.ns->sessions;
  if (reason == CloseReason::kTimeout) ++counters_.sessions_timed_out;
  spdlog::info("session close name={} session={} reason={} detail=\"{}\" in={} out={} dropped={}",
               s.name, s.session_id, reason_name(reason), printable(detail, 256), s.messages_in,
               s.messages_out, s.dropped);
  publish_presence(s, false, reason);
  sessions_.erase(id);
}

}  // namespace curvebus::broker
