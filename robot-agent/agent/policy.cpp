#include "policy.hpp"

namespace curvebus::agent {

Kind kind_of(const rv1::Command& cmd) {
  switch (cmd.action_case()) {
    case rv1::Command::kForward:
    case rv1::Command::kBackward:
    case rv1::Command::kLeft:
    case rv1::Command::kRight:
      return Kind::Motion;
    case rv1::Command::kStop:
      return Kind::Stop;
    case rv1::Command::kEstop:
      return Kind::EmergencyStop;
    case rv1::Command::kClearEstop:
      return Kind::ClearEmergencyStop;
    case rv1::Command::kGetStats:
      return Kind::Stats;
    case rv1::Command::kClearStats:
      return Kind::ClearStats;
    case rv1::Command::kKeepalive:
      return Kind::KeepAlive;
    case rv1::Command::kRelease:
      return Kind::Release;
    case rv1::Command::ACTION_NOT_SET:
      break;
  }
  return Kind::None;
}

const char* action_name(const rv1::Command& cmd) {
  switch (cmd.action_case()) {
    case rv1::Command::kForward:
      return "forward";
    case rv1::Command::kBackward:
      return "backward";
    case rv1::Command::kLeft:
      return "left";
    case rv1::Command::kRight:
      return "right";
    case rv1::Command::kStop:
      return "stop";
    case rv1::Command::kEstop:
      return "estop";
    case rv1::Command::kClearEstop:
      return "clear_estop";
    case rv1::Command::kGetStats:
      return "get_stats";
    case rv1::Command::kClearStats:
      return "clear_stats";
    case rv1::Command::kKeepalive:
      return "keepalive";
    case rv1::Command::kRelease:
      return "release";
    case rv1::Command::ACTION_NOT_SET:
      break;
  }
  return "none";
}

namespace {
Decision refuse(rv1::ResultStatus status, std::string detail) {
  Decision d;
  d.status = status;
  d.detail = std::move(detail);
  return d;
}

std::uint32_t speed_of(const rv1::Command& cmd) {
  switch (cmd.action_case()) {
    case rv1::Command::kForward:
      return cmd.forward().speed_pct();
    case rv1::Command::kBackward:
      return cmd.backward().speed_pct();
    case rv1::Command::kLeft:
      return cmd.left().speed_pct();
    case rv1::Command::kRight:
      return cmd.right().speed_pct();
    default:
      return 0;
  }
}
}  // namespace

bool CommandPolicy::remember(const std::string& sender, const std::string& id,
                             std::int64_t issued_us, std::int64_t now_us) {
  SeenIds& seen = seen_[sender];
  // Ids issued before the staleness horizon can never be accepted again
  // (they are stale), so they need not be remembered.
  const std::int64_t horizon = now_us - config_.max_age_ms * 1000;
  while (!seen.order.empty() &&
         (seen.order.front().first < horizon || seen.order.size() > config_.max_remembered_ids)) {
    seen.ids.erase(seen.order.front().second);
    seen.order.pop_front();
  }
  if (!seen.ids.insert(id).second) return false;
  seen.order.emplace_back(issued_us, id);
  return true;
}

Decision CommandPolicy::check(const rv1::Command& cmd, const std::string& sender,
                              std::int64_t now_us, std::int64_t now_ms) {
  const Kind kind = kind_of(cmd);
  if (kind == Kind::None) return refuse(rv1::RESULT_REJECTED_INVALID, "command has no action");

  // Stopping is always obeyed: no freshness, lease or latch check can veto it.
  if (kind == Kind::Stop || kind == Kind::EmergencyStop) {
    if (!cmd.id().empty() && cmd.issued_us() != 0)
      remember(sender, cmd.id(), cmd.issued_us(), now_us);
    if (kind == Kind::EmergencyStop) {
      estop_latched_ = true;
      estop_reason_ = cmd.estop().reason().empty() ? "emergency stop by " + sender
                                                   : cmd.estop().reason() + " (" + sender + ")";
    }
    if (sender == holder_) holder_seen_ms_ = now_ms;
    return {};
  }

  if (cmd.id().empty()) return refuse(rv1::RESULT_REJECTED_INVALID, "command has no id");
  if (cmd.issued_us() == 0) return refuse(rv1::RESULT_REJECTED_INVALID, "command has no issued_us");
  const std::int64_t age_ms = (now_us - cmd.issued_us()) / 1000;
  if (age_ms > config_.max_age_ms)
    return refuse(rv1::RESULT_REJECTED_STALE, "issued " + std::to_string(age_ms) +
                                                  " ms ago (limit " +
                                                  std::to_string(config_.max_age_ms) + " ms)");
  if (-age_ms > config_.max_future_ms)
    return refuse(rv1::RESULT_REJECTED_STALE,
                  "issued " + std::to_string(-age_ms) + " ms in the future (clock skew?)");
  if (kind == Kind::Motion && speed_of(cmd) > 100)
    return refuse(rv1::RESULT_REJECTED_INVALID, "speed_pct must be 0..100");
  if (!remember(sender, cmd.id(), cmd.issued_us(), now_us))
    return refuse(rv1::RESULT_REJECTED_DUPLICATE,
                  "id '" + cmd.id() + "' already used by " + sender);

  const bool lease_free = holder_.empty();
  const bool is_holder = !lease_free && holder_ == sender;
  switch (kind) {
    case Kind::Motion:
      if (estop_latched_)
        return refuse(rv1::RESULT_REJECTED_ESTOP_LATCHED,
                      "emergency stop latched (" + estop_reason_ + "); send clear_estop first");
      if (!lease_free && !is_holder)
        return refuse(rv1::RESULT_REJECTED_NO_LEASE, "robot is driven by " + holder_);
      holder_ = sender;
      holder_seen_ms_ = now_ms;
      return {};
    case Kind::ClearEmergencyStop:
      estop_latched_ = false;
      estop_reason_.clear();
      return {};
    case Kind::KeepAlive:
      if (!is_holder)
        return refuse(rv1::RESULT_REJECTED_NO_LEASE,
                      lease_free ? "no lease to renew" : "robot is driven by " + holder_);
      holder_seen_ms_ = now_ms;
      return {};
    case Kind::Release:
      if (!is_holder)
        return refuse(rv1::RESULT_REJECTED_NO_LEASE,
                      lease_free ? "no lease held" : "robot is driven by " + holder_);
      holder_.clear();
      return {};
    case Kind::Stats:
    case Kind::ClearStats:
      if (is_holder) holder_seen_ms_ = now_ms;
      return {};
    default:
      return {};
  }
}

bool CommandPolicy::expire_lease(std::int64_t now_ms) {
  if (holder_.empty() || now_ms - holder_seen_ms_ <= config_.deadman_ms) return false;
  holder_.clear();
  return true;
}

bool CommandPolicy::controller_offline(const std::string& name) {
  if (holder_.empty() || holder_ != name) return false;
  holder_.clear();
  return true;
}

}  // namespace curvebus::agent
