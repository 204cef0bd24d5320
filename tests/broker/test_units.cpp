// Unit tests of the broker's building blocks: topic tree, token bucket,
// liveness state machine, history selection, configuration parsing.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core.hpp"  // literal_prefix
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/history.hpp"
#include "curvebus/broker/liveness.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "curvebus/broker/topic_tree.hpp"

using namespace curvebus::broker;

namespace {
std::vector<SubscriberId> match(const TopicTree& t, const std::string& topic) {
  std::vector<SubscriberId> out;
  t.match(topic, out);
  return out;
}
using Ids = std::vector<SubscriberId>;
}  // namespace

TEST_CASE("topic tree matches exact, + and # patterns", "[broker][unit][topic_tree]") {
  TopicTree t;
  CHECK(t.subscribe("a/b/c", 1));
  CHECK(t.subscribe("a/+/c", 2));
  CHECK(t.subscribe("a/#", 3));
  CHECK(t.subscribe("#", 4));
  CHECK(t.subscribe("+/b", 5));
  CHECK(t.subscribe("a/b/+", 6));
  CHECK(match(t, "a/b/c") == Ids{1, 2, 3, 4, 6});
  CHECK(match(t, "a/x/c") == Ids{2, 3, 4});
  CHECK(match(t, "a") == Ids{3, 4});  // "a/#" matches "a"
  CHECK(match(t, "a/b") == Ids{3, 4, 5});
  CHECK(match(t, "z") == Ids{4});
  CHECK(match(t, "a/b/c/d") == Ids{3, 4});
}

TEST_CASE("topic tree: wildcards at the root do not match $ topics", "[broker][unit][topic_tree]") {
  TopicTree t;
  t.subscribe("#", 1);
  t.subscribe("+/presence/x", 2);
  t.subscribe("$SYS/#", 3);
  t.subscribe("$SYS/+/x", 4);
  CHECK(match(t, "$SYS/presence/x") == Ids{3, 4});
}

TEST_CASE("topic tree dedupes a subscriber with overlapping patterns",
          "[broker][unit][topic_tree]") {
  TopicTree t;
  t.subscribe("a/#", 7);
  t.subscribe("a/+", 7);
  t.subscribe("a/b", 7);
  t.subscribe("a/b", 8);
  CHECK_FALSE(t.subscribe("a/b", 8));
  CHECK(match(t, "a/b") == Ids{7, 8});
  CHECK(t.size() == 4);
}

TEST_CASE("topic tree unsubscribe removes only that pattern and prunes",
          "[broker][unit][topic_tree]") {
  TopicTree t;
  t.subscribe("a/b", 1);
  t.subscribe("a/#", 1);
  t.subscribe("a/b", 2);
  CHECK(t.unsubscribe("a/b", 1));
  CHECK_FALSE(t.unsubscribe("a/b", 1));
  CHECK_FALSE(t.unsubscribe("x/y", 1));
  CHECK(match(t, "a/b") == Ids{1, 2});
  CHECK(t.unsubscribe("a/#", 1));
  CHECK(match(t, "a/b") == Ids{2});
  CHECK(t.unsubscribe("a/b", 2));
  CHECK(match(t, "a/b").empty());
  CHECK(t.size() == 0);
}

TEST_CASE("topic tree generation changes exactly when the tree changes",
          "[broker][unit][topic_tree]") {
  // The broker keeps each topic's match() result until the generation moves:
  // a change that did not move it would route to stale subscribers.
  TopicTree t;
  auto g = t.generation();
  CHECK(g != 0);
  CHECK(t.subscribe("a/+", 1));
  CHECK(t.generation() != g);
  g = t.generation();
  CHECK_FALSE(t.subscribe("a/+", 1));  // already there: nothing changed
  CHECK(t.generation() == g);
  CHECK_FALSE(t.unsubscribe("a/b", 1));  // not there: nothing changed
  CHECK(t.generation() == g);
  CHECK(t.unsubscribe("a/+", 1));
  CHECK(t.generation() != g);
}

TEST_CASE("token bucket admits burst then the sustained rate", "[broker][unit][rate_limiter]") {
  TokenBucket b(10, 5);  // 10/s, burst 5
  int admitted = 0;
  for (int i = 0; i < 20; ++i) admitted += b.take(1000) ? 1 : 0;
  CHECK(admitted == 5);
  CHECK_FALSE(b.take(1050));  // 0.5 token
  CHECK(b.take(1100));        // 1 token after 100 ms
  admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += b.take(11100) ? 1 : 0;  // 10 s later: capped at burst
  CHECK(admitted == 5);
}

TEST_CASE("token bucket with rate 0 is unlimited", "[broker][unit][rate_limiter]") {
  TokenBucket b(0, 0);
  for (int i = 0; i < 10000; ++i) REQUIRE(b.take(0));
}

TEST_CASE("liveness: heartbeat after one interval without output", "[broker][unit][liveness]") {
  LivenessInput in;
  in.interval_ms = 100;
  in.last_seen_ms = 1000;
  in.last_sent_ms = 1000;
  in.now_ms = 1050;
  auto d = liveness_step(in);
  CHECK(d.state == LivenessState::kAlive);
  CHECK_FALSE(d.send_heartbeat);
  CHECK(d.next_check_ms == 1100);
  in.now_ms = 1100;
  d = liveness_step(in);
  CHECK(d.send_heartbeat);
  CHECK_FALSE(d.send_ping);
  CHECK(d.next_check_ms == 1200);
  in.output_pending = true;  // something queued: no heartbeat needed
  CHECK_FALSE(liveness_step(in).send_heartbeat);
}

TEST_CASE("liveness: ping after two silent intervals, expire after three",
          "[broker][unit][liveness]") {
  LivenessInput in;
  in.interval_ms = 100;
  in.last_seen_ms = 1000;
  in.last_sent_ms = 1150;
  in.now_ms = 1199;
  CHECK_FALSE(liveness_step(in).send_ping);
  in.now_ms = 1200;
  auto d = liveness_step(in);
  CHECK(d.send_ping);
  CHECK_FALSE(d.send_heartbeat);  // the ping counts as output
  CHECK(d.state == LivenessState::kPinged);
  CHECK(d.next_check_ms == 1300);
  in.pinged = true;
  in.last_sent_ms = 1200;
  in.now_ms = 1299;
  d = liveness_step(in);
  CHECK_FALSE(d.send_ping);  // one ping per silence
  CHECK(d.state == LivenessState::kPinged);
  in.now_ms = 1300;
  CHECK(liveness_step(in).state == LivenessState::kExpired);
  // Hearing from the peer (last_seen moves) brings it back to alive.
  in.pinged = false;
  in.last_seen_ms = 1290;
  CHECK(liveness_step(in).state == LivenessState::kAlive);
}

namespace {
StoredPublication pub(std::uint64_t seq, std::size_t bytes = 10) {
  return {seq, 0, std::make_shared<const std::string>(bytes, 'x')};
}
std::vector<std::uint64_t> seqs(const PullSelection& s) {
  std::vector<std::uint64_t> out;
  for (auto* p : s.items) out.push_back(p->seq);
  return out;
}
}  // namespace

TEST_CASE("history: latest, since seq, max count and gap", "[broker][unit][history]") {
  TopicHistory h(4, 1 << 20);
  for (std::uint64_t i = 1; i <= 6; ++i) h.add(pub(i));
  CHECK(h.size() == 4);
  CHECK(seqs(h.select(0, 0, 6)) == std::vector<std::uint64_t>{6});
  auto s = h.select(4, 0, 6);
  CHECK(seqs(s) == std::vector<std::uint64_t>{5, 6});
  CHECK_FALSE(s.gap);
  s = h.select(2, 0, 6);
  CHECK(seqs(s) == std::vector<std::uint64_t>{3, 4, 5, 6});
  CHECK_FALSE(s.gap);  // 3 is the next after 2 and is kept
  s = h.select(1, 0, 6);
  CHECK(s.gap);
  CHECK(s.first_kept_seq == 3);
  CHECK(seqs(h.select(1, 2, 6)) == std::vector<std::uint64_t>{3, 4});
  s = h.select(6, 0, 6);
  CHECK(s.items.empty());
  CHECK_FALSE(s.gap);
}

TEST_CASE("history: byte bound evicts but keeps the latest", "[broker][unit][history]") {
  TopicHistory h(32, 100);
  h.add(pub(1, 40));
  h.add(pub(2, 40));
  h.add(pub(3, 40));
  CHECK(h.size() == 2);
  h.add(pub(4, 500));
  CHECK(h.size() == 1);
  CHECK(h.latest()->seq == 4);
}

TEST_CASE("config: TOML [broker] keys apply, paths relative to the file",
          "[broker][unit][config]") {
  Config c;
  auto s = apply_toml(
      "[broker]\nbind = \"tcp://127.0.0.1:*\"\nheartbeat_ms = 250\nacl = \"acl.toml\"\n"
      "queue_limit_bytes = 1048576\n",
      "b.toml", "/etc/curvebus", c);
  REQUIRE(s.ok());
  CHECK(c.bind == "tcp://127.0.0.1:*");
  CHECK(c.heartbeat_ms == 250);
  CHECK(c.acl_path == "/etc/curvebus/acl.toml");
  CHECK(c.queue_limit_bytes == 1048576);
}

TEST_CASE("config: unknown key, wrong type and syntax errors name file and line",
          "[broker][unit][config]") {
  Config c;
  auto s = apply_toml("[broker]\nbind = \"x\"\n\nheartbeat = 5\n", "b.toml", ".", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("b.toml:4:") == 0);
  CHECK(s.message().find("heartbeat") != std::string::npos);
  s = apply_toml("[broker]\nheartbeat_ms = \"fast\"\n", "b.toml", ".", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("b.toml:2:") == 0);
  s = apply_toml("[broker]\nmax_topics = -3\n", "b.toml", ".", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("b.toml:2:") == 0);
  s = apply_toml("[brokr]\nbind = \"x\"\n", "b.toml", ".", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("b.toml:1:") == 0);
  s = apply_toml("[broker]\nbind = \n", "b.toml", ".", c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("b.toml:2:") == 0);
}

TEST_CASE("config: flags override the file and are range-checked", "[broker][unit][config]") {
  auto cl = parse_command_line(
      {"curvebus-broker", "--heartbeat-ms", "300", "--publish-rate", "50", "--log-level", "debug"});
  REQUIRE(cl.exit_code == -1);
  CHECK(cl.config.heartbeat_ms == 300);
  CHECK(cl.config.publish_rate == 50);
  CHECK(cl.config.log_level == "debug");
  cl = parse_command_line({"curvebus-broker", "--heartbeat-ms", "0"});
  CHECK(cl.exit_code == 1);
  CHECK(cl.output.find("--heartbeat-ms") != std::string::npos);
  cl = parse_command_line({"curvebus-broker", "--no-such-flag"});
  CHECK(cl.exit_code == 1);
  cl = parse_command_line({"curvebus-broker", "--help"});
  CHECK(cl.exit_code == 0);
  CHECK(cl.output.find("--max-topics") != std::string::npos);
}

TEST_CASE("token bucket: spend may go into debt, and work waits until it is repaid",
          "[broker][unit][rate_limiter]") {
  TokenBucket b(1000, 2000);  // 1000 units/s, burst 2000
  REQUIRE(b.available(0));
  b.spend(0, 2500);  // a request that cost more than was left
  CHECK_FALSE(b.available(0));
  CHECK_FALSE(b.available(400));  // 400 units back: still 100 in debt
  CHECK(b.available(600));
  b.spend(600, 1e9);  // a debt is at most one burst
  CHECK_FALSE(b.available(600 + 1999));
  CHECK(b.available(600 + 2100));
}

TEST_CASE("history: plan_add predicts exactly what add evicts, per owner",
          "[broker][unit][history]") {
  TopicHistory h(3, 250);
  auto bytes = [](std::size_t n) { return std::make_shared<const std::string>(n, 'x'); };
  h.add({1, 0, bytes(100), 7});
  h.add({2, 0, bytes(50), 8});
  h.add({3, 0, bytes(60), 7});
  // Depth 3: adding a fourth evicts seq 1 (owner 7, 100 bytes).
  EvictionPlan p = h.plan_add(10, 7);
  CHECK(p.evicted_bytes == 100);
  CHECK(p.evicted_owner_bytes == 100);
  CHECK(h.plan_add(10, 8).evicted_owner_bytes == 0);
  // 200 bytes: over the 250-byte bound too, so everything older goes.
  p = h.plan_add(200, 8);
  CHECK(p.evicted_bytes == 210);
  CHECK(p.evicted_owner_bytes == 50);
  std::size_t evicted = 0;
  h.add({4, 0, bytes(200), 8}, [&](const StoredPublication& e) { evicted += e.encoded->size(); });
  CHECK(evicted == 210);
  CHECK(h.bytes() == 200);
  CHECK(h.size() == 1);
}

TEST_CASE("literal prefix: where an ordered scan for a pattern may start and stop",
          "[broker][unit][directory]") {
  CHECK(literal_prefix("robot/alex/#") == "robot/alex");
  CHECK(literal_prefix("robot/+/cmd") == "robot");
  CHECK(literal_prefix("robot/alex/cmd") == "robot/alex/cmd");
  CHECK(literal_prefix("#").empty());
  CHECK(literal_prefix("+/x").empty());
  CHECK(literal_prefix("$SYS/audit/#") == "$SYS/audit");
}
