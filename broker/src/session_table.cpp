// SessionTable (session_table.hpp): sessions, their Outboxes and the writer,
// tombstones, liveness timers and key expiries.
#include "session_table.hpp"

#include <spdlog/spdlog.h>

#include "curvebus/text.hpp"

namespace curvebus::broker {

namespace {
constexpr std::size_t kMaxTombstones = 10000;
constexpr std::size_t kMaxUnregisteredTracked = 10000;
// Ops queued for one session before its output goes to the writer without
// waiting for the end of the turn (a full batch goes at once too).
constexpr std::size_t kEagerFlushOps = 64;
}  // namespace

SessionTable::SessionTable(const Config& config, PeerWriter& writer, Counters& counters)
    : config_(config), writer_(writer), counters_(counters) {
  limits_.max_ops = config_.queue_limit;
  limits_.max_bytes = config_.queue_limit_bytes;
  limits_.headroom_ops = 1024;
  limits_.headroom_bytes = 1u << 20;
  limits_.batch_bytes = config_.max_batch_bytes;
}

SessionTable::~SessionTable() {
  for (auto& [id, s] : sessions_) liveness_.remove(s->alive);
}

Session* SessionTable::find(std::uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

std::vector<Session*> SessionTable::all() const {
  std::vector<Session*> out;
  out.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) out.push_back(s.get());
  return out;
}

Session& SessionTable::open(const std::string& peer) {
  auto owned = std::make_unique<Session>();
  Session& s = *owned;
  s.id = next_id_++;
  s.peer = peer;
  s.alive.id = s.id;
  s.outbox.set_limits(limits_);
  tombstones_.erase(peer);
  unregistered_limit_.erase(peer);
  by_peer_[peer] = &s;
  sessions_.emplace(s.id, std::move(owned));
  return s;
}

void SessionTable::erase(Session& s) {
  const std::uint64_t id = s.id;
  liveness_.remove(s.alive);
  backlogged_.erase(id);
  by_peer_.erase(s.peer);
  sessions_.erase(id);  // stale ids in dirty_ and expiry_ are skipped
}

// ---------------------------------------------------------------- output

void SessionTable::mark_dirty(Session& s) {
  if (s.dirty) return;
  s.dirty = true;
  dirty_.push_back(s.id);
}

void SessionTable::dropped(Session& s, std::string_view what) {
  ++counters_.dropped;
  std::uint64_t suppressed = 0;
  if (log_drop_.allow(suppressed))
    spdlog::warn("queue full, {} dropped name={} session={} queued={} bytes={} dropped={}{}", what,
                 s.name, s.session_id, s.outbox.ops(), s.outbox.bytes(), s.outbox.dropped(),
                 suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
}

Delivery SessionTable::deliver(SubscriberId id, std::string_view encoded) {
  Session* s = find(id);
  if (!s) return Delivery::kAbsent;
  if (!s->outbox.push(encoded, Outbox::Class::kData)) {
    dropped(*s, "delivery");
    return Delivery::kDropped;
  }
  ++counters_.deliveries;
  mark_dirty(*s);
  // Hand a full batch to libzmq at once rather than holding it for the rest
  // of the input burst: the queue bound is about what the broker holds.
  if ((s->outbox.batch_full() || s->outbox.ops() >= kEagerFlushOps) && !backlogged_.count(id))
    flush(*s);  // a lost connection is noticed at flush_all()
  return Delivery::kQueued;
}

bool SessionTable::control(Session& s, std::string_view encoded, const char* what) {
  // Replies may use headroom beyond the delivery bound; a peer that floods
  // requests without reading eventually loses replies, counted and logged.
  if (!s.outbox.push(encoded, Outbox::Class::kControl)) {
    dropped(s, std::string(what) + " reply");
    return false;
  }
  mark_dirty(s);
  return true;
}

PeerWriter::Result SessionTable::write(const std::string& peer, std::string_view message,
                                       std::size_t ops) {
  const PeerWriter::Result r = writer_.write(peer, message);
  if (r == PeerWriter::Result::kSent) {
    ++counters_.frames_out;
    counters_.messages_out += ops;
    counters_.bytes_out += message.size();
  }
  return r;
}

bool SessionTable::flush(Session& s) {
  s.dirty = false;
  Outbox::Batch batch;
  while (s.outbox.take(batch)) {
    switch (write(s.peer, batch.bytes, batch.ops)) {
      case PeerWriter::Result::kSent:
        s.outbox.sent(std::move(batch));
        liveness_.sent(s.alive, now_ms_);
        continue;
      case PeerWriter::Result::kWouldBlock:
        s.outbox.restore(std::move(batch));
        backlogged_.insert(s.id);
        return true;
      case PeerWriter::Result::kGone:
        s.outbox.restore(std::move(batch));
        backlogged_.insert(s.id);
        return false;
      case PeerWriter::Result::kFailed:
        s.outbox.restore(std::move(batch));
        spdlog::error("send failed name={} session={}: {}", s.name, s.session_id, writer_.error());
        backlogged_.insert(s.id);
        return true;
    }
  }
  backlogged_.erase(s.id);
  return true;
}

void SessionTable::flush_all(std::vector<std::uint64_t>& lost) {
  for (std::uint64_t id : backlogged_)
    if (Session* s = find(id)) mark_dirty(*s);
  std::vector<std::uint64_t> ids;
  ids.swap(dirty_);
  for (std::uint64_t id : ids) {
    Session* s = find(id);
    if (s && !flush(*s)) lost.push_back(id);
  }
  for (auto it = backlogged_.begin(); it != backlogged_.end();)
    it = sessions_.count(*it) ? std::next(it) : backlogged_.erase(it);
}

void SessionTable::write_remaining(Session& s) {
  Outbox::Batch batch;
  while (s.outbox.take(batch)) {
    if (write(s.peer, batch.bytes, batch.ops) != PeerWriter::Result::kSent) break;
    s.outbox.sent(std::move(batch));
  }
  s.outbox.clear();
}

// ---------------------------------------------------------------- peers without a session

bool SessionTable::may_answer_unregistered(const std::string& peer, std::int64_t now_ms) {
  // At most a few answers per second per routing id, so bad input cannot be
  // amplified into traffic.
  if (unregistered_limit_.size() > kMaxUnregisteredTracked) unregistered_limit_.clear();
  auto it = unregistered_limit_.find(peer);
  if (it == unregistered_limit_.end())
    it = unregistered_limit_.emplace(peer, TokenBucket(5, 5)).first;
  return it->second.take(now_ms);
}

void SessionTable::tombstone(const std::string& peer, v1::ErrorCode code) {
  if (tombstones_.emplace(peer, code).second) {
    tombstone_order_.push_back(peer);
  } else {
    tombstones_[peer] = code;
  }
  while (tombstone_order_.size() > kMaxTombstones) {
    tombstones_.erase(tombstone_order_.front());
    tombstone_order_.pop_front();
  }
}

const v1::ErrorCode* SessionTable::tombstone_of(const std::string& peer) const {
  auto it = tombstones_.find(peer);
  return it == tombstones_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- key validity

void SessionTable::watch_key_expiry(const Session& s) {
  if (s.key_not_after_us) expiry_.emplace(s.key_not_after_us, s.id);
}

void SessionTable::expire_keys(std::int64_t now_us, const std::function<void(Session&)>& expired) {
  while (!expiry_.empty() && expiry_.top().first <= now_us) {
    const auto [due, id] = expiry_.top();
    expiry_.pop();
    Session* s = find(id);
    if (!s || s->key_not_after_us != due) continue;  // gone, or key validity changed
    expired(*s);
  }
}

}  // namespace curvebus::broker
