// TOPICS, in process (testing/harness.hpp): the directory filtered by a
// pattern and by the caller's subscribe ACL, in sorted order, in pages of at
// most max_topics_reply with a cursor to continue from.
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;

namespace {

std::vector<std::string> names(const v1::TopicsReply& r) {
  std::vector<std::string> out;
  for (const auto& t : r.topics()) out.push_back(t.topic());
  return out;
}

}  // namespace

TEST_CASE(
    "topics: the listing holds the topics matching the pattern, sorted, each with its last "
    "seq, retained flag, publishers and subscriber count",
    "[inproc][topics]") {
  Harness h;
  auto dev = h.open("dev");
  auto sub = h.open("dev");
  h.request(sub, ops::subscribe({"a/+"}));
  h.send(dev, ops::publish("a/2", "x"));
  h.send(dev, ops::publish("a/1", "x", false, true));
  h.send(dev, ops::publish("a/1", "y", false, true));
  h.send(dev, ops::publish("a/1/deep", "x"));
  h.send(dev, ops::publish("b/1", "x"));
  auto answer = h.request(dev, ops::topics("a/+"));
  REQUIRE(answer.has_topics_reply());
  const auto& r = answer.topics_reply();
  CHECK(names(r) == std::vector<std::string>{"a/1", "a/2"});
  CHECK_FALSE(r.truncated());
  REQUIRE(r.topics_size() == 2);
  CHECK(r.topics(0).last_seq() == 2);
  CHECK(r.topics(0).retained());
  CHECK(r.topics(0).messages() == 2);
  CHECK(r.topics(0).subscribers() == 1);
  CHECK(
      std::vector<std::string>(r.topics(0).publishers().begin(), r.topics(0).publishers().end()) ==
      std::vector<std::string>{"dev"});
  CHECK(r.topics(1).last_seq() == 1);
  CHECK_FALSE(r.topics(1).retained());

  CHECK(names(h.request(dev, ops::topics("a/#")).topics_reply()) ==
        std::vector<std::string>{"a/1", "a/1/deep", "a/2"});
}

TEST_CASE(
    "topics: a caller sees only the topics its subscribe ACL lets it read, whatever the "
    "pattern",
    "[inproc][topics]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.open("alex");
  for (const char* t : {"robot/alex/cmd", "robot/alex/telemetry", "robot/bob/cmd", "fleet/x"})
    h.send(dev, ops::publish(t, "x"));
  CHECK(names(h.request(alex, ops::topics("robot/#")).topics_reply()) ==
        std::vector<std::string>{"robot/alex/cmd"});
  CHECK(names(h.request(alex, ops::topics("#")).topics_reply()) ==
        std::vector<std::string>{"robot/alex/cmd"});
  CHECK(names(h.request(dev, ops::topics("robot/#")).topics_reply()) ==
        std::vector<std::string>{"robot/alex/cmd", "robot/alex/telemetry", "robot/bob/cmd"});
}

TEST_CASE(
    "topics: a listing longer than max_topics_reply is truncated with a cursor, and asking "
    "after the cursor continues where the last page ended",
    "[inproc][topics]") {
  Harness::Options o;
  o.config.max_topics_reply = 3;
  Harness h(std::move(o));
  auto dev = h.open("dev");
  for (int i = 0; i < 7; ++i) h.send(dev, ops::publish("t/" + std::to_string(i), "x"));
  std::vector<std::string> all;
  std::string after;
  int pages = 0;
  for (;;) {
    auto r = h.request(dev, ops::topics("t/#", after)).topics_reply();
    ++pages;
    REQUIRE(r.topics_size() <= 3);
    for (const auto& t : r.topics()) all.push_back(t.topic());
    if (!r.truncated()) break;
    CHECK(r.resume_after() == all.back());
    after = r.resume_after();
    REQUIRE(pages < 10);
  }
  CHECK(pages == 3);
  CHECK(all == std::vector<std::string>{"t/0", "t/1", "t/2", "t/3", "t/4", "t/5", "t/6"});
}

TEST_CASE("topics: a malformed pattern is refused INVALID_TOPIC", "[inproc][topics]") {
  Harness h;
  auto dev = h.open("dev");
  auto answer = h.request(dev, ops::topics("a/#/b"));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_INVALID_TOPIC);
  CHECK(answer.error().answers() == "topics");
}
