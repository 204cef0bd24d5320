#include <catch2/catch.hpp>

#include <vector>

#include "policy.hpp"

using namespace curvebus::agent;

namespace {
constexpr std::int64_t kNowUs = 1'800'000'000'000'000;  // a fixed wall clock
int counter = 0;

rv1::Command forward(std::int64_t issued_us = kNowUs, std::string id = "") {
  rv1::Command c;
  c.set_id(id.empty() ? "c" + std::to_string(++counter) : id);
  c.set_issued_us(issued_us);
  c.mutable_forward()->set_distance_cm(50);
  c.mutable_forward()->set_speed_pct(60);
  return c;
}

rv1::Command simple(const char* what, std::int64_t issued_us = kNowUs) {
  rv1::Command c;
  c.set_id("s" + std::to_string(++counter));
  c.set_issued_us(issued_us);
  std::string w = what;
  if (w == "stop") c.mutable_stop();
  if (w == "estop") c.mutable_estop()->set_reason("hand on the button");
  if (w == "clear_estop") c.mutable_clear_estop();
  if (w == "keepalive") c.mutable_keepalive();
  if (w == "release") c.mutable_release();
  if (w == "stats") c.mutable_get_stats();
  return c;
}
}  // namespace

TEST_CASE("policy: fresh motion is accepted and takes the lease", "[policy]") {
  CommandPolicy p;
  auto d = p.check(forward(), "laptop", kNowUs, 1000);
  CHECK(d.ok());
  CHECK(p.lease_holder() == "laptop");
}

TEST_CASE("policy: stale, future and repeated commands are refused", "[policy]") {
  CommandPolicy p(PolicyConfig{5000, 2000, 500, 4096});
  CHECK(p.check(forward(kNowUs - 6'000'000), "a", kNowUs, 0).status == rv1::RESULT_REJECTED_STALE);
  CHECK(p.check(forward(kNowUs + 3'000'000), "a", kNowUs, 0).status == rv1::RESULT_REJECTED_STALE);
  CHECK(p.check(forward(kNowUs, "same"), "a", kNowUs, 0).ok());
  CHECK(p.check(forward(kNowUs, "same"), "a", kNowUs, 10).status == rv1::RESULT_REJECTED_DUPLICATE);
  // The same id from another sender is that sender's own id.
  p.check(simple("release"), "a", kNowUs, 20);
  CHECK(p.check(forward(kNowUs, "same"), "b", kNowUs, 30).ok());
}

TEST_CASE("policy: commands without id or time or with bad speed are invalid", "[policy]") {
  CommandPolicy p;
  rv1::Command none;
  none.set_id("x");
  none.set_issued_us(kNowUs);
  CHECK(p.check(none, "a", kNowUs, 0).status == rv1::RESULT_REJECTED_INVALID);
  auto noid = forward();
  noid.clear_id();
  CHECK(p.check(noid, "a", kNowUs, 0).status == rv1::RESULT_REJECTED_INVALID);
  auto notime = forward();
  notime.set_issued_us(0);
  CHECK(p.check(notime, "a", kNowUs, 0).status == rv1::RESULT_REJECTED_INVALID);
  auto fast = forward();
  fast.mutable_forward()->set_speed_pct(101);
  CHECK(p.check(fast, "a", kNowUs, 0).status == rv1::RESULT_REJECTED_INVALID);
}

TEST_CASE("policy: one controller drives, others are refused until the lease is free", "[policy]") {
  CommandPolicy p(PolicyConfig{5000, 2000, 500, 4096});
  REQUIRE(p.check(forward(), "alice", kNowUs, 0).ok());
  auto d = p.check(forward(), "bob", kNowUs, 100);
  CHECK(d.status == rv1::RESULT_REJECTED_NO_LEASE);
  CHECK(d.detail.find("alice") != std::string::npos);
  // KeepAlive renews alice's lease; bob cannot renew what he does not hold.
  CHECK(p.check(simple("keepalive"), "alice", kNowUs, 400).ok());
  CHECK(p.check(simple("keepalive"), "bob", kNowUs, 400).status == rv1::RESULT_REJECTED_NO_LEASE);
  CHECK_FALSE(p.expire_lease(800));  // 400 ms since alice's keepalive
  CHECK(p.expire_lease(901));        // 501 ms of silence: the dead-man fires once
  CHECK_FALSE(p.expire_lease(2000));
  CHECK(p.lease_holder().empty());
  CHECK(p.check(forward(), "bob", kNowUs, 1000).ok());
  CHECK(p.lease_holder() == "bob");
}

TEST_CASE("policy: release and offline free the lease", "[policy]") {
  CommandPolicy p;
  REQUIRE(p.check(forward(), "alice", kNowUs, 0).ok());
  CHECK(p.check(simple("release"), "alice", kNowUs, 10).ok());
  CHECK(p.lease_holder().empty());
  REQUIRE(p.check(forward(), "bob", kNowUs, 20).ok());
  CHECK_FALSE(p.controller_offline("alice"));
  CHECK(p.controller_offline("bob"));
  CHECK(p.lease_holder().empty());
}

TEST_CASE("policy: anyone may stop, even stale or repeated", "[policy]") {
  CommandPolicy p;
  REQUIRE(p.check(forward(), "alice", kNowUs, 0).ok());
  auto stop = simple("stop", kNowUs - 60'000'000);
  CHECK(p.check(stop, "bob", kNowUs, 10).ok());
  CHECK(p.check(stop, "bob", kNowUs, 20).ok());
}

TEST_CASE("policy: emergency stop wins and latches until cleared", "[policy]") {
  CommandPolicy p;
  REQUIRE(p.check(forward(), "alice", kNowUs, 0).ok());
  CHECK(p.check(simple("estop"), "bob", kNowUs, 10).ok());
  CHECK(p.estop_latched());
  CHECK(p.estop_reason().find("bob") != std::string::npos);
  CHECK(p.check(forward(), "alice", kNowUs, 20).status == rv1::RESULT_REJECTED_ESTOP_LATCHED);
  CHECK(p.check(simple("stats"), "alice", kNowUs, 30).ok());
  CHECK(p.check(simple("clear_estop"), "alice", kNowUs, 40).ok());
  CHECK_FALSE(p.estop_latched());
  CHECK(p.check(forward(), "alice", kNowUs, 50).ok());
}

TEST_CASE(
    "policy: remembered ids stay bounded: past max_remembered_ids the oldest are forgotten, "
    "the newest are still refused as duplicates",
    "[policy]") {
  CommandPolicy p(PolicyConfig{5000, 2000, 500, 100});
  std::vector<rv1::Command> sent;
  for (int i = 0; i < 1000; ++i) {
    sent.push_back(simple("stats"));
    REQUIRE(p.check(sent.back(), "script", kNowUs, i).ok());
  }
  // The newest ids are still remembered: repeating one is a duplicate.
  CHECK(p.check(sent[999], "script", kNowUs, 1000).status == rv1::RESULT_REJECTED_DUPLICATE);
  CHECK(p.check(sent[950], "script", kNowUs, 1001).status == rv1::RESULT_REJECTED_DUPLICATE);
  CHECK(p.check(sent[901], "script", kNowUs, 1002).status == rv1::RESULT_REJECTED_DUPLICATE);
  // The oldest were dropped to keep the memory at 100 ids, although none of
  // them is stale yet: the same ids are accepted again.
  CHECK(p.check(sent[0], "script", kNowUs, 1003).ok());
  CHECK(p.check(sent[500], "script", kNowUs, 1004).ok());
  CHECK(p.check(sent[898], "script", kNowUs, 1005).ok());
  // Each sender has its own memory: another sender may use the same id.
  CHECK(p.check(sent[999], "other", kNowUs, 1006).ok());
}
