// Fault injection on the whole robot: real broker, alex-sim on a
// pseudo-terminal and the robot agent.  The serial line spews random bytes
// while commands flow; the broker is SIGKILLed mid-stream and restarted on
// the same endpoint.  Timing is only ever a generous liveness bound.
#include <csignal>
#include <cstdio>
#include <mutex>

#include <catch2/catch.hpp>

#include "inbox.hpp"
#include "robot_env.hpp"

using namespace curvebus;
using namespace curvebus::test;

namespace {

std::string status_name(const std::optional<rv1::CommandResult>& r) {
  return r ? rv1::ResultStatus_Name(r->status()) : std::string("(no ack)");
}

rv1::Command stats(Controller& c) {
  rv1::Command cmd = c.command();
  cmd.mutable_get_stats();
  return cmd;
}

std::optional<rv1::CommandResult> stats_until_ok(Controller& c, std::chrono::milliseconds overall) {
  std::optional<rv1::CommandResult> r;
  wait_until(
      [&] {
        r = c.call(stats(c), 2000ms);
        return r && r->status() == rv1::RESULT_OK;
      },
      overall, 50ms);
  return r;
}

ClientOptions options_for(const BrokerHarness& broker, const std::string& name) {
  return client_options(broker, name);
}

}  // namespace

TEST_CASE(
    "random bytes on the serial line for 10 s while commands flow: the agent keeps "
    "answering and counts the garbage",
    "[faults][agent]") {
  RobotEnv env({{}, {"--reply-timeout-ms", "300", "--retries", "2", "--status-ms", "1000"}});
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(stats(op1))) == "RESULT_OK");

  // ~10 s of bursts of random bytes (never 0xFF, the frame start, so they
  // cannot forge a frame) between and around the Arduino's replies.
  std::map<std::string, int> during;
  int bursts = 0;
  const auto t_end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < t_end) {
    for (int i = 0; i < 3; ++i) {
      if (env.sim_control("garbage 150")) ++bursts;
      std::this_thread::sleep_for(100ms);
    }
    ++during[status_name(op1.call(stats(op1), 3000ms))];
  }
  std::string summary;
  for (const auto& [k, v] : during) summary += k + "=" + std::to_string(v) + " ";
  std::printf("serial garbage: %d bursts of 150 bytes; results during: %s\n", bursts,
              summary.c_str());
  CHECK(bursts > 20);
  // No wrong answer ever: a result during the storm is OK, a timeout after
  // the retries when garbage hid every reply, or serial down while the link,
  // whose re-alignment the garbage defeated, reopens the port (the command
  // was not carried out, and the agent says so).
  for (const auto& [k, v] : during)
    CHECK((k == "RESULT_OK" || k == "RESULT_TIMEOUT" || k == "RESULT_SERIAL_DOWN"));
  CHECK(during["RESULT_OK"] >= 1);

  // Afterwards: every command answered OK, and status counts the garbage.
  REQUIRE(status_name(stats_until_ok(op1, 15000ms)) == "RESULT_OK");
  for (int i = 0; i < 5; ++i) CHECK(status_name(op1.call(stats(op1))) == "RESULT_OK");
  // Every garbage byte reached the agent's decoder and was skipped, counted.
  const std::uint64_t sent = static_cast<std::uint64_t>(bursts) * 150;
  auto st = op1.wait_status(
      [&](const rv1::RobotStatus& s) { return s.garbage_bytes() >= sent && s.serial_up(); },
      10000ms);
  REQUIRE(st);
  std::printf("serial garbage: agent status garbage_bytes=%llu frames_ok=%llu bad_checksum=%llu\n",
              static_cast<unsigned long long>(st->garbage_bytes()),
              static_cast<unsigned long long>(st->frames_ok()),
              static_cast<unsigned long long>(st->bad_checksum()));
  CHECK(env.agent->running());
}

TEST_CASE(
    "broker SIGKILLed mid-stream and restarted: clients and the agent recover, retained "
    "values and the allow-list come back",
    "[faults][agent]") {
  RobotEnv env;
  REQUIRE(env.ok());
  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  REQUIRE(status_name(op1.call(stats(op1))) == "RESULT_OK");

  // A client-library subscriber on the robot's telemetry.
  Client viewer(options_for(env.broker, "viewer"));
  REQUIRE(viewer.connect(5000ms));
  Inbox seen;
  REQUIRE(viewer.subscribe({"robot/alex/telemetry"}, seen.handler()));
  REQUIRE(wait_until([&] { return seen.count([](const Message&) { return true; }) >= 3; }, 5000ms));

  // A retained marker nobody publishes again (a second session of the agent's
  // name, which may publish telemetry): the broker keeps it in its retained
  // file, written within retained_sync_ms (1 s) of the change.
  rv1::Telemetry marker;
  marker.set_sample(424242);
  {
    Client keeper(options_for(env.broker, "alex"));
    REQUIRE(keeper.connect(5000ms));
    PublishOptions o;
    o.retain = true;
    o.wait_ack = true;
    REQUIRE(keeper.publish("robot/alex/telemetry", marker.SerializeAsString(), o));
  }
  auto retained_marker = [&](Client& c) {
    Inbox in;
    bool found = false;
    if (!c.subscribe({"robot/alex/telemetry"}, in.handler(), true)) return false;
    wait_until(
        [&] {
          found = in.count([](const Message& m) {
            rv1::Telemetry t;
            return m.retained && t.ParseFromString(m.payload) && t.sample() == 424242;
          }) > 0;
          return found;
        },
        1000ms);
    c.unsubscribe({"robot/alex/telemetry"});
    return found;
  };
  {
    Client probe(options_for(env.broker, "op2"));
    REQUIRE(probe.connect(5000ms));
    REQUIRE(retained_marker(probe));
  }
  // The broker's own counter says when the marker is on disk (a SIGKILL
  // before that may lose it, by design: at most retained_sync_ms).
  REQUIRE(wait_until(
      [&] {
        return read_file(env.broker.dir() + "/retained.pb").find("robot/alex/telemetry") !=
               std::string::npos;
      },
      5000ms));

  // Mid-stream: telemetry flowing, a controller keeping its lease.
  op1.start_keepalive();
  std::this_thread::sleep_for(300ms);
  env.broker.kill(SIGKILL);
  CHECK(wait_until([&] { return viewer.state() != ConnectionState::Connected; }, 5000ms));
  op1.stop_keepalive();
  const std::size_t before_restart = seen.count([](const Message&) { return true; });
  REQUIRE(env.broker.restart());

  // The client library re-registers and re-subscribes by itself: telemetry
  // (from the agent, which re-registered too) reaches the same subscriber.
  CHECK(wait_until([&] { return viewer.state() == ConnectionState::Connected; }, 10000ms));
  CHECK(wait_until(
      [&] { return seen.count([](const Message&) { return true; }) >= before_restart + 3; },
      15000ms));
  CHECK(viewer.counters().reconnects >= 1);
  // The agent serves commands again without a restart of its own.
  auto ack = stats_until_ok(op1, 15000ms);
  CHECK(status_name(ack) == "RESULT_OK");
  CHECK(op1.client().counters().reconnects >= 1);

  // The allow-list is a file: it is back as it was (known names in, a
  // stranger still out).
  {
    Client op2(options_for(env.broker, "op2"));
    CHECK(op2.connect(5000ms));
    // The marker, published once before the kill, is back from the
    // broker's retained file ...
    CHECK(retained_marker(op2));
    // ... and the agent's retained status is current because the agent
    // publishes it again when it re-registers.
    Inbox st;
    REQUIRE(op2.subscribe({"robot/alex/status"}, st.handler(), true));
    CHECK(wait_until(
        [&] {
          return st.count([](const Message& m) {
            rv1::RobotStatus s;
            return m.retained && s.ParseFromString(m.payload) && s.broker_up();
          }) > 0 ||
                 st.count([](const Message& m) {
                   rv1::RobotStatus s;
                   return s.ParseFromString(m.payload) && s.broker_up();
                 }) > 0;
        },
        10000ms));
  }
  ClientOptions stranger = options_for(env.broker, "viewer");
  const KeyPair k = env.broker.stranger("mallory");
  stranger.public_key = k.public_key;
  stranger.secret_key = k.secret_key;
  Client mallory(stranger);
  CHECK_FALSE(mallory.connect(2000ms));
  CHECK(env.agent->running());
}
