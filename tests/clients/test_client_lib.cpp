// The C++ client library against a real broker process on 127.0.0.1.
#include <signal.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "curvebus/client.hpp"
#include "fixture.hpp"
#include "inbox.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

struct Env {
  TempDir dir{"clientlib"};
  BrokerHarness broker{CURVEBUS_BROKER_BIN, dir.path()};
  bool started = false;
  Env() {
    broker.add_client({"alice", {"sensors/#", "cmd/#"}, {"sensors/#", "cmd/#"}, true});
    broker.add_client({"bob", {"sensors/#"}, {"sensors/#"}});
    broker.add_client({"eve", {}, {"public/#"}});
    started = broker.start();
  }
  ClientOptions options(const std::string& name) {
    ClientOptions o;
    o.endpoint = broker.endpoint();
    o.server_public_key = broker.server_public_key();
    o.public_key = broker.keys_of(name).public_key;
    o.secret_key = broker.keys_of(name).secret_key;
    o.heartbeat = 100ms;
    o.reconnect_min = 50ms;
    o.reconnect_max = 400ms;
    return o;
  }
};

}  // namespace

TEST_CASE("client: publish with ack reaches wildcard subscribers with publisher and seq",
          "[client]") {
  Env env;
  REQUIRE(env.started);
  Client sub(env.options("bob")), pub(env.options("alice"));
  REQUIRE(sub.connect(3000ms));
  REQUIRE(pub.connect(3000ms));
  CHECK(sub.state() == ConnectionState::Connected);
  CHECK(sub.registration().name() == "bob");
  Inbox a, b;
  REQUIRE(sub.subscribe({"sensors/+/temp"}, a.handler()));
  REQUIRE(sub.subscribe({"sensors/#"}, b.handler()));
  PublishOptions ack;
  ack.wait_ack = true;
  REQUIRE(pub.publish("sensors/kitchen/temp", "21.5", ack));
  REQUIRE(pub.publish("sensors/kitchen/humidity", "40", ack));
  REQUIRE(a.wait_count(1));
  REQUIRE(b.wait_count(2));
  std::this_thread::sleep_for(100ms);
  CHECK(a.topics() == std::vector<std::string>{"sensors/kitchen/temp"});
  CHECK(b.topics() == std::vector<std::string>{"sensors/kitchen/temp", "sensors/kitchen/humidity"});
  CHECK(a.snapshot()[0].publisher == "alice");
  CHECK(a.snapshot()[0].payload == "21.5");
  CHECK(a.snapshot()[0].seq == 1);
}

TEST_CASE("client: denials are explicit errors", "[client]") {
  Env env;
  REQUIRE(env.started);
  Client eve(env.options("eve"));
  REQUIRE(eve.connect(3000ms));
  PublishOptions ack;
  ack.wait_ack = true;
  Status s = eve.publish("sensors/kitchen/temp", "x", ack);
  CHECK(s.code() == "DENIED");
  Inbox in;
  s = eve.subscribe({"public/#", "sensors/#"}, in.handler());
  CHECK(s.code() == "DENIED");
  CHECK(s.message().find("sensors/#") != std::string::npos);
  s = eve.publish("bad/+/topic", "x", ack);
  CHECK_FALSE(s.ok());
  CHECK(s.code() != "TIMEOUT");
}

TEST_CASE("client: pull of latest and of history", "[client]") {
  Env env;
  REQUIRE(env.started);
  Client c(env.options("alice"));
  REQUIRE(c.connect(3000ms));
  PublishOptions ack;
  ack.wait_ack = true;
  for (int i = 1; i <= 5; ++i) REQUIRE(c.publish("sensors/door", "v" + std::to_string(i), ack));
  auto latest = c.pull("sensors/door");
  REQUIRE(latest);
  REQUIRE(latest->size() == 1);
  CHECK(latest->at(0).payload == "v5");
  auto since = c.pull("sensors/door", 2);
  REQUIRE(since);
  REQUIRE(since->size() == 3);
  CHECK(since->at(0).seq == 3);
  CHECK(c.pull("sensors/never").status().code() == "NOT_FOUND");
}

TEST_CASE("client: an unknown key is refused at connect", "[client]") {
  Env env;
  REQUIRE(env.started);
  ClientOptions o = env.options("alice");
  const KeyPair stranger = env.broker.stranger("mallory");
  o.public_key = stranger.public_key;
  o.secret_key = stranger.secret_key;
  Client c(o);
  Status s = c.connect(3000ms);
  CHECK_FALSE(s.ok());
  CHECK((s.code() == "REFUSED" || s.code() == "NO_BROKER"));
}

TEST_CASE("client: no broker is a clear NO_BROKER", "[client]") {
  Env env;
  REQUIRE(env.started);
  env.broker.stop();
  Client c(env.options("alice"));
  Status s = c.connect(1000ms);
  CHECK(s.code() == "NO_BROKER");
  CHECK(s.message().find(env.broker.endpoint()) != std::string::npos);
}

TEST_CASE("client: a dead broker is detected and a restarted one is rejoined with subscriptions",
          "[client]") {
  Env env;
  REQUIRE(env.started);
  Client sub(env.options("bob"));
  REQUIRE(sub.connect(3000ms));
  Inbox in;
  REQUIRE(sub.subscribe({"sensors/#"}, in.handler()));
  env.broker.kill(SIGKILL);
  env.broker.process().wait(3000ms);
  // Silence past three heartbeats (100 ms here): no longer connected.
  CHECK(wait_until([&] { return sub.state() != ConnectionState::Connected; }, 5000ms));
  REQUIRE(env.broker.restart());
  CHECK(wait_until([&] { return sub.state() == ConnectionState::Connected; }, 10000ms));
  Client pub(env.options("alice"));
  REQUIRE(pub.connect(3000ms));
  // The re-subscription travels right after the re-registration; publish
  // until it lands.
  PublishOptions ack;
  ack.wait_ack = true;
  CHECK(wait_until(
      [&] {
        pub.publish("sensors/after-restart", "hello again", ack);
        return in.wait_count(1, 200ms);
      },
      10000ms));
  CHECK(sub.counters().reconnects >= 1);
}

TEST_CASE("client: a handler may publish without waiting", "[client]") {
  Env env;
  REQUIRE(env.started);
  Client echo(env.options("alice")), watcher(env.options("bob"));
  REQUIRE(echo.connect(3000ms));
  REQUIRE(watcher.connect(3000ms));
  REQUIRE(echo.subscribe({"cmd/ping"},
                         [&](const Message& m) { echo.publish("sensors/pong", m.payload); }));
  Inbox in;
  REQUIRE(watcher.subscribe({"sensors/pong"}, in.handler()));
  PublishOptions ack;
  ack.wait_ack = true;
  for (int i = 0; i < 20; ++i) REQUIRE(echo.publish("cmd/ping", std::to_string(i), ack));
  REQUIRE(in.wait_count(20));
  CHECK(in.snapshot().back().payload == "19");
}

TEST_CASE("client: publications without ack keep their order", "[client]") {
  Env env;
  REQUIRE(env.started);
  Client pub(env.options("alice")), sub(env.options("bob"));
  REQUIRE(pub.connect(3000ms));
  REQUIRE(sub.connect(3000ms));
  Inbox in;
  REQUIRE(sub.subscribe({"sensors/seq"}, in.handler()));
  const int n = 2000;
  for (int i = 0; i < n; ++i) REQUIRE(pub.publish("sensors/seq", std::to_string(i)));
  REQUIRE(in.wait_count(n, 10000ms));
  for (int i = 0; i < n; ++i)
    CHECK(in.snapshot()[static_cast<std::size_t>(i)].payload == std::to_string(i));
  CHECK(sub.counters().sequence_gaps == 0);
}

TEST_CASE("client: payloads over the broker's limit are refused before sending", "[client]") {
  Env env;
  env.broker.stop();
  REQUIRE(env.broker.restart({"--max-message-bytes", "1000"}));
  Client c(env.options("alice"));
  REQUIRE(c.connect(3000ms));
  PublishOptions ack;
  ack.wait_ack = true;
  CHECK(c.publish("sensors/big", std::string(2000, 'x'), ack).code() == "TOO_LARGE");
  CHECK(c.publish("sensors/small", std::string(100, 'x'), ack));
}

TEST_CASE(
    "client: an old connection is replaced by a fresh CURVE session without losing subscriptions",
    "[client]") {
  Env env;
  REQUIRE(env.started);
  ClientOptions o = env.options("bob");
  o.rekey_after = std::chrono::seconds(1);
  Client sub(o);
  REQUIRE(sub.connect(3000ms));
  const std::string first_session = sub.registration().session_id();
  Inbox in;
  REQUIRE(sub.subscribe({"sensors/#"}, in.handler()));
  Client pub(env.options("alice"));
  REQUIRE(pub.connect(3000ms));
  // Past the rekey age the client registers a new session, then says BYE on the old one.
  REQUIRE(wait_until([&] { return sub.registration().session_id() != first_session; }, 5000ms));
  PublishOptions ack;
  ack.wait_ack = true;
  CHECK(wait_until(
      [&] {
        pub.publish("sensors/after-rekey", "x", ack);
        return in.wait_count(1, 200ms);
      },
      5000ms));
  CHECK(sub.state() == ConnectionState::Connected);
  // The broker sees one live session of bob, not two.
  // (The overlap of old and new lasts one round trip: poll past it.)
  CHECK(wait_until(
      [&] {
        auto clients = pub.admin(v1::ADMIN_CLIENTS);
        int bobs = 0;
        if (clients)
          for (const auto& c : clients->clients())
            if (c.name() == "bob") ++bobs;
        return bobs == 1;
      },
      3000ms, 50ms));
}
