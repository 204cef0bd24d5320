// Liveness, in process (testing/harness.hpp, ManualClock): a session silent
// for two intervals is PINGed and after three is timed out (offline presence,
// counted, later ops answered SESSION_EXPIRED); a peer that keeps sending,
// or answers the PING, keeps its session.
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;
using namespace std::chrono_literals;

namespace {

// A watcher of presence that stays alive through the test without sending.
Peer presence_watcher(Harness& h) {
  auto w = h.open("dev", RegisterSpec{60000, "watcher", {}});
  h.request(w, ops::subscribe({"$SYS/presence/#"}));
  h.take(w);
  return w;
}

}  // namespace

TEST_CASE(
    "liveness: a silent peer is PINGed after two intervals and timed out after three, "
    "published offline (timeout) and counted",
    "[inproc][liveness]") {
  Harness h;
  auto w = presence_watcher(h);
  auto alex = h.open("alex", RegisterSpec{1000, "agent", {}});
  REQUIRE(alex.registered.heartbeat_ms() == 1000);
  REQUIRE(alex.registered.timeout_ms() == 3000);
  h.take(alex);
  h.take(w);

  h.advance(1999ms);
  CHECK(of_kind(h.take(alex), v1::Op::kPing).empty());
  h.advance(1ms);  // two intervals
  CHECK(of_kind(h.take(alex), v1::Op::kPing).size() == 1);
  h.advance(999ms);
  CHECK(h.registered(alex));
  CHECK(presences(h.take(w), "alex").empty());

  h.advance(1ms);  // three intervals without a word
  CHECK_FALSE(h.registered(alex));
  const auto seen = presences(h.take(w), "alex");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].state() == "offline");
  CHECK(seen[0].reason() == "timeout");
  CHECK(seen[0].sessions() == 0);
  CHECK(h.status().counters().sessions_timed_out() == 1);
  CHECK(h.registered(w));

  auto late = h.request(alex, ops::publish("robot/alex/t", "x", true));
  REQUIRE(late.has_error());
  CHECK(late.error().code() == v1::ERROR_SESSION_EXPIRED);
}

TEST_CASE("liveness: a peer that keeps sending within its interval is never PINGed nor timed out",
          "[inproc][liveness]") {
  Harness h;
  auto w = presence_watcher(h);
  auto alex = h.open("alex", RegisterSpec{1000, "agent", {}});
  h.take(w);
  for (int i = 0; i < 20; ++i) {  // 18 s, six timeouts' worth
    h.advance(900ms);
    h.send(alex, i % 2 ? ops::heartbeat() : ops::publish("robot/alex/t", "x"));
  }
  CHECK(h.registered(alex));
  CHECK(of_kind(h.take(alex), v1::Op::kPing).empty());
  CHECK(presences(h.take(w), "alex").empty());
  CHECK(h.status().counters().sessions_timed_out() == 0);
}

TEST_CASE("liveness: a peer that answers the PING with a PONG keeps its session",
          "[inproc][liveness]") {
  Harness h;
  auto alex = h.open("alex", RegisterSpec{1000, "agent", {}});
  h.take(alex);
  for (int round = 0; round < 3; ++round) {
    h.advance(2000ms);
    const auto pings = of_kind(h.take(alex), v1::Op::kPing);
    REQUIRE(pings.size() == 1);
    v1::Op pong;
    pong.mutable_pong()->set_nonce(pings[0].ping().nonce());
    h.send(alex, pong);
  }
  h.advance(2999ms);  // silent again, but less than three intervals since the PONG
  CHECK(h.registered(alex));
  h.advance(1ms);
  CHECK_FALSE(h.registered(alex));
}
