// The robot agent end to end: real broker, real agent, real alex-sim on a
// pseudo-terminal, commands over CURVE from the client library and the CLI.
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>

#include "robot_env.hpp"

using namespace curvebus;
using namespace curvebus::test;

namespace {

rv1::Command forward(Controller& c, std::uint32_t cm = 1000, std::uint32_t speed = 50) {
  rv1::Command cmd = c.command();
  cmd.mutable_forward()->set_distance_cm(cm);
  cmd.mutable_forward()->set_speed_pct(speed);
  return cmd;
}

rv1::Command with(Controller& c, const char* what) {
  rv1::Command cmd = c.command();
  const std::string w = what;
  if (w == "stop")
    cmd.mutable_stop();
  else if (w == "stats")
    cmd.mutable_get_stats();
  else if (w == "estop")
    cmd.mutable_estop()->set_reason("test");
  else if (w == "clear_estop")
    cmd.mutable_clear_estop();
  else if (w == "release")
    cmd.mutable_release();
  else if (w == "keepalive")
    cmd.mutable_keepalive();
  return cmd;
}

std::string status_name(const std::optional<rv1::CommandResult>& r) {
  return r ? rv1::ResultStatus_Name(r->status()) : std::string("(no ack)");
}

// Sends get_stats until one is answered RESULT_OK (the link may be recovering);
// returns the last result seen.
std::optional<rv1::CommandResult> stats_until_ok(Controller& c, std::chrono::milliseconds each,
                                                 std::chrono::milliseconds overall) {
  std::optional<rv1::CommandResult> r;
  wait_until(
      [&] {
        r = c.call(with(c, "stats"), each);
        return r && r->status() == rv1::RESULT_OK;
      },
      overall, 50ms);
  return r;
}

// Telemetry is steady when two samples a few polls apart show the same ticks.
bool ticks_steady(Controller& c) {
  auto a = c.wait_telemetry([](const rv1::Telemetry&) { return true; }, 3000ms);
  std::this_thread::sleep_for(400ms);
  auto b = c.wait_telemetry([](const rv1::Telemetry&) { return true; }, 3000ms);
  return a && b && ticks(*a) == ticks(*b);
}

}  // namespace

TEST_CASE("a command from curvebus pub is acked OK, ticks rise, STOP holds them steady",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  auto status =
      op1.wait_status([](const rv1::RobotStatus& s) { return s.serial_up() && s.broker_up(); });
  REQUIRE(status);
  auto before = op1.wait_telemetry([](const rv1::Telemetry&) { return true; });
  REQUIRE(before);

  // The lease belongs to the name "op1": this process keeps it alive while the
  // CLI (also op1) sends the motion, as a script next to a teleop would.
  op1.start_keepalive();
  auto r = env.cli("op1", {"pub", "--json", "robot/alex/cmd",
                           R"({"id":"cli-fwd-1","forward":{"distanceCm":1000,"speedPct":60}})"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto ack = op1.wait_ack("cli-fwd-1");
  REQUIRE(ack);
  CHECK(status_name(ack) == "RESULT_OK");
  CHECK(ack->controller() == "op1");
  CHECK(ack->action() == "forward");
  const auto base = ticks(*before);
  CHECK(op1.wait_telemetry([&](const rv1::Telemetry& t) { return ticks(t) > base + 10; }));
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.moving(); }));

  r = env.cli("op1", {"pub", "--json", "robot/alex/cmd", R"({"id":"cli-stop-1","stop":{}})"});
  REQUIRE(r.status == 0);
  ack = op1.wait_ack("cli-stop-1");
  CHECK(status_name(ack) == "RESULT_OK");
  op1.stop_keepalive();
  CHECK(ticks_steady(op1));
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return !s.moving(); }));
}

TEST_CASE("get_stats answers with the Arduino's counters in the ack", "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  auto ack = op1.call(with(op1, "stats"));
  REQUIRE(status_name(ack) == "RESULT_OK");
  CHECK(ack->has_stats());
  CHECK(ack->action() == "get_stats");
}

TEST_CASE("stale, repeated and undecodable commands are refused", "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());

  rv1::Command stale = forward(op1);
  stale.set_issued_us(stale.issued_us() - 60'000'000);
  CHECK(status_name(op1.call(stale)) == "RESULT_REJECTED_STALE");

  rv1::Command stats = with(op1, "stats");
  CHECK(status_name(op1.call(stats)) == "RESULT_OK");
  Status s;
  op1.send(stats, &s);
  REQUIRE(s);
  // The second ack with that id is the refusal.
  REQUIRE(wait_until(
      [&] {
        int n = 0;
        for (const auto& a : op1.acks())
          if (a.id() == stats.id()) ++n;
        return n >= 2;
      },
      5000ms));
  bool duplicate = false;
  for (const auto& a : op1.acks())
    if (a.id() == stats.id() && a.status() == rv1::RESULT_REJECTED_DUPLICATE) duplicate = true;
  CHECK(duplicate);

  // Raw bytes that are not a Command: refused as invalid, with a reason.
  PublishOptions o;
  o.wait_ack = true;
  REQUIRE(op1.client().publish("robot/alex/cmd", "\xff\xff\xff not protobuf", o));
  REQUIRE(wait_until(
      [&] {
        for (const auto& a : op1.acks())
          if (a.status() == rv1::RESULT_REJECTED_INVALID && a.id().empty()) return true;
        return false;
      },
      5000ms));
  // None of that moved the robot.
  for (const auto& e : env.sim_events())
    CHECK(e.text.find("rx COMMAND FORWARD") == std::string::npos);
}

TEST_CASE("a name without publish rights on the command topic cannot move the robot",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  auto r = env.cli("viewer", {"pub", "--json", "robot/alex/cmd",
                              R"({"id":"v1","forward":{"distanceCm":10,"speedPct":50}})"});
  CHECK(r.status == 5);
  CHECK(r.err.find("curvebus:") != std::string::npos);
  std::this_thread::sleep_for(300ms);
  for (const auto& e : env.sim_events())
    CHECK(e.text.find("rx COMMAND FORWARD") == std::string::npos);
}

TEST_CASE("one controller drives, and an e-stop from anyone wins and stays latched until cleared",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1"), op2(env.broker, "op2");
  REQUIRE(op1.connected());
  REQUIRE(op2.connected());
  REQUIRE(status_name(op1.call(forward(op1))) == "RESULT_OK");
  op1.start_keepalive();
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.lease_holder() == "op1"; }));

  auto refused = op2.call(forward(op2));
  CHECK(status_name(refused) == "RESULT_REJECTED_NO_LEASE");

  const auto t0 = wall_ms();
  auto estop = op2.call(with(op2, "estop"));
  CHECK(status_name(estop) == "RESULT_OK");
  CHECK(env.wait_sim_event("rx COMMAND STOP", t0));
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.estop_latched(); }));
  CHECK(status_name(op1.call(forward(op1))) == "RESULT_REJECTED_ESTOP_LATCHED");
  CHECK(status_name(op2.call(forward(op2))) == "RESULT_REJECTED_ESTOP_LATCHED");

  // Clearing needs its own right: a clear_estop on the command topic is
  // refused, and the broker keeps op2 (no publish right on the clear topic) out.
  CHECK(status_name(op2.call(with(op2, "clear_estop"))) == "RESULT_REJECTED_NOT_ALLOWED");
  Status denied;
  op2.send(with(op2, "clear_estop"), &denied, "cmd/clear-estop");
  CHECK_FALSE(denied.ok());
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.estop_latched(); }));
  CHECK(status_name(op1.call(with(op1, "clear_estop"), 5000ms, "cmd/clear-estop")) == "RESULT_OK");
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return !s.estop_latched(); }));
  CHECK(status_name(op1.call(forward(op1))) == "RESULT_OK");
  op1.stop_keepalive();
}

TEST_CASE("an e-stop stays latched across an agent restart, on disk before its ack",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(with(op1, "estop"))) == "RESULT_OK");
  // The ack came after the latch file was written.
  CHECK(read_file(env.dir / "estop-alex").find("op1") != std::string::npos);
  env.agent->signal(SIGKILL);  // a crash: nothing is cleaned up
  env.agent->wait(5000ms);
  REQUIRE(env.start_agent());
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.estop_latched(); }));
  CHECK(status_name(op1.call(forward(op1))) == "RESULT_REJECTED_ESTOP_LATCHED");
  CHECK(status_name(op1.call(with(op1, "clear_estop"), 5000ms, "cmd/clear-estop")) == "RESULT_OK");
  CHECK(read_file(env.dir / "estop-alex").empty());
  CHECK(status_name(op1.call(forward(op1))) == "RESULT_OK");
}

TEST_CASE(
    "an e-stop while every fsync takes 3 s: STOP reaches the Arduino at once, the ack waits "
    "for the latch on disk",
    "[.][slow_fsync]") {
  // Replies 400 ms late, telemetry polled every 100 ms: an exchange is in
  // flight most of the time, so the STOP waits for its reply on the agent's
  // loop, which must not be sitting in an fsync meanwhile.
  RobotEnvOptions o;
  o.agent_args = {"--reply-timeout-ms", "1500"};
  o.agent_env = {{"LD_PRELOAD", SLOW_FSYNC_LIB}, {"CURVEBUS_TEST_FSYNC_DELAY_MS", "3000"}};
  RobotEnv env(o);
  REQUIRE(env.ok());
  const std::string agent_env = read_file("/proc/" + std::to_string(env.agent->pid()) + "/environ");
  REQUIRE(agent_env.find(std::string("LD_PRELOAD=") + SLOW_FSYNC_LIB) != std::string::npos);
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(env.sim_control("delay 400"));
  // Keepalives hold the lease: the dead-man's own STOP must not come first.
  op1.start_keepalive();
  REQUIRE(status_name(op1.call(forward(op1), 5000ms)) == "RESULT_OK");
  std::this_thread::sleep_for(250ms);
  const auto t0 = wall_ms();
  const std::string id = op1.send(with(op1, "estop"));
  auto stop = env.wait_sim_event("rx COMMAND STOP", t0, 15000ms);
  REQUIRE(stop);
  auto ack = op1.wait_ack_seen(id, 20000ms);
  REQUIRE(ack);
  std::printf("e-stop with 3 s fsyncs: STOP at the Arduino after %lld ms, ack after %lld ms\n",
              static_cast<long long>(*stop - t0),
              static_cast<long long>(ack->received_wall_ms - t0));
  // Liveness bound: one late reply plus the STOP's own exchange, far below
  // the 6 s of the latch's two fsyncs (file, directory).
  CHECK(*stop - t0 < 3000);
  CHECK(status_name(ack->result) == "RESULT_OK");
  // Not acked before the latch was durable: both fsyncs had ended.
  CHECK(ack->received_wall_ms - t0 >= 6000);
  CHECK(read_file(env.dir / "estop-alex").find("op1") != std::string::npos);
  op1.stop_keepalive();
}

TEST_CASE("a controller that goes silent mid-move is stopped by the dead-man switch",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(forward(op1))) == "RESULT_OK");
  const auto t0 = wall_ms();  // no keepalives from here on
  auto stop = env.wait_sim_event("rx COMMAND STOP", t0, 5000ms);
  REQUIRE(stop);
  std::printf(
      "dead-man (silent controller): STOP reached the Arduino %lld ms after the last command\n",
      static_cast<long long>(*stop - t0));
  CHECK(*stop - t0 < 3000);
  auto ack = op1.wait_ack("deadman");
  REQUIRE(ack);
  CHECK(ack->detail().find("dead-man") != std::string::npos);
  CHECK(ticks_steady(op1));
}

TEST_CASE("a controller killed mid-move: STOP reaches the Arduino within the dead-man bound",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller watcher(env.broker, "op1");
  REQUIRE(watcher.connected());
  // op2 drives from a script: curvebus pub reading commands from its stdin.
  Process script({CURVEBUS_CLI_BIN, "pub", "--json", "robot/alex/cmd"}, env.dir / "script",
                 env.env_of("op2"), true);
  REQUIRE(script.write_stdin(R"({"id":"script-fwd","forward":{"distanceCm":1000,"speedPct":60}})"
                             "\n"));
  auto ack = watcher.wait_ack("script-fwd");
  REQUIRE(status_name(ack) == "RESULT_OK");
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    REQUIRE(script.write_stdin("{\"keepalive\":{}}\n"));
  }
  const auto t0 = wall_ms();
  script.signal(SIGKILL);
  auto stop = env.wait_sim_event("rx COMMAND STOP", t0, 5000ms);
  REQUIRE(stop);
  std::printf("dead-man (controller SIGKILLed): STOP reached the Arduino %lld ms after the kill\n",
              static_cast<long long>(*stop - t0));
  CHECK(*stop - t0 < 3000);
  CHECK(ticks_steady(watcher));
}

TEST_CASE("the broker killed mid-move: the agent stops the robot by itself, then recovers",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  {
    Controller op1(env.broker, "op1");
    REQUIRE(op1.connected());
    REQUIRE(status_name(op1.call(forward(op1))) == "RESULT_OK");
    op1.start_keepalive();
    std::this_thread::sleep_for(300ms);
    const auto t0 = wall_ms();
    env.broker.kill(SIGKILL);
    auto stop = env.wait_sim_event("rx COMMAND STOP", t0, 5000ms);
    REQUIRE(stop);
    std::printf("dead-man (broker SIGKILLed): STOP reached the Arduino %lld ms after the kill\n",
                static_cast<long long>(*stop - t0));
    CHECK(*stop - t0 < 3000);
    op1.stop_keepalive();
  }
  // The broker comes back on the same endpoint: the agent re-registers and
  // serves commands again without being restarted.
  REQUIRE(env.broker.restart());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.broker_up() && s.serial_up(); },
                        10000ms));
  std::optional<rv1::CommandResult> ack;
  wait_until(
      [&] {
        ack = op1.call(with(op1, "stats"), 1000ms);
        return ack.has_value();
      },
      10000ms, 100ms);
  CHECK(status_name(ack) == "RESULT_OK");
}

TEST_CASE("agent shutdown (SIGTERM) stops the motors first", "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(forward(op1))) == "RESULT_OK");
  op1.start_keepalive();
  const auto t0 = wall_ms();
  env.agent->signal(SIGTERM);
  CHECK(env.agent->wait(5000ms) == 0);
  CHECK(env.wait_sim_event("rx COMMAND STOP", t0, 3000ms));
  op1.stop_keepalive();
}

TEST_CASE(
    "dropped, corrupted, garbled and late Arduino replies: right results, agent keeps working",
    "[agent][integration]") {
  // No telemetry polling: each fault must hit the command under test.
  RobotEnv env({{}, {"--reply-timeout-ms", "300", "--retries", "2", "--telemetry-ms", "0"}});
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());

  SECTION("one dropped reply is retried") {
    REQUIRE(env.sim_control("drop 1"));
    auto ack = op1.call(with(op1, "stats"));
    CHECK(status_name(ack) == "RESULT_OK");
    CHECK(ack->attempts() >= 2);
  }
  SECTION("every reply dropped: TIMEOUT, then the next command works") {
    REQUIRE(env.sim_control("drop 50"));
    auto ack = op1.call(with(op1, "stats"), 10000ms);
    CHECK(status_name(ack) == "RESULT_TIMEOUT");
    REQUIRE(env.sim_control("drop 0"));
    // Liveness only: the link may be reopening the port after the silence.
    auto next = stats_until_ok(op1, 3000ms, 30000ms);
    CHECK(status_name(next) == "RESULT_OK");
  }
  SECTION("a reply with a bad checksum is counted and the command retried") {
    REQUIRE(env.sim_control("corrupt 1"));
    auto ack = op1.call(with(op1, "stats"));
    CHECK(status_name(ack) == "RESULT_OK");
    CHECK(ack->attempts() >= 2);
    CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.bad_checksum() >= 1; }, 8000ms));
  }
  SECTION("garbage on the line is skipped and counted") {
    REQUIRE(env.sim_control("garbage 300"));
    std::this_thread::sleep_for(100ms);
    auto ack = op1.call(with(op1, "stats"));
    CHECK(status_name(ack) == "RESULT_OK");
    CHECK(
        op1.wait_status([](const rv1::RobotStatus& s) { return s.garbage_bytes() >= 1; }, 8000ms));
  }
  SECTION("a reply later than the timeout: TIMEOUT or a retried OK, never a wrong answer") {
    REQUIRE(env.sim_control("delay 1000"));
    auto ack = op1.call(with(op1, "stats"), 10000ms);
    REQUIRE(ack);
    CHECK((ack->status() == rv1::RESULT_TIMEOUT || ack->status() == rv1::RESULT_OK));
    REQUIRE(env.sim_control("delay 0"));
    auto next = stats_until_ok(op1, 3000ms, 15000ms);
    CHECK(status_name(next) == "RESULT_OK");
  }
}

TEST_CASE("alex-sim vanishes and comes back: serial down, then up, commands work again",
          "[agent][integration]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(op1.wait_status([](const rv1::RobotStatus& s) { return s.serial_up(); }));
  // Gone long enough that a loaded machine still asks while it is away.
  REQUIRE(env.sim_control("vanish 4000"));
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return !s.serial_up(); }, 5000ms));
  // While the device is gone a command is answered at once: serial down.
  auto down = op1.call(with(op1, "stats"), 3000ms);
  REQUIRE(down);
  CHECK(status_name(down) == "RESULT_SERIAL_DOWN");
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.serial_up(); }, 15000ms));
  // Liveness only: a sanitizer build on a loaded machine re-aligns slowly.
  auto ack = stats_until_ok(op1, 3000ms, 30000ms);
  CHECK(status_name(ack) == "RESULT_OK");
}

TEST_CASE("strict firmware knocked out of frame by one stray byte is re-aligned by the agent",
          "[agent][integration]") {
  RobotEnv env({{"--strict"}, {"--reply-timeout-ms", "400"}});
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(with(op1, "stats"))) == "RESULT_OK");
  // One stray byte towards the Arduino shifts its 140-byte window.
  REQUIRE(env.sim_control("rxgarbage 1"));
  auto ack = stats_until_ok(op1, 5000ms, 20000ms);
  CHECK(status_name(ack) == "RESULT_OK");
  CHECK(op1.wait_status([](const rv1::RobotStatus& s) { return s.realignments() >= 1; }, 8000ms));
}

TEST_CASE("firmware that requires HELLO and firmware that never answers it both work",
          "[agent][integration]") {
  for (const char* mode : {"require", "ignore"}) {
    DYNAMIC_SECTION("hello " << mode) {
      RobotEnv env({{"--hello", mode}, {}});
      REQUIRE(env.ok());
      Controller op1(env.broker, "op1");
      REQUIRE(op1.connected());
      auto ack = stats_until_ok(op1, 3000ms, 15000ms);
      CHECK(status_name(ack) == "RESULT_OK");
    }
  }
}

TEST_CASE("agent config file: settings apply, flags override, mistakes name file and line",
          "[agent][config]") {
  TempDir dir("agentcfg");
  const std::string bad = dir / "bad.toml";
  {
    std::ofstream f(bad);
    f << "[agent]\nrobot = \"alex\"\ndeadman_ms = \"fast\"\n";
  }
  auto r = run({CURVEBUS_AGENT_BIN, "--config", bad}, dir / "bad");
  CHECK(r.status == 1);
  CHECK(r.err.find(bad + ":3:") != std::string::npos);
  CHECK(r.err.find("deadman_ms") != std::string::npos);
  {
    std::ofstream f(bad);
    f << "[agent]\nrobot = \"alex\"\nspeed_limit = 3\n";
  }
  r = run({CURVEBUS_AGENT_BIN, "--config", bad}, dir / "bad2");
  CHECK(r.status == 1);
  CHECK(r.err.find(bad + ":3: unknown key 'speed_limit'") != std::string::npos);

  // A working file: robot id and serial device from it, the log level overridden by a flag.
  RobotEnv env({{}, {}, false});
  REQUIRE(env.ok());
  const std::string good = dir / "agent.toml";
  {
    std::ofstream f(good);
    f << "[agent]\nrobot = \"alex\"\nserial = \"" << env.tty << "\"\nbaud = 115200\nsettle_ms = 0\n"
      << "endpoint = \"" << env.broker.endpoint() << "\"\nserver_key = \""
      << env.broker.public_file("broker") << "\"\nkey = \"" << env.broker.secret_file("alex")
      << "\"\nlog_level = \"error\"\n";
  }
  Process agent({CURVEBUS_AGENT_BIN, "--config", good, "--log-level", "info"}, dir / "agent");
  CHECK(wait_until(
      [&] { return (agent.out() + agent.err()).find("-> ready") != std::string::npos; }, 10000ms));
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  CHECK(status_name(stats_until_ok(op1, 2000ms, 10000ms)) == "RESULT_OK");
  agent.stop();
}
