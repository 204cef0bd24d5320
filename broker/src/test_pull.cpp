// PULL, in process (testing/harness.hpp): the latest publication of a topic,
// its kept history since a seq (bounded by max_count and history_depth, with
// the gap reported), and the refusals: invalid topic, ACL, never published.
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;

namespace {

std::vector<std::uint64_t> seqs(const v1::PullReply& r) {
  std::vector<std::uint64_t> out;
  for (const auto& d : r.messages()) out.push_back(d.seq());
  return out;
}

void publish_n(Harness& h, const Peer& pub, const std::string& topic, int n) {
  for (int i = 1; i <= n; ++i) h.send(pub, ops::publish(topic, "v" + std::to_string(i)));
}

}  // namespace

TEST_CASE(
    "pull: without since_seq the reply carries only the latest publication, with the "
    "topic's last seq and no gap",
    "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  publish_n(h, dev, "robot/alex/pose", 3);
  auto answer = h.request(dev, ops::pull("robot/alex/pose"));
  REQUIRE(answer.has_pull_reply());
  const auto& r = answer.pull_reply();
  CHECK(r.topic() == "robot/alex/pose");
  CHECK(r.last_seq() == 3);
  CHECK_FALSE(r.gap());
  REQUIRE(r.messages_size() == 1);
  CHECK(r.messages(0).seq() == 3);
  CHECK(r.messages(0).payload() == "v3");
  CHECK(r.messages(0).publisher() == "dev");
  CHECK(r.messages(0).retained());  // part of a PULL reply
}

TEST_CASE("pull: since_seq N returns every kept publication after N, oldest first",
          "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  publish_n(h, dev, "log", 5);
  auto r = h.request(dev, ops::pull("log", 2)).pull_reply();
  CHECK(seqs(r) == std::vector<std::uint64_t>{3, 4, 5});
  CHECK(r.messages(0).payload() == "v3");
  CHECK(r.first_kept_seq() == 1);
  CHECK_FALSE(r.gap());
  auto none = h.request(dev, ops::pull("log", 5)).pull_reply();  // up to date
  CHECK(none.messages_size() == 0);
  CHECK(none.last_seq() == 5);
  CHECK_FALSE(none.gap());
}

TEST_CASE("pull: max_count bounds the history returned, keeping the oldest after since_seq",
          "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  publish_n(h, dev, "log", 6);
  auto r = h.request(dev, ops::pull("log", 1, 2)).pull_reply();
  CHECK(seqs(r) == std::vector<std::uint64_t>{2, 3});
  CHECK(r.last_seq() == 6);
}

TEST_CASE(
    "pull: history keeps history_depth publications, and asking from before them reports "
    "a gap and the first kept seq",
    "[inproc][pull]") {
  Harness::Options o;
  o.config.history_depth = 4;
  Harness h(std::move(o));
  auto dev = h.open("dev");
  publish_n(h, dev, "log", 10);
  auto r = h.request(dev, ops::pull("log", 2)).pull_reply();
  CHECK(r.gap());
  CHECK(r.first_kept_seq() == 7);
  CHECK(seqs(r) == std::vector<std::uint64_t>{7, 8, 9, 10});
  auto recent = h.request(dev, ops::pull("log", 7)).pull_reply();
  CHECK_FALSE(recent.gap());
  CHECK(seqs(recent) == std::vector<std::uint64_t>{8, 9, 10});
}

TEST_CASE("pull: a topic nothing was published on is answered NOT_FOUND", "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  auto answer = h.request(dev, ops::pull("robot/alex/never"));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_NOT_FOUND);
  CHECK(answer.error().topic() == "robot/alex/never");
  CHECK(answer.error().answers() == "pull");
}

TEST_CASE(
    "pull: reading a topic outside the subscribe ACL is refused DENIED and counted, even "
    "when the topic has values",
    "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.open("alex");
  h.send(dev, ops::publish("robot/bob/cmd", "secret"));
  h.send(dev, ops::publish("robot/alex/cmd", "forward"));
  const auto before = h.status().counters().denials();
  auto answer = h.request(alex, ops::pull("robot/bob/cmd"));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_DENIED);
  CHECK(answer.error().topic() == "robot/bob/cmd");
  CHECK(answer.error().answers() == "pull");
  CHECK(h.status().counters().denials() == before + 1);
  // A topic never published but outside the ACL is DENIED too: PULL does not
  // tell a reader which topics exist.
  CHECK(h.request(alex, ops::pull("robot/bob/other")).error().code() == v1::ERROR_DENIED);
  auto own = h.request(alex, ops::pull("robot/alex/cmd"));
  REQUIRE(own.has_pull_reply());
  CHECK(own.pull_reply().messages(0).payload() == "forward");
}

TEST_CASE("pull: a pattern or malformed topic is refused INVALID_TOPIC", "[inproc][pull]") {
  Harness h;
  auto dev = h.open("dev");
  for (const std::string& topic : {std::string("a/+"), std::string("a/#"), std::string()}) {
    INFO("topic '" << topic << "'");
    auto answer = h.request(dev, ops::pull(topic));
    REQUIRE(answer.has_error());
    CHECK(answer.error().code() == v1::ERROR_INVALID_TOPIC);
    CHECK(answer.error().answers() == "pull");
  }
}
