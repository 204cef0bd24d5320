// The short soak for CI (bench/soak is the long one): broker, alex-sim and
// agent under steady load for ~20 s — a controller streaming keepalive
// commands, another one connecting, asking for stats and leaving every 200 ms,
// telemetry every 100 ms to a client-library subscriber — then checks that
// nothing grew.  Stated bounds: RSS growth under 20 MB for the broker and the
// agent, FD counts back to the baseline within 5 once the load stops.
#include <cstdio>
#include <mutex>

#include <catch2/catch.hpp>

#include "proc_stats.hpp"
#include "robot_env.hpp"

using namespace curvebus;
using namespace curvebus::test;

TEST_CASE("short soak: broker and agent RSS and FDs stay bounded under load", "[faults][soak]") {
  RobotEnv env;
  REQUIRE(env.ok());
  const pid_t broker = env.broker.process().pid();
  const pid_t agent = env.agent->pid();

  ClientOptions o;
  o.endpoint = env.broker.endpoint();
  o.server_public_key = env.broker.server_public_key();
  o.public_key = env.broker.keys_of("viewer").public_key;
  o.secret_key = env.broker.keys_of("viewer").secret_key;
  o.heartbeat = 200ms;
  std::atomic<std::uint64_t> telemetry{0};  // before the client: its handler uses it
  Client viewer(o);
  REQUIRE(viewer.connect(5000ms));
  REQUIRE(viewer.subscribe({"robot/alex/#"}, [&](const Message&) { ++telemetry; }));

  Controller op1(env.broker, "op1");
  REQUIRE(op1.connected());
  // Warm-up, then the baseline.
  auto churn_once = [&] {
    Controller op2(env.broker, "op2");
    if (!op2.connected()) return false;
    rv1::Command c = op2.command();
    c.mutable_get_stats();
    return op2.call(c, 3000ms).has_value();
  };
  for (int i = 0; i < 5; ++i) REQUIRE(churn_once());
  const long b_rss0 = rss_kb(broker), b_fd0 = fd_count(broker);
  const long a_rss0 = rss_kb(agent), a_fd0 = fd_count(agent);

  op1.start_keepalive(5ms);
  int churned = 0, answered = 0;
  const auto t_end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < t_end) {
    ++churned;
    answered += churn_once() ? 1 : 0;
    std::this_thread::sleep_for(200ms);
  }
  op1.stop_keepalive();
  const long b_rss_load = rss_kb(broker), a_rss_load = rss_kb(agent);

  // FDs back to the baseline once the churned connections are gone.
  CHECK(wait_until([&] { return fd_count(broker) <= b_fd0 + 5 && fd_count(agent) <= a_fd0 + 5; },
                   10000ms));
  const long b_rss1 = rss_kb(broker), b_fd1 = fd_count(broker);
  const long a_rss1 = rss_kb(agent), a_fd1 = fd_count(agent);
  std::printf(
      "short soak: broker RSS %ld -> %ld (under load %ld) kB, FDs %ld -> %ld; agent RSS %ld -> %ld "
      "(under load %ld) kB, FDs %ld -> %ld; %d churned controllers (%d answered), %llu "
      "messages to the viewer\n",
      b_rss0, b_rss1, b_rss_load, b_fd0, b_fd1, a_rss0, a_rss1, a_rss_load, a_fd0, a_fd1, churned,
      answered, static_cast<unsigned long long>(telemetry.load()));
  if (kRssMeaningful) {
    CHECK(b_rss1 - b_rss0 < kRssGrowthBoundKb);
    CHECK(a_rss1 - a_rss0 < kRssGrowthBoundKb);
  }
  CHECK(b_fd1 <= b_fd0 + 5);
  CHECK(a_fd1 <= a_fd0 + 5);
  CHECK(answered == churned);
  CHECK(telemetry > 100);
  CHECK(env.agent->running());
  CHECK(env.broker.process().running());
  // Clean exits (under the sanitizers: no leak reported at exit either).
  CHECK(env.agent->stop() == 0);
  CHECK(env.broker.stop() == 0);
}
