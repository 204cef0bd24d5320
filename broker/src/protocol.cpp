// Protocol (protocol.hpp): the loop turn around input, and closing sessions.
#include "protocol.hpp"

#include <spdlog/spdlog.h>

#include "curvebus/text.hpp"

namespace curvebus::broker {

namespace {
// Work units (about a microsecond each) one loop turn may spend on input
// before it flushes output and looks at the sockets again.
constexpr std::int64_t kTurnUnits = 20000;
constexpr std::int64_t kMaxWaitMs = 1000;
constexpr std::int64_t kBacklogRetryMs = 2;
constexpr std::int64_t kSweepEveryMs = 1000;
}  // namespace

const char* reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::kClosed:
      return "closed";
    case CloseReason::kTimeout:
      return "timeout";
    case CloseReason::kKicked:
      return "kicked";
    case CloseReason::kRevoked:
      return "revoked";
    case CloseReason::kIdentity:
      return "identity";
    case CloseReason::kKeyExpired:
      return "key_expired";
  }
  return "closed";
}

Protocol::Protocol(const Config& config, const BrokerFacts& facts, SessionTable& sessions,
                   TopicTable& topics, NameTable& names, Admission& admission, AuditLog& audit,
                   Counters& counters)
    : config_(config),
      facts_(facts),
      sessions_(sessions),
      topics_(topics),
      names_(names),
      admission_(admission),
      audit_(audit),
      counters_(counters) {
  topic_rules_.max_bytes = config_.max_topic_bytes;
  topic_rules_.max_levels = config_.max_topic_levels;
}

void Protocol::set_now(std::int64_t now_ms, std::int64_t now_us) {
  now_ms_ = now_ms;
  now_us_ = now_us;
  sessions_.set_now(now_ms);
}

void Protocol::start_housekeeping() {
  next_stats_ms_ = config_.stats_interval_s ? now_ms_ + config_.stats_interval_s * 1000LL : 0;
  next_sweep_ms_ = now_ms_ + kSweepEveryMs;
  next_audit_tick_ms_ = now_ms_;
}

void Protocol::begin_turn() {
  turn_units_ = kTurnUnits;
  serve_backlogs();
}

void Protocol::end_turn() {
  const std::int64_t now = now_ms_;
  run_liveness(now);
  run_key_expiry();
  if (next_stats_ms_ && now >= next_stats_ms_) {
    next_stats_ms_ = now + config_.stats_interval_s * 1000LL;
    v1::BrokerStatus st;
    fill_status(st);
    publish_sys("$SYS/broker/stats", to_json(st));
  }
  if (now >= next_sweep_ms_) {
    next_sweep_ms_ = now + kSweepEveryMs;
    topics_.sweep(now);
  }
  report_refusals(now);
  run_audit(now);
  flush();
}

std::int64_t Protocol::next_wakeup_ms() const {
  const std::int64_t now = now_ms_;
  if (!backlog_.empty()) return now;
  std::int64_t due = now + kMaxWaitMs;
  due = std::min(due, sessions_.liveness().next_due());
  if (next_stats_ms_) due = std::min(due, next_stats_ms_);
  due = std::min(due, next_sweep_ms_);
  due = std::min(due, next_audit_tick_ms_);
  if (sessions_.backlogged()) due = std::min(due, now + kBacklogRetryMs);
  if (!refusals_owed_.empty()) due = std::min(due, now + 100);
  return std::max(due, now);
}

void Protocol::flush() {
  // Closing a lost session publishes its presence, which queues output for
  // others: flush again (a few rounds at most).
  for (int round = 0; round < 4; ++round) {
    lost_.clear();
    sessions_.flush_all(lost_);
    if (lost_.empty()) return;
    for (std::uint64_t id : lost_)
      if (Session* s = sessions_.find(id))
        close_session(*s, CloseReason::kTimeout, "connection lost");
  }
}

void Protocol::close_session(Session& s, CloseReason reason, const std::string& detail) {
  // Last words (ERROR KICKED / REVOKED) go out if the pipe takes them; the
  // session is forgotten either way.  Never when the routing id now belongs
  // to another key's connection (identity mismatch): that would hand it this
  // session's deliveries.
  if (s.has_output() && reason != CloseReason::kTimeout && reason != CloseReason::kIdentity)
    sessions_.write_remaining(s);
  for (const auto& pattern : s.subscriptions) topics_.unsubscribe(pattern, s.id);
  for (const auto& topic : s.provides) topics_.remove_provider(topic, s.name);
  if (s.ns && s.ns->sessions > 0) --s.ns->sessions;
  if (reason == CloseReason::kTimeout) ++counters_.sessions_timed_out;
  spdlog::info("session close name={} session={} reason={} detail=\"{}\" in={} out={} dropped={}",
               s.name, s.session_id, reason_name(reason), printable(detail, 256), s.messages_in,
               s.outbox.ops_sent(), s.outbox.dropped());
  publish_presence(s, false, reason);
  sessions_.erase(s);
}

std::size_t Protocol::cut_sessions(const std::function<bool(const Session&)>& pred,
                                   v1::ErrorCode code, CloseReason reason,
                                   const std::string& message) {
  std::vector<std::uint64_t> victims;
  for (Session* s : sessions_.all())
    if (pred(*s)) victims.push_back(s->id);
  for (std::uint64_t id : victims) {
    Session* s = sessions_.find(id);
    if (!s) continue;
    send_error(*s, code, 0, message, "", "session");
    if (code == v1::ERROR_REVOKED || code == v1::ERROR_KEY_EXPIRED)
      sessions_.tombstone(s->peer, code);
    close_session(*s, reason, message);
  }
  return victims.size();
}

}  // namespace curvebus::broker
