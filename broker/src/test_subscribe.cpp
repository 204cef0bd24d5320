// SUBSCRIBE / UNSUBSCRIBE, in process (testing/harness.hpp): one answer per
// pattern, the ACL and the audit topics, wildcard delivery, retained values
// on subscribe, the per-session subscription bound, and unsubscribing.
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;

namespace {

std::vector<std::string> topics_of(const std::vector<v1::Deliver>& got) {
  std::vector<std::string> out;
  for (const auto& d : got) out.push_back(d.topic());
  return out;
}

}  // namespace

TEST_CASE(
    "subscribe: each pattern is answered in request order, and a pattern outside the ACL is "
    "DENIED, counted, and delivers nothing while the granted one does",
    "[inproc][subscribe]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.open("alex");
  const auto before = h.status().counters().denials();
  auto answer = h.request(alex, ops::subscribe({"robot/bob/cmd", "robot/alex/cmd"}));
  REQUIRE(answer.has_suback());
  REQUIRE(answer.suback().answers_size() == 2);
  CHECK(answer.suback().answers(0).pattern() == "robot/bob/cmd");
  CHECK(answer.suback().answers(0).result() == v1::PATTERN_DENIED);
  CHECK_FALSE(answer.suback().answers(0).reason().empty());
  CHECK(answer.suback().answers(1).pattern() == "robot/alex/cmd");
  CHECK(answer.suback().answers(1).result() == v1::PATTERN_GRANTED);
  CHECK(h.status().counters().denials() == before + 1);

  h.send(dev, ops::publish("robot/bob/cmd", "stop"));
  h.send(dev, ops::publish("robot/alex/cmd", "go"));
  const auto got = deliveries(h.take(alex));
  REQUIRE(got.size() == 1);
  CHECK(got[0].topic() == "robot/alex/cmd");
  CHECK(got[0].payload() == "go");
}

TEST_CASE(
    "subscribe: $SYS/audit is for administrators only, even when a name's ACL patterns "
    "cover it",
    "[inproc][subscribe]") {
  Harness::Options o;
  NameSpec admin{"root", "client", true, {"#"}, {"#", "$SYS/#"}, "", ""};
  NameSpec watcher{"watcher", "client", false, {}, {"#", "$SYS/#"}, "", ""};
  o.names = {admin, watcher};
  Harness h(std::move(o));
  auto w = h.open("watcher");
  auto root = h.open("root");
  auto answer = h.request(w, ops::subscribe({"$SYS/audit/#", "$SYS/#", "$SYS/presence/#"}));
  REQUIRE(answer.suback().answers_size() == 3);
  CHECK(answer.suback().answers(0).result() == v1::PATTERN_DENIED);
  CHECK(answer.suback().answers(1).result() == v1::PATTERN_DENIED);  // $SYS/# reaches audit
  CHECK(answer.suback().answers(2).result() == v1::PATTERN_GRANTED);
  auto by_admin = h.request(root, ops::subscribe({"$SYS/audit/#"}));
  REQUIRE(by_admin.suback().answers_size() == 1);
  CHECK(by_admin.suback().answers(0).result() == v1::PATTERN_GRANTED);
}

TEST_CASE(
    "subscribe: '+' matches exactly one level and '#' the level it stands for and all "
    "below, and a topic matched by two patterns is delivered once",
    "[inproc][subscribe]") {
  Harness h;
  auto pub = h.open("dev");
  auto plus = h.open("dev");
  auto hash = h.open("dev");
  auto both = h.open("dev");
  h.request(plus, ops::subscribe({"robot/+/status"}));
  h.request(hash, ops::subscribe({"robot/alex/#"}));
  h.request(both, ops::subscribe({"robot/+/status", "robot/alex/#"}));
  for (const char* topic : {"robot/alex/status", "robot/bob/status", "robot/alex/status/x",
                            "robot/alex", "robot/status", "fleet/alex/status"})
    h.send(pub, ops::publish(topic, "x"));
  CHECK(topics_of(deliveries(h.take(plus))) ==
        std::vector<std::string>{"robot/alex/status", "robot/bob/status"});
  CHECK(topics_of(deliveries(h.take(hash))) ==
        std::vector<std::string>{"robot/alex/status", "robot/alex/status/x", "robot/alex"});
  CHECK(topics_of(deliveries(h.take(both))) ==
        std::vector<std::string>{"robot/alex/status", "robot/bob/status", "robot/alex/status/x",
                                 "robot/alex"});
}

TEST_CASE(
    "subscribe: with want_retained, the SUBACK is followed by the retained value of each "
    "matching topic once, marked retained, and nothing for topics without one",
    "[inproc][subscribe]") {
  Harness h;
  auto pub = h.open("dev");
  h.send(pub, ops::publish("fleet/r1/status", "r1 up", false, true));
  h.send(pub, ops::publish("fleet/r2/status", "r2 up", false, true));
  h.send(pub, ops::publish("fleet/r3/status", "not kept"));  // no retain
  h.send(pub, ops::publish("other/status", "elsewhere", false, true));
  auto late = h.open("dev");
  h.take(late);
  h.send(late, ops::subscribe({"fleet/#", "fleet/+/status"}, true));
  const auto got = h.take(late);
  REQUIRE_FALSE(got.empty());
  CHECK(got[0].has_suback());
  const auto values = deliveries(got);
  REQUIRE(values.size() == 2);
  CHECK(values[0].topic() == "fleet/r1/status");
  CHECK(values[0].payload() == "r1 up");
  CHECK(values[0].retained());
  CHECK(values[1].topic() == "fleet/r2/status");
  CHECK(values[1].payload() == "r2 up");
  CHECK(values[1].retained());

  // Subscribing again to a pattern already held still sends the values asked for.
  h.send(late, ops::subscribe({"fleet/r1/status"}, true));
  CHECK(deliveries(h.take(late)).size() == 1);
}

TEST_CASE(
    "unsubscribe: the UNSUBACK lists what was removed and what was not subscribed, and "
    "deliveries stop for the removed pattern only",
    "[inproc][subscribe]") {
  Harness h;
  auto pub = h.open("dev");
  auto sub = h.open("dev");
  h.request(sub, ops::subscribe({"a/#", "b/+"}));
  h.send(pub, ops::publish("a/1", "x"));
  h.send(pub, ops::publish("b/1", "x"));
  CHECK(deliveries(h.take(sub)).size() == 2);

  auto answer = h.request(sub, ops::unsubscribe({"a/#", "never/subscribed"}));
  REQUIRE(answer.has_unsuback());
  CHECK(std::vector<std::string>(answer.unsuback().removed().begin(),
                                 answer.unsuback().removed().end()) ==
        std::vector<std::string>{"a/#"});
  CHECK(std::vector<std::string>(answer.unsuback().not_found().begin(),
                                 answer.unsuback().not_found().end()) ==
        std::vector<std::string>{"never/subscribed"});

  h.send(pub, ops::publish("a/1", "after"));
  h.send(pub, ops::publish("b/1", "after"));
  CHECK(topics_of(deliveries(h.take(sub))) == std::vector<std::string>{"b/1"});
  CHECK(h.request(pub, ops::publish("a/2", "x", true)).puback().delivered() == 0);

  auto again = h.request(sub, ops::unsubscribe({"a/#"}));
  CHECK(again.unsuback().removed_size() == 0);
  CHECK(again.unsuback().not_found_size() == 1);
}

TEST_CASE(
    "subscribe: a malformed pattern is answered INVALID with a reason and subscribes "
    "nothing",
    "[inproc][subscribe]") {
  Harness h;
  auto pub = h.open("dev");
  auto sub = h.open("dev");
  const std::vector<std::string> bad = {"a/#/b", "a/b#", "a+/b", ""};
  auto answer = h.request(sub, ops::subscribe(bad));
  REQUIRE(answer.suback().answers_size() == static_cast<int>(bad.size()));
  for (int i = 0; i < answer.suback().answers_size(); ++i) {
    INFO("pattern '" << bad[static_cast<std::size_t>(i)] << "'");
    CHECK(answer.suback().answers(i).pattern() == bad[static_cast<std::size_t>(i)]);
    CHECK(answer.suback().answers(i).result() == v1::PATTERN_INVALID);
    CHECK_FALSE(answer.suback().answers(i).reason().empty());
  }
  h.send(pub, ops::publish("a/x/b", "x"));
  h.send(pub, ops::publish("a/b#", "x"));
  CHECK(deliveries(h.take(sub)).empty());
  CHECK(h.request(sub, ops::unsubscribe({"a/#/b"})).unsuback().not_found_size() == 1);
}

TEST_CASE(
    "subscribe: past max_subscriptions a new pattern is answered LIMIT, while patterns "
    "already held are granted again",
    "[inproc][subscribe]") {
  Harness::Options o;
  o.config.max_subscriptions = 2;
  Harness h(std::move(o));
  auto sub = h.open("dev");
  auto answer = h.request(sub, ops::subscribe({"a", "b", "c", "a"}));
  REQUIRE(answer.suback().answers_size() == 4);
  CHECK(answer.suback().answers(0).result() == v1::PATTERN_GRANTED);
  CHECK(answer.suback().answers(1).result() == v1::PATTERN_GRANTED);
  CHECK(answer.suback().answers(2).result() == v1::PATTERN_LIMIT);
  CHECK(answer.suback().answers(3).result() == v1::PATTERN_GRANTED);
  h.request(sub, ops::unsubscribe({"b"}));
  CHECK(h.request(sub, ops::subscribe({"c"})).suback().answers(0).result() == v1::PATTERN_GRANTED);
}
