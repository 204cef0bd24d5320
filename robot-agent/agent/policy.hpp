// CommandPolicy: who may move the robot, and when.
//
// Pure logic, no I/O: every decision is a function of the command, its
// authenticated sender (the broker's publisher name) and the current time, so
// it is unit-tested without clocks or sockets.
//
// Rules (DESIGN.md "Robot agent and safety"):
//  * A command needs an id and an issue time.  One issued longer ago than
//    max_age (or further than max_future ahead, for clock skew) is stale; an
//    id the same sender already used is a duplicate (ids are remembered until
//    they would be stale anyway, and at most `max_remembered_ids` per sender).
//  * STOP and EMERGENCY STOP are always obeyed, from any sender the broker let
//    publish on the command topic, even when stale or repeated: stopping is
//    never the unsafe choice.  An emergency stop latches: motion is refused
//    until an explicit clear.
//  * One controller drives at a time.  A motion command takes the lease when
//    it is free; the holder renews it with any command (KeepAlive included);
//    it ends on Release, when the holder's session goes offline, or after
//    `deadman` of silence.  Motion from anyone else is refused meanwhile.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "robot.pb.h"

namespace curvebus::agent {

namespace rv1 = ::curvebus::robot::v1;

struct PolicyConfig {
  std::int64_t max_age_ms = 5000;
  std::int64_t max_future_ms = 2000;
  std::int64_t deadman_ms = 500;
  std::size_t max_remembered_ids = 4096;
};

enum class Kind {
  Motion,
  Stop,
  EmergencyStop,
  ClearEmergencyStop,
  Stats,
  ClearStats,
  KeepAlive,
  Release,
  None
};

Kind kind_of(const rv1::Command& cmd);
const char* action_name(const rv1::Command& cmd);

struct Decision {
  rv1::ResultStatus status = rv1::RESULT_OK;  // RESULT_OK: carry it out
  std::string detail;
  bool ok() const { return status == rv1::RESULT_OK; }
};

class CommandPolicy {
 public:
  explicit CommandPolicy(PolicyConfig config = {}) : config_(config) {}

  // Decides on `cmd` from `sender`; on acceptance updates the lease and latch.
  // `now_us` is the wall clock (for issue times), `now_ms` a steady clock.
  Decision check(const rv1::Command& cmd, const std::string& sender, std::int64_t now_us,
                 std::int64_t now_ms);

  // The holder's silence passed the dead-man time: frees the lease and
  // returns true (once) when that happened at `now_ms`.
  bool expire_lease(std::int64_t now_ms);
  // The sender's broker session ended: frees its lease; true if it held it.
  bool controller_offline(const std::string& name);

  // Restores a latch kept across a restart (the agent's latch file).
  void restore_estop(const std::string& reason) {
    estop_latched_ = true;
    estop_reason_ = reason;
  }

  const std::string& lease_holder() const { return holder_; }
  bool estop_latched() const { return estop_latched_; }
  const std::string& estop_reason() const { return estop_reason_; }
  const PolicyConfig& config() const { return config_; }

 private:
  bool remember(const std::string& sender, const std::string& id, std::int64_t issued_us,
                std::int64_t now_us);

  PolicyConfig config_;
  std::string holder_;
  std::int64_t holder_seen_ms_ = 0;
  bool estop_latched_ = false;
  std::string estop_reason_;
  struct SeenIds {
    std::unordered_set<std::string> ids;
    std::deque<std::pair<std::int64_t, std::string>> order;  // (issued_us, id), oldest first
  };
  std::unordered_map<std::string, SeenIds> seen_;
};

}  // namespace curvebus::agent
