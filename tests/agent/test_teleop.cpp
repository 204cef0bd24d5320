// `curvebus teleop` as a person uses it: in a terminal (tmux), pressing keys
// and reading the screen, with the real broker, agent and alex-sim behind it.
#include <unistd.h>
#include <catch2/catch.hpp>

#include "robot_env.hpp"

using namespace curvebus;
using namespace curvebus::test;

namespace {

// A private tmux server (its own socket name), killed at the end.
class Tmux {
 public:
  explicit Tmux(const std::string& dir)
      : socket_("curvebus-test-" + std::to_string(::getpid())), dir_(dir) {}
  ~Tmux() { tmux({"kill-server"}); }
  RunResult tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {"tmux", "-L", socket_});
    return run(args, dir_ + "/tmux-" + std::to_string(++n_), {}, std::chrono::milliseconds(10000));
  }
  bool start(const std::string& command) {
    if (tmux({"new-session", "-d", "-s", "teleop", "-x", "160", "-y", "12", command}).status != 0)
      return false;
    // Keep the pane (and its last screen) after teleop exits.
    return tmux({"set-option", "-t", "teleop", "remain-on-exit", "on"}).status == 0;
  }
  void keys(const std::vector<std::string>& keys) {
    std::vector<std::string> args{"send-keys", "-t", "teleop"};
    args.insert(args.end(), keys.begin(), keys.end());
    tmux(args);
  }
  std::string screen() { return tmux({"capture-pane", "-p", "-t", "teleop"}).out; }
  bool wait_screen(const std::string& needle,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(8000)) {
    return wait_until([&] { return screen().find(needle) != std::string::npos; }, timeout,
                      std::chrono::milliseconds(100));
  }

 private:
  std::string socket_, dir_;
  int n_ = 0;
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

TEST_CASE("teleop: arrow keys drive, space stops, q quits, the screen shows acks and telemetry",
          "[agent][teleop][integration]") {
  {  // tmux is part of the test setup, not optional: without it this test fails.
    INFO("tmux is not installed (scripts/setup-deps installs it)");
    REQUIRE(::system("command -v tmux >/dev/null 2>&1") == 0);
  }
  RobotEnv env;
  REQUIRE(env.ok());
  Tmux tmux(env.dir.path());
  std::string command = "env";
  for (const auto& [k, v] : env.env_of("op1")) command += " " + k + "=" + shell_quote(v);
  command += " " + shell_quote(CURVEBUS_CLI_BIN) + " teleop --robot alex --distance 200 --speed 50";
  command += " 2>" + shell_quote(env.dir / "teleop.err");
  REQUIRE(tmux.start(command));
  REQUIRE(tmux.wait_screen("arrows/WASD"));

  const auto t0 = wall_ms();
  tmux.keys({"Up"});
  CHECK(env.wait_sim_event("rx COMMAND FORWARD p0=200 p1=50", t0));
  CHECK(tmux.wait_screen("ack: forward OK"));
  CHECK(tmux.wait_screen("moving"));
  // Held by keepalives: still moving after more than the dead-man time.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  for (const auto& e : env.sim_events()) CHECK(e.text.find("STOP") == std::string::npos);

  const auto t1 = wall_ms();
  tmux.keys({"Space"});
  CHECK(env.wait_sim_event("rx COMMAND STOP", t1));
  CHECK(tmux.wait_screen("ack: stop OK"));

  tmux.keys({"Right"});
  CHECK(env.wait_sim_event("rx COMMAND TURN_RIGHT", t1));
  const auto t2 = wall_ms();
  tmux.keys({"q"});
  CHECK(env.wait_sim_event("rx COMMAND STOP", t2));
  CHECK(tmux.wait_screen("teleop: stopped"));
}
