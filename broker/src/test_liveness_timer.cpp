// The broker's proof of life, in process (testing/harness.hpp,
// liveness.hpp, liveness_timer.cpp): it answers a peer's heartbeats rather
// than sending heartbeats of its own — about every second one with an
// interval of 1 s or more, every one under 1 s — and a peer that keeps to its
// own heartbeat always hears it within its bound.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;
using namespace std::chrono_literals;

namespace {

// What an idle peer sees over `cycles` of its own heartbeats: it sends one
// when it has sent nothing for `interval` (plus its loop's jitter), and
// notes every op the broker writes to it, millisecond by millisecond.
struct Seen {
  int answers = 0;         // heartbeats answered at once
  int broker_own = 0;      // HEARTBEATs the broker sent on its own
  int other = 0;           // anything else (PING, ...)
  std::int64_t worst = 0;  // longest the peer went without hearing the broker
};

Seen idle_peer(Harness& h, const Peer& p, std::int64_t interval, std::int64_t jitter, int cycles) {
  Seen seen;
  h.take(p);
  std::int64_t last_heard = h.clock().steady_ms();
  auto heard = [&] {
    seen.worst = std::max(seen.worst, h.clock().steady_ms() - last_heard);
    last_heard = h.clock().steady_ms();
  };
  for (int i = 0; i < cycles; ++i) {
    const std::int64_t quiet = interval + (i * 17) % jitter;
    for (std::int64_t t = 0; t < quiet; ++t) {
      h.advance(1ms);
      for (const auto& op : h.take(p)) {
        (op.has_heartbeat() ? seen.broker_own : seen.other) += 1;
        heard();
      }
    }
    h.send(p, ops::heartbeat());
    if (!h.take(p).empty()) {
      ++seen.answers;
      heard();
    }
  }
  return seen;
}

}  // namespace

TEST_CASE(
    "liveness timer: with a 1 s interval the broker answers about every second heartbeat "
    "of an idle peer and sends nothing on its own, so the peer hears it within 2.5 intervals",
    "[inproc][liveness]") {
  Harness h;
  auto p = h.open("dev");  // the broker's default interval
  REQUIRE(p.registered.heartbeat_ms() == 1000);
  const Seen seen = idle_peer(h, p, 1000, 50, 40);  // a peer whose loop wakes every 50 ms
  CHECK(seen.answers >= 18);
  CHECK(seen.answers <= 22);
  CHECK(seen.broker_own == 0);
  CHECK(seen.other == 0);
  CHECK(seen.worst <= 2500);
  CHECK(h.registered(p));
}

TEST_CASE(
    "liveness timer: with an interval under 1 s (a robot's dead-man link) the peer hears "
    "the broker at least once per interval, answers included",
    "[inproc][liveness]") {
  Harness h;
  auto p = h.open("alex", 125);
  const Seen seen = idle_peer(h, p, 125, 50, 80);
  CHECK(seen.answers + seen.broker_own >= 80);
  CHECK(seen.answers > 0);
  CHECK(seen.other == 0);
  CHECK(seen.worst <= 125);
}
