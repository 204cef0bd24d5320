// The delivery guarantees of docs/guarantees.md, proved against the real
// broker: what an acked publication promises, what a reconnecting subscriber
// sees (sequence gaps) and how it repairs them with pull.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>

#include "curvebus/client.hpp"
#include "fixture.hpp"
#include "inbox.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {
struct GEnv {
  TempDir dir{"guarantees"};
  BrokerHarness broker{CURVEBUS_BROKER_BIN, dir.path()};
  bool started = false;
  explicit GEnv(std::vector<std::string> args = {}) {
    broker.add_client({"pub", {"data/#"}, {"data/#"}, true});
    broker.add_client({"sub", {}, {"data/#"}});
    started = broker.start(args);
  }
  ClientOptions options(const std::string& name) {
    ClientOptions o;
    o.endpoint = broker.endpoint();
    o.server_public_key = broker.server_public_key();
    o.public_key = broker.keys_of(name).public_key;
    o.secret_key = broker.keys_of(name).secret_key;
    o.heartbeat = 100ms;
    return o;
  }
};

// The seqs a subscription got, in arrival order (an Inbox underneath: its
// handler stays safe after a Seqs declared below its client is gone).
struct Seqs {
  Inbox inbox;
  MessageHandler handler() const { return inbox.handler(); }
  bool wait(std::size_t n) const { return inbox.wait_count(n, 5s); }
  std::vector<std::uint64_t> seqs() const {
    std::vector<std::uint64_t> out;
    for (const auto& m : inbox.snapshot()) out.push_back(m.seq);
    return out;
  }
};
}  // namespace

TEST_CASE("guarantee: an acked publication reaches every live subscriber, in order, without gaps",
          "[guarantees]") {
  GEnv env;
  REQUIRE(env.started);
  Client a(env.options("sub")), b(env.options("sub")), pub(env.options("pub"));
  REQUIRE(a.connect(3s));
  REQUIRE(b.connect(3s));
  REQUIRE(pub.connect(3s));
  Seqs sa, sb;
  REQUIRE(a.subscribe({"data/#"}, sa.handler()));
  REQUIRE(b.subscribe({"data/x"}, sb.handler()));
  PublishOptions ack;
  ack.wait_ack = true;
  for (int i = 0; i < 100; ++i) REQUIRE(pub.publish("data/x", std::to_string(i), ack));
  REQUIRE(sa.wait(100));
  REQUIRE(sb.wait(100));
  // In order, without gaps, per topic.
  for (std::size_t i = 0; i < 100; ++i) {
    CHECK(sa.seqs()[i] == i + 1);
    CHECK(sb.seqs()[i] == i + 1);
  }
  CHECK(a.counters().sequence_gaps == 0);
}

TEST_CASE("guarantee: a subscriber that was away sees the gap in seq and repairs it with pull",
          "[guarantees]") {
  GEnv env;
  REQUIRE(env.started);
  Client pub(env.options("pub"));
  REQUIRE(pub.connect(3s));
  PublishOptions ack;
  ack.wait_ack = true;
  std::uint64_t last_seen = 0;
  {
    Client sub(env.options("sub"));
    REQUIRE(sub.connect(3s));
    Seqs s;
    REQUIRE(sub.subscribe({"data/temp"}, s.handler()));
    for (int i = 0; i < 5; ++i) REQUIRE(pub.publish("data/temp", "t" + std::to_string(i), ack));
    REQUIRE(s.wait(5));
    last_seen = s.seqs().back();
  }
  CHECK(last_seen == 5);
  // Published while nobody listened.
  for (int i = 5; i < 15; ++i) REQUIRE(pub.publish("data/temp", "t" + std::to_string(i), ack));
  Client sub(env.options("sub"));
  REQUIRE(sub.connect(3s));
  Seqs s;
  REQUIRE(sub.subscribe({"data/temp"}, s.handler()));
  REQUIRE(pub.publish("data/temp", "t15", ack));
  REQUIRE(s.wait(1));
  CHECK(s.seqs()[0] == 16);  // the gap: 6..15 were missed
  auto repair = sub.pull("data/temp", last_seen);
  REQUIRE(repair);
  REQUIRE(repair->size() == 11);  // 6..16, oldest first
  CHECK(repair->front().seq == 6);
  CHECK(repair->front().payload == "t5");
  CHECK(repair->back().seq == 16);
}

TEST_CASE("guarantee: history is bounded, and pull says where it starts", "[guarantees]") {
  GEnv env({"--history-depth", "8"});
  REQUIRE(env.started);
  Client pub(env.options("pub"));
  REQUIRE(pub.connect(3s));
  PublishOptions ack;
  ack.wait_ack = true;
  for (int i = 0; i < 20; ++i) REQUIRE(pub.publish("data/log", std::to_string(i), ack));
  auto kept = pub.pull("data/log", 1);
  REQUIRE(kept);
  REQUIRE(kept->size() == 8);
  CHECK(kept->front().seq ==
        13);  // 13..20 kept: a client repairing from seq 1 knows 2..12 are gone
  CHECK(kept->back().seq == 20);
}
