// A whole robot on one machine for integration tests: a real broker on an
// ephemeral 127.0.0.1 port, a real alex-sim on a pseudo-terminal, a real
// curvebus-robot-agent between them, and in-process controllers built on the
// client library that send Commands and watch acks, telemetry and status.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/client.hpp"
#include "fixture.hpp"
#include "process.hpp"
#include "robot.pb.h"

namespace curvebus::test {

namespace rv1 = ::curvebus::robot::v1;
using namespace std::chrono_literals;

// One line of alex-sim's event log (stdout).
struct SimEvent {
  std::int64_t wall_ms = 0;
  std::string text;  // the event without its timestamps, e.g. "rx COMMAND STOP p0=0 p1=0"
};

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
  std::vector<rv1::CommandResult> acks_;
  std::vector<rv1::Telemetry> telemetry_;
  std::vector<rv1::RobotStatus> status_;
  std::thread keepalive_;
  bool keepalive_run_ = false;
  std::string prefix_;
  mutable std::uint64_t next_id_ = 0;
};

std::uint64_t ticks(const rv1::Telemetry& t);

struct RobotEnvOptions {
  std::vector<std::string> sim_args;    // extra alex-sim flags
  std::vector<std::string> agent_args;  // extra agent flags
  bool start_agent = true;
};

class RobotEnv {
 public:
  explicit RobotEnv(RobotEnvOptions options = {});
  ~RobotEnv();
  bool ok() const { return ok_; }

  bool start_agent(const std::vector<std::string>& extra = {});
  // Writes one control line to alex-sim's control FIFO ("drop 1", "vanish 1500", ...).
  bool sim_control(const std::string& line);
  std::vector<SimEvent> sim_events();
  // Wall time (ms) of the first event containing `needle` at or after `since_wall_ms`.
  std::optional<std::int64_t> wait_sim_event(const std::string& needle, std::int64_t since_wall_ms,
                                             std::chrono::milliseconds timeout = 5000ms);
  // The `curvebus` CLI as `name`.
  RunResult cli(const std::string& name, std::vector<std::string> args,
                const std::string& stdin_data = "");
  std::map<std::string, std::string> env_of(const std::string& name) const {
    return broker.client_env(name);
  }

  TempDir dir{"agent"};
  BrokerHarness broker;
  std::unique_ptr<Process> sim;
  std::unique_ptr<Process> agent;
  std::string tty, control;

 private:
  bool ok_ = false;
  RobotEnvOptions options_;
};

std::int64_t wall_ms();

}  // namespace curvebus::test
