// Unit tests of the broker's building blocks: topic tree, token bucket,
// liveness timers, history selection, configuration parsing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <random>
#include <tuple>

#include "curvebus/broker/config.hpp"
#include "curvebus/broker/history.hpp"
#include "curvebus/broker/liveness.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "curvebus/broker/topic_tree.hpp"
#include "topic_table.hpp"  // literal_prefix

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

namespace {

using Action = LivenessTimers::Action;

// What LivenessTimers decided, in order: (time, id, action).
struct Recorded {
  std::int64_t at;
  std::uint64_t id;
  Action action;
  bool operator==(const Recorded& o) const {
    return at == o.at && id == o.id && action == o.action;
  }
};

struct TimerRig {
  // The entries outlive the timers (destroyed after them), as sessions do in
  // SessionTable: ~LivenessTimers unlinks the entries it still holds.
  std::vector<std::unique_ptr<LivenessTimers::Entry>> entries;
  LivenessTimers timers;
  std::vector<Recorded> log;
  std::int64_t now = 0;

  LivenessTimers::Entry& add(std::uint32_t interval) {
    entries.push_back(std::make_unique<LivenessTimers::Entry>());
    entries.back()->id = entries.size();
    timers.add(*entries.back(), interval, now);
    return *entries.back();
  }
  // Runs the timers at every millisecond up to `until`, as a loop that
  // wakes at next_due() would, recording what they decide.
  void run_until(std::int64_t until) {
    while (now < until) {
      now = std::min(until, std::max(now + 1, timers.next_due()));
      timers.run(now, [&](LivenessTimers::Entry& e, Action a) { log.push_back({now, e.id, a}); });
    }
  }
  std::size_t count(Action a) const {
    return static_cast<std::size_t>(
        std::count_if(log.begin(), log.end(), [&](const Recorded& r) { return r.action == a; }));
  }
};

}  // namespace

TEST_CASE("liveness: a silent peer gets one PING after two intervals and expires after three",
          "[broker][unit][liveness]") {
  TimerRig rig;
  rig.now = 1000;
  auto& e = rig.add(100);
  rig.run_until(1199);
  CHECK(rig.count(Action::kPing) == 0);
  rig.run_until(1200);
  REQUIRE(rig.count(Action::kPing) == 1);
  CHECK(rig.log.back() == Recorded{1200, e.id, Action::kPing});
  CHECK(e.pinged);
  rig.run_until(1299);
  CHECK(rig.count(Action::kPing) == 1);  // one PING per silence
  CHECK(rig.count(Action::kExpire) == 0);
  rig.run_until(1300);
  CHECK(rig.log.back() == Recorded{1300, e.id, Action::kExpire});
  CHECK(rig.timers.size() == 0);
  CHECK(e.group == nullptr);
  rig.run_until(2000);
  CHECK(rig.log.size() == 3);  // PING, HEARTBEAT (1100: nothing sent for I), EXPIRE
  CHECK(rig.count(Action::kHeartbeat) == 1);
}

TEST_CASE("liveness: hearing from a pinged peer makes it alive and restarts its silence",
          "[broker][unit][liveness]") {
  TimerRig rig;
  auto& e = rig.add(100);
  rig.run_until(250);
  REQUIRE(e.pinged);
  rig.timers.heard(e, 290);
  CHECK_FALSE(e.pinged);
  rig.run_until(489);
  CHECK(rig.count(Action::kExpire) == 0);
  CHECK(rig.count(Action::kPing) == 1);
  rig.run_until(490);  // 2 I after 290: pinged again
  CHECK(rig.count(Action::kPing) == 2);
  rig.run_until(590);
  CHECK(rig.count(Action::kExpire) == 1);
}

TEST_CASE(
    "liveness: a relaxed session (interval of 1 s or more) has about every second heartbeat "
    "answered, and hears the broker at least every 2.5 intervals",
    "[broker][unit][liveness]") {
  TimerRig rig;
  auto& e = rig.add(1000);
  int answers = 0;
  std::int64_t last_broker = 0, worst_gap = 0;
  auto broker_sent = [&](std::int64_t t) {
    worst_gap = std::max(worst_gap, t - last_broker);
    last_broker = t;
  };
  // The peer sends a HEARTBEAT 1000-1100 ms after its previous one (a 100 ms tick).
  std::int64_t t = 0;
  for (int i = 0; i < 100; ++i) {
    t += 1000 + (i * 37) % 101;
    const std::size_t before = rig.log.size();
    rig.run_until(t);
    for (std::size_t k = before; k < rig.log.size(); ++k) broker_sent(rig.log[k].at);
    if (rig.timers.heard(e, t)) {
      ++answers;
      rig.timers.sent(e, t);
      broker_sent(t);
    }
  }
  CHECK(rig.count(Action::kPing) == 0);
  CHECK(rig.count(Action::kExpire) == 0);
  CHECK(rig.count(Action::kHeartbeat) == 0);  // the answers come first
  CHECK(answers >= 45);
  CHECK(answers <= 55);
  CHECK(worst_gap <= 2500);
}

TEST_CASE(
    "liveness: an eager session (interval under 1 s) hears the broker at least once per "
    "interval, and every message after half an interval of broker silence is answered",
    "[broker][unit][liveness]") {
  TimerRig rig;
  auto& e = rig.add(125);
  std::int64_t t = 0, last_broker = 0, worst_gap = 0;
  for (int i = 0; i < 40; ++i) {
    t += 60 + (i * 7) % 120;
    const std::size_t before = rig.log.size();
    rig.run_until(t);
    for (std::size_t k = before; k < rig.log.size(); ++k) {
      worst_gap = std::max(worst_gap, rig.log[k].at - last_broker);
      last_broker = rig.log[k].at;
    }
    const bool owed = t - e.last_sent_ms >= 62;
    REQUIRE(rig.timers.heard(e, t) == owed);
    if (owed) {
      rig.timers.sent(e, t);
      worst_gap = std::max(worst_gap, t - last_broker);
      last_broker = t;
    }
  }
  CHECK(rig.count(Action::kHeartbeat) > 0);  // peers slower than I get the broker's own
  CHECK(rig.count(Action::kPing) == 0);
  CHECK(worst_gap <= 125);
}

TEST_CASE("liveness: a peer that only receives is sent nothing extra while output flows",
          "[broker][unit][liveness]") {
  TimerRig rig;
  auto& e = rig.add(1000);
  for (std::int64_t t = 100; t <= 10000; t += 100) {
    rig.run_until(t);
    rig.timers.sent(e, t);                                   // deliveries every 100 ms
    if (t % 1000 == 0) CHECK_FALSE(rig.timers.heard(e, t));  // its heartbeats need no answer
  }
  CHECK(rig.log.empty());
}

TEST_CASE("liveness: a second REGISTER with another interval keeps the session's times",
          "[broker][unit][liveness]") {
  TimerRig rig;
  auto& e = rig.add(1000);
  rig.timers.heard(e, 500);
  rig.now = 600;
  rig.timers.add(e, 100, rig.now);
  CHECK(e.last_seen_ms == 500);
  CHECK(e.interval_ms == 100);
  rig.run_until(800);
  CHECK(rig.count(Action::kPing) == 1);  // 2 x 100 ms after 500 (due at 700)
  CHECK(rig.log.front().at <= 700);
}

TEST_CASE("liveness: the timers decide what scanning every session every millisecond decides",
          "[broker][unit][liveness]") {
  // A model: the rules of liveness.hpp applied to every session at every
  // millisecond.  Random peers of a few intervals speak, go quiet, come back,
  // and the broker's output leaves at random times; both must agree.
  struct Model {
    std::uint64_t id;
    std::uint32_t interval;
    std::int64_t seen = 0, sent = 0;
    bool pinged = false, gone = false;
  };
  std::mt19937 rng(42);
  TimerRig rig;
  std::vector<Model> model;
  const std::uint32_t intervals[] = {100, 150, 1000, 1200};
  for (int i = 0; i < 40; ++i) {
    auto& e = rig.add(intervals[i % 4]);
    model.push_back({e.id, intervals[i % 4]});
  }
  std::vector<Recorded> expected;
  for (std::int64_t t = 1; t <= 20000; ++t) {
    // The model's decisions at t (the same order as run(): per session).
    for (auto& m : model) {
      if (m.gone) continue;
      const std::int64_t i = m.interval;
      if (t - m.seen >= 3 * i) {
        m.gone = true;
        expected.push_back({t, m.id, Action::kExpire});
        continue;
      }
      if (!m.pinged && t - m.seen >= 2 * i) {
        m.pinged = true;
        m.sent = t;
        expected.push_back({t, m.id, Action::kPing});
      }
      if (t - m.sent >= LivenessTimers::heartbeat_after_ms(m.interval)) {
        m.sent = t;
        expected.push_back({t, m.id, Action::kHeartbeat});
      }
    }
    rig.run_until(t);
    // Random events at t, after the timers ran.
    for (std::size_t k = 0; k < model.size(); ++k) {
      auto& m = model[k];
      if (m.gone) continue;
      auto& e = *rig.entries[k];
      const bool quiet_phase = (t / 3000 + k) % 3 == 0;  // every third 3 s, some peers go quiet
      if (!quiet_phase && rng() % m.interval == 0) {
        m.seen = t;
        m.pinged = false;
        const bool answer = t - m.sent >= LivenessTimers::answer_after_ms(m.interval);
        REQUIRE(rig.timers.heard(e, t) == answer);
      }
      if (rng() % (4 * m.interval) == 0) {
        m.sent = t;
        rig.timers.sent(e, t);
      }
    }
  }
  auto key = [](const Recorded& r) {
    return std::make_tuple(r.at, r.id, static_cast<int>(r.action));
  };
  auto sorted = [&](std::vector<Recorded> v) {
    std::sort(v.begin(), v.end(),
              [&](const Recorded& a, const Recorded& b) { return key(a) < key(b); });
    return v;
  };
  REQUIRE(expected.size() > 50);
  CHECK(rig.count(Action::kExpire) > 5);
  CHECK(sorted(rig.log) == sorted(expected));
}

TEST_CASE("liveness: 10,000 live sessions cost the timers no visit", "[broker][unit][liveness]") {
  TimerRig rig;
  for (int i = 0; i < 10000; ++i) rig.add(1000);
  // Every peer speaks once a second, in turn; the broker answers when owed.
  for (std::int64_t t = 1; t <= 10000; ++t) {
    rig.run_until(t);
    for (int k = 0; k < 10000; k += 1000) {
      auto& e = *rig.entries[static_cast<std::size_t>((t + k) % 10000)];
      if (rig.timers.heard(e, t)) rig.timers.sent(e, t);
    }
  }
  CHECK(rig.log.empty());
  CHECK(rig.timers.size() == 10000);
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
