// PUBLISH, in process (testing/harness.hpp): routing to subscribers, PUBACK,
// the checks before routing (rate, size, topic, ACL), retained values, full
// queues, and that a slow disk never holds routing up.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;
using namespace std::chrono_literals;

namespace {

Harness::Options with_config(const std::function<void(broker::Config&)>& edit) {
  Harness::Options o;
  edit(o.config);
  return o;
}

}  // namespace

TEST_CASE(
    "publish: a subscriber gets every publication on a matching topic, in order, with "
    "seq from 1, the publisher's name and the payload as sent",
    "[inproc][publish]") {
  Harness h;
  auto sub = h.open("dev");
  auto pub = h.open("alex");
  REQUIRE(h.request(sub, ops::subscribe({"robot/alex/#"})).has_suback());
  for (int i = 0; i < 5; ++i)
    h.send(pub, ops::publish("robot/alex/telemetry", "reading " + std::to_string(i)));
  h.send(pub, ops::publish("robot/alex/status", "up"));
  const auto got = deliveries(h.take(sub));
  REQUIRE(got.size() == 6);
  for (int i = 0; i < 5; ++i) {
    CHECK(got[static_cast<std::size_t>(i)].topic() == "robot/alex/telemetry");
    CHECK(got[static_cast<std::size_t>(i)].seq() == static_cast<std::uint64_t>(i + 1));
    CHECK(got[static_cast<std::size_t>(i)].payload() == "reading " + std::to_string(i));
    CHECK(got[static_cast<std::size_t>(i)].publisher() == "alex");
    CHECK_FALSE(got[static_cast<std::size_t>(i)].retained());
  }
  CHECK(got[5].topic() == "robot/alex/status");
  CHECK(got[5].seq() == 1);                // seq numbers are per topic
  CHECK(deliveries(h.take(pub)).empty());  // not subscribed: nothing comes back
}

TEST_CASE("publish: PUBACK reports the seq and how many subscribers got it", "[inproc][publish]") {
  Harness h;
  auto a = h.open("dev");
  auto b = h.open("dev");
  auto pub = h.open("dev");
  h.request(a, ops::subscribe({"x/#"}));
  h.request(b, ops::subscribe({"x/+", "x/#"}));  // two patterns, one delivery
  auto ack = h.request(pub, ops::publish("x/y", "hello", true));
  REQUIRE(ack.has_puback());
  CHECK(ack.puback().topic() == "x/y");
  CHECK(ack.puback().seq() == 1);
  CHECK(ack.puback().delivered() == 2);
  CHECK(ack.puback().dropped() == 0);
  CHECK(deliveries(h.take(a)).size() == 1);
  CHECK(deliveries(h.take(b)).size() == 1);
  CHECK(h.request(pub, ops::publish("x/y", "again", true)).puback().seq() == 2);
}

TEST_CASE(
    "publish: a topic outside the publisher's ACL is refused DENIED, counted, and reaches "
    "no one",
    "[inproc][publish]") {
  Harness h;
  auto sub = h.open("dev");
  auto alex = h.open("alex");
  h.request(sub, ops::subscribe({"#"}));
  h.take(sub);
  const auto before = h.status().counters().denials();
  auto answer = h.request(alex, ops::publish("robot/bob/cmd", "forward 100", true));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_DENIED);
  CHECK(answer.error().topic() == "robot/bob/cmd");
  CHECK(answer.error().answers() == "publish");
  CHECK(h.status().counters().denials() == before + 1);
  CHECK(deliveries(h.take(sub)).empty());
}

TEST_CASE("publish: an invalid topic is refused INVALID_TOPIC and creates nothing",
          "[inproc][publish]") {
  Harness h;
  auto dev = h.open("dev");
  const auto topics = h.status().topics();  // $SYS/presence/dev
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += "l/";
  deep += "end";  // 21 levels, over max_topic_levels
  for (const std::string& topic :
       {std::string("a/+/b"), std::string("a/#"), std::string(), std::string(300, 'a'), deep}) {
    auto answer = h.request(dev, ops::publish(topic, "x", true));
    REQUIRE(answer.has_error());
    CHECK(answer.error().code() == v1::ERROR_INVALID_TOPIC);
  }
  CHECK(h.status().topics() == topics);
}

TEST_CASE("publish: a payload over max_message_bytes is refused TOO_LARGE and counted",
          "[inproc][publish]") {
  Harness h(with_config([](broker::Config& c) { c.max_message_bytes = 1000; }));
  auto dev = h.open("dev");
  CHECK(h.request(dev, ops::publish("a/b", std::string(1000, 'x'), true)).has_puback());
  auto answer = h.request(dev, ops::publish("a/b", std::string(1001, 'x'), true));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_TOO_LARGE);
  CHECK(h.status().counters().oversized() == 1);
}

TEST_CASE(
    "publish: the retained value goes to later subscribers that ask for it, and an empty "
    "retained payload clears it",
    "[inproc][publish]") {
  Harness h;
  auto dev = h.open("dev");
  h.send(dev, ops::publish("robot/alex/status", "first", false, true));
  h.send(dev, ops::publish("robot/alex/status", "second", false, true));
  auto late = h.open("dev");
  REQUIRE(h.request(late, ops::subscribe({"robot/+/status"}, true)).has_suback());
  auto got = deliveries(h.take(late));
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload() == "second");
  CHECK(got[0].retained());
  CHECK(got[0].seq() == 2);

  auto without = h.open("dev");
  h.request(without, ops::subscribe({"robot/+/status"}, false));
  CHECK(deliveries(h.take(without)).empty());

  h.send(dev, ops::publish("robot/alex/status", "", false, true));  // clears it
  auto later = h.open("dev");
  h.request(later, ops::subscribe({"robot/+/status"}, true));
  CHECK(deliveries(h.take(later)).empty());
}

TEST_CASE(
    "publish: past the name's publish rate, publications are refused and one RATE_LIMITED "
    "reports how many",
    "[inproc][publish]") {
  Harness h(with_config([](broker::Config& c) {
    c.publish_rate = 10;
    c.publish_burst = 10;
  }));
  auto sub = h.open("dev");
  auto alex = h.open("alex");
  h.request(sub, ops::subscribe({"robot/#"}));
  std::vector<v1::Op> frame;
  for (int i = 0; i < 30; ++i) frame.push_back(ops::publish("robot/alex/t", std::to_string(i)));
  h.send(alex, frame);
  CHECK(deliveries(h.take(sub)).size() == 10);
  auto got = h.take(alex);
  const v1::Error* e = find_error(got, v1::ERROR_RATE_LIMITED);
  REQUIRE(e != nullptr);
  CHECK(e->count() + 0 <= 20);
  h.advance(200ms);  // the rest of the count is owed within ~100 ms
  std::uint64_t refused = e->count();
  for (const auto& op : h.take(alex))
    if (op.has_error() && op.error().code() == v1::ERROR_RATE_LIMITED)
      refused += op.error().count();
  CHECK(refused == 20);
  CHECK(h.status().counters().rate_limited() == 20);
  h.advance(1000ms);  // the bucket refills
  CHECK(h.request(alex, ops::publish("robot/alex/t", "later", true)).has_puback());
}

TEST_CASE(
    "publish: deliveries to a subscriber that does not read stop at its queue bound and are "
    "counted as dropped, in PUBACK and in the counters",
    "[inproc][publish]") {
  Harness h(with_config([](broker::Config& c) { c.queue_limit = 50; }));
  auto slow = h.open("dev");
  auto fast = h.open("dev");
  auto pub = h.open("dev");
  h.request(slow, ops::subscribe({"feed"}));
  h.request(fast, ops::subscribe({"feed"}));
  h.set_blocked(slow, true);  // its pipe is full: nothing leaves
  std::uint32_t delivered = 0, dropped = 0;
  for (int i = 0; i < 80; ++i) {
    auto ack = h.request(pub, ops::publish("feed", std::to_string(i), true));
    REQUIRE(ack.has_puback());
    delivered += ack.puback().delivered();
    dropped += ack.puback().dropped();
  }
  CHECK(dropped == 30);
  CHECK(delivered == 80 + 50);
  CHECK(deliveries(h.take(fast)).size() == 80);
  CHECK(h.status().counters().dropped() == 30);
  h.set_blocked(slow, false);
  h.turn();
  const auto got = deliveries(h.take(slow));
  REQUIRE(got.size() == 50);
  CHECK(got.front().payload() == "0");  // the oldest are kept, in order
  CHECK(got.back().payload() == "49");
}

TEST_CASE("publish: routing never waits for a retained-value sync that takes seconds",
          "[inproc][publish][retained]") {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> syncs{0};
  Harness::Options o;
  o.persist_retained = true;
  o.config.retained_sync_ms = 10;
  o.retained_sync = [&](int fd) {
    ++syncs;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 10s, [&] { return released; });  // a disk that takes seconds
    return ::fsync(fd);
  };
  Harness h(std::move(o));
  auto sub = h.open("dev");
  auto pub = h.open("dev");
  h.request(sub, ops::subscribe({"fleet/#"}));
  // The first retained value starts the writer, which then sits in a sync.
  h.send(pub, ops::publish("fleet/r0/status", "up", false, true));
  const auto wait_until = std::chrono::steady_clock::now() + 10s;
  while (syncs == 0 && std::chrono::steady_clock::now() < wait_until)
    std::this_thread::sleep_for(1ms);
  REQUIRE(syncs >= 1);

  using Clock = std::chrono::steady_clock;
  Clock::duration worst{};
  const auto t0 = Clock::now();
  for (int i = 1; i <= 2000; ++i) {
    const auto start = Clock::now();
    h.send(pub, ops::publish("fleet/r" + std::to_string(i % 100) + "/status",
                             "v" + std::to_string(i), false, i % 2 == 0));
    worst = std::max(worst, Clock::now() - start);
  }
  const auto elapsed = Clock::now() - t0;
  CHECK(deliveries(h.take(sub)).size() == 2001);
  {
    std::lock_guard<std::mutex> lock(mu);
    CHECK_FALSE(released);  // the sync was still going on all that time
    released = true;
  }
  cv.notify_all();
  const double elapsed_s = std::chrono::duration<double>(elapsed).count();
  const double worst_ms = std::chrono::duration<double>(worst).count() * 1000;
  INFO("2000 publications took " << elapsed_s << " s, the slowest " << worst_ms << " ms");
  CHECK(worst < 200ms);
  CHECK(elapsed < 5s);
}
