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

#include "controller.hpp"
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

struct RobotEnvOptions {
  std::vector<std::string> sim_args;    // extra alex-sim flags
  std::vector<std::string> agent_args;  // extra agent flags
  bool start_agent = true;
  std::vector<std::string> broker_args =
      {};  // extra broker flags (e.g. --config with [federation])
  std::vector<ClientSpec> extra_clients = {};         // more names in the broker's allow-list
  std::map<std::string, std::string> agent_env = {};  // added to the agent's environment
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

}  // namespace curvebus::test
