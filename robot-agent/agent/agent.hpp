// The robot agent: the bridge between curvebus and one Alex Arduino.
//
// It registers with the broker as an agent, subscribes robot/<id>/cmd, and for
// each Command decides (CommandPolicy), drives the Arduino (AlexLink) and
// publishes one CommandResult on robot/<id>/ack.  It polls stats and
// publishes robot/<id>/telemetry, and keeps robot/<id>/status retained.
//
// Dead-man switch: the agent stops the motors by itself when the controller
// holding the lease goes silent for `deadman_ms` or goes offline, when its own
// link to the broker is silent that long, and on shutdown.  It stays armed
// until the Arduino confirms a STOP issued after the last accepted motion
// (AlexLink resends STOP until then).
//
// Emergency stop: latched in the policy AND in `estop_file` (written and
// synced before the e-stop is acked, on EstopLatch's thread so that the
// STOP never waits for the disk; read at start), so an agent restart does
// not lift it.  Clearing it needs a right of its own in the broker's ACL: a
// clear_estop is obeyed only when it arrives on robot/<id>/cmd/clear-estop
// (publish rights on robot/<id>/cmd do not cover that topic); sent anywhere
// else it is refused (RESULT_REJECTED_NOT_ALLOWED), logged and counted.
//
// Threading: run() owns the serial link and every decision; the client
// library's I/O thread only hands received messages over through a queue.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "alex_link.hpp"
#include "curvebus/client.hpp"
#include "estop_latch.hpp"
#include "policy.hpp"

namespace curvebus::agent {

struct AgentConfig {
  std::string robot_id = "alex";
  AlexLinkConfig link;
  PolicyConfig policy;
  int telemetry_ms = 500;  // GET_STATS poll period (0 = off)
  int status_ms = 5000;    // periodic status republish
  std::string estop_file;  // the e-stop latch kept across restarts ("" = memory only)
  ClientOptions client;
};

struct AgentCounters {
  std::uint64_t commands = 0;
  std::uint64_t rejected = 0;
  std::uint64_t undecodable = 0;
  std::uint64_t deadman_stops = 0;
  std::uint64_t telemetry = 0;
  std::uint64_t estop_clears_refused = 0;
};

class Agent {
 public:
  explicit Agent(AgentConfig config);
  ~Agent();
  // Connects and runs until stop() (from any thread or a signal handler's
  // flag).  Returns 0 on a clean stop, non-zero when it could not start.
  int run();
  void stop();

 private:
  struct Incoming {
    std::string topic;
    std::string payload;
    std::string publisher;
  };
  void on_message(const Message& m);
  void handle_command(const Incoming& in, std::int64_t now_ms);
  void handle_presence(const Incoming& in, std::int64_t now_ms);
  void send_to_arduino(const rv1::Command& cmd, const std::string& sender, std::int64_t now_ms);
  void deadman_stop(const std::string& why, std::int64_t now_ms);
  // Every STOP goes through here: the dead-man disarms only when the Arduino
  // confirms a STOP issued after the last motion.
  void stop_motors(AlexLink::Done done);
  // Runs `then` (on the loop) once generation `gen` of the latch (the value
  // of latch_->request()) is on disk.
  void after_latch(std::uint64_t gen, std::function<void()> then);
  void flush_latch_waits();
  void wake();  // makes run()'s poll return
  void refuse(const rv1::Command& cmd, const std::string& sender, rv1::ResultStatus status,
              const std::string& detail);
  void poll_stats(std::int64_t now_ms);
  void publish_result(rv1::CommandResult result);
  void publish_status(std::int64_t now_ms, bool force);
  void publish_telemetry(const alex::Packet& status_packet);
  void check_broker(std::int64_t now_ms);

  AgentConfig config_;
  std::string topic_cmd_, topic_ack_, topic_telemetry_, topic_status_, topic_clear_;
  std::unique_ptr<Client> client_;
  AlexLink link_;
  CommandPolicy policy_;
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1;

  std::mutex mutex_;
  std::deque<Incoming> inbox_;

  struct LatchWait {
    std::uint64_t gen;
    std::function<void()> then;
  };
  std::unique_ptr<EstopLatch> latch_;
  std::deque<LatchWait> latch_waits_;  // acks waiting for the latch, in generation order
  std::uint64_t latch_error_gen_ = 0;  // the failed write already logged

  bool motion_since_stop_ = false;  // a motion was accepted and no STOP confirmed since
  std::uint64_t motion_gen_ = 0;    // motions sent to the link
  std::uint64_t stop_gen_ = 0;      // motion_gen_ when the latest STOP was requested
  bool moving_ = false;             // encoder ticks changing (or motion just started)
  std::int64_t motion_started_ms_ = 0;
  std::uint64_t last_ticks_ = 0;
  bool broker_up_ = false;
  bool stats_outstanding_ = false;
  std::int64_t next_stats_ms_ = 0;
  std::int64_t next_status_ms_ = 0;
  std::string last_status_;
  std::string last_error_;
  std::uint64_t telemetry_sample_ = 0;
  AgentCounters counters_;
};

}  // namespace curvebus::agent
