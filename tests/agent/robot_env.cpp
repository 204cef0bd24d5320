#include "robot_env.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <sstream>

#include "curvebus/codec.hpp"

namespace curvebus::test {

// -------------------------------------------------------------------- RobotEnv

RobotEnv::RobotEnv(RobotEnvOptions options)
    : broker(CURVEBUS_BROKER_BIN, dir.path()), options_(std::move(options)) {
  broker.add_client({"alex",
                     {"robot/alex/ack", "robot/alex/telemetry", "robot/alex/status"},
                     {"robot/alex/cmd", "robot/alex/cmd/clear-estop", "$SYS/presence/+"},
                     false,
                     "agent"});
  // op1 may clear an e-stop (publish on robot/alex/cmd/clear-estop); op2 may not.
  broker.add_client({"op1",
                     {"robot/alex/cmd", "robot/alex/cmd/clear-estop"},
                     {"robot/alex/#", "$SYS/presence/#"}});
  broker.add_client({"op2", {"robot/alex/cmd"}, {"robot/alex/#"}});
  broker.add_client({"viewer", {}, {"robot/alex/#"}});
  for (const auto& spec : options_.extra_clients) broker.add_client(spec);
  if (!broker.start(options_.broker_args)) return;

  tty = dir / "alex-tty";
  control = dir / "alex-control";
  std::vector<std::string> sim_argv{ALEX_SIM_BIN, "--link", tty,     "--control",
                                    control,      "--baud", "115200"};
  sim_argv.insert(sim_argv.end(), options_.sim_args.begin(), options_.sim_args.end());
  sim = std::make_unique<Process>(sim_argv, dir / "alex-sim");
  if (!wait_until(
          [&] { return ::access(tty.c_str(), F_OK) == 0 && ::access(control.c_str(), F_OK) == 0; },
          5000ms))
    return;
  if (options_.start_agent && !start_agent()) return;
  ok_ = true;
}

RobotEnv::~RobotEnv() {
  if (agent) agent->stop();
  if (sim) sim->stop();
}

bool RobotEnv::start_agent(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{CURVEBUS_AGENT_BIN,
                                "--serial",
                                tty,
                                "--robot",
                                "alex",
                                "--baud",
                                "115200",
                                "--settle-ms",
                                "0",
                                "--telemetry-ms",
                                "100",
                                "--endpoint",
                                broker.endpoint(),
                                "--server-key",
                                broker.public_file("broker"),
                                "--key",
                                broker.secret_file("alex"),
                                "--estop-file",
                                dir / "estop-alex",
                                "--log-level",
                                "debug"};
  argv.insert(argv.end(), options_.agent_args.begin(), options_.agent_args.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  agent = std::make_unique<Process>(argv, dir / "agent", options_.agent_env);
  return wait_until(
      [&] {
        // Registered with the broker, and the serial link through its HELLO.
        const std::string log = agent->out() + agent->err();
        return log.find("agent for robot") != std::string::npos &&
               log.find("-> ready") != std::string::npos;
      },
      10000ms);
}

bool RobotEnv::sim_control(const std::string& line) {
  return write_control_line(control, line);
}

std::vector<SimEvent> RobotEnv::sim_events() {
  std::vector<SimEvent> out;
  std::istringstream in(sim->out());
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("event ", 0) != 0) continue;
    SimEvent e;
    // "event wall_ms=N mono_ms=M <text>": the text follows the last key=value timestamp.
    std::istringstream words(line.substr(6));
    std::string w, rest;
    while (words >> w) {
      if (w.rfind("wall_ms=", 0) == 0) {
        e.wall_ms = std::stoll(w.substr(8));
      } else if (w.find("_ms=") != std::string::npos && rest.empty()) {
        continue;
      } else {
        rest += (rest.empty() ? "" : " ") + w;
      }
    }
    e.text = rest;
    out.push_back(e);
  }
  return out;
}

std::optional<std::int64_t> RobotEnv::wait_sim_event(const std::string& needle,
                                                     std::int64_t since_wall_ms,
                                                     std::chrono::milliseconds timeout) {
  std::optional<std::int64_t> found;
  wait_until(
      [&] {
        for (const auto& e : sim_events())
          if (e.wall_ms >= since_wall_ms && e.text.find(needle) != std::string::npos) {
            found = e.wall_ms;
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

RunResult RobotEnv::cli(const std::string& name, std::vector<std::string> args,
                        const std::string& stdin_data) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run(argv, dir / ("cli-" + std::to_string(++n)), broker.client_env(name), 20000ms,
             stdin_data);
}

}  // namespace curvebus::test
