// A controller (or observer) of one robot in a test process, shared by the
// agent integration tests (alex-sim) and the real-firmware tests (alex-avr):
// a curvebus client subscribed to robot/<id>/ack, telemetry and status, with
// what arrives decoded and kept, and commands built with unique ids.
//
// Threads: the subscription handler runs on the client library's I/O thread
// and only appends under the mutex; the keepalive thread publishes on its own;
// everything else is called from the test's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/client.hpp"
#include "fixture.hpp"
#include "robot.pb.h"

namespace curvebus::test {

namespace rv1 = ::curvebus::robot::v1;
using namespace std::chrono_literals;

// Wall-clock milliseconds (the clock the agent and the simulators log in).
std::int64_t wall_ms();

// An ack with the wall time (ms) it reached this process.
struct AckSeen {
  rv1::CommandResult result;
  std::int64_t received_wall_ms = 0;
};

// Client options for `name` of `broker`'s allow-list: its keys, the broker's
// endpoint and key, the given alive-signal interval, quick reconnection.
ClientOptions client_options(const BrokerHarness& broker, const std::string& name,
                             std::chrono::milliseconds heartbeat = 100ms);

// A controller (or observer) in the test process: a curvebus client with the
// robot's ack, telemetry and status decoded as they arrive.
class Controller {
 public:
  Controller(const BrokerHarness& broker, const std::string& name,
             const std::string& robot = "alex");
  ~Controller();
  bool connected() const { return connected_; }

  // Builds a Command with a fresh id and the current issue time.
  rv1::Command command() const;
  // Publishes (waiting for the broker's PUBACK); returns the command id.
  // `subtopic` is below robot/<id>/: "cmd", or "cmd/clear-estop".
  std::string send(rv1::Command cmd, Status* status = nullptr, const std::string& subtopic = "cmd");
  std::optional<rv1::CommandResult> wait_ack(const std::string& id,
                                             std::chrono::milliseconds timeout = 5000ms);
  // Sends and waits for the agent's result.
  std::optional<rv1::CommandResult> call(rv1::Command cmd,
                                         std::chrono::milliseconds timeout = 5000ms,
                                         const std::string& subtopic = "cmd");

  std::optional<rv1::Telemetry> latest_telemetry();
  // Waits for a telemetry sample newer than `after_sample` satisfying `pred`.
  std::optional<rv1::Telemetry> wait_telemetry(
      const std::function<bool(const rv1::Telemetry&)>& pred,
      std::chrono::milliseconds timeout = 5000ms);
  std::optional<rv1::RobotStatus> wait_status(
      const std::function<bool(const rv1::RobotStatus&)>& pred,
      std::chrono::milliseconds timeout = 5000ms);
  std::vector<rv1::CommandResult> acks();
  // The same, each with the wall time (ms) it reached this process.
  std::optional<AckSeen> wait_ack_seen(const std::string& id, std::chrono::milliseconds timeout);
  std::vector<AckSeen> acks_seen();

  // Keeps the lease: a keepalive Command every `period` until stop_keepalive().
  void start_keepalive(std::chrono::milliseconds period = 100ms);
  void stop_keepalive();

  Client& client() { return *client_; }

 private:
  void on_message(const Message& m);
  std::string robot_;
  std::unique_ptr<Client> client_;
  bool connected_ = false;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<AckSeen> acks_;
  std::vector<rv1::Telemetry> telemetry_;
  std::vector<rv1::RobotStatus> status_;
  std::thread keepalive_;
  bool keepalive_run_ = false;
  std::string prefix_;
  mutable std::uint64_t next_id_ = 0;
};

std::uint64_t ticks(const rv1::Telemetry& t);

}  // namespace curvebus::test
