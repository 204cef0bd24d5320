// The client library's streaming guarantees against a real broker process:
// at full speed nothing is lost, duplicated or reordered between
// Client::publish and the subscribers' handlers; the handlers follow
// subscribe/unsubscribe at once; what is published while the broker is away
// goes out, in order, when it is back.
#include <signal.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/client.hpp"
#include "fixture.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

// The broker's per-subscriber bound (queue-limit) is its policy for a
// subscriber that falls behind: it drops, counted.  Here it is raised to hold
// a whole run, so that what is measured is the client library alone.
const std::vector<std::string> kRoomyBroker = {
    "--publish-rate", "0", "--queue-limit", "1000000", "--queue-limit-bytes", "2000000000"};

struct StreamEnv {
  TempDir dir{"clientstream"};
  BrokerHarness broker{CURVEBUS_BROKER_BIN, dir.path()};
  bool started = false;
  explicit StreamEnv(const std::vector<std::string>& args = kRoomyBroker) {
    broker.add_client({"alice", {"load/#", "s/#"}, {"load/#", "s/#"}, true});
    broker.add_client({"bob", {}, {"load/#", "s/#"}});
    broker.default_args = {"--heartbeat-ms", "1000", "--log-level", "info"};
    started = broker.start(args);
  }
  ClientOptions options(const std::string& name) {
    ClientOptions o;
    o.endpoint = broker.endpoint();
    o.server_public_key = broker.server_public_key();
    o.public_key = broker.keys_of(name).public_key;
    o.secret_key = broker.keys_of(name).secret_key;
    o.heartbeat = 1000ms;
    o.reconnect_min = 50ms;
    o.reconnect_max = 400ms;
    return o;
  }
};

// What one subscriber saw: counts and the first departure from seq order.
struct SeqCheck {
  std::atomic<std::uint64_t> received{0};
  std::uint64_t expected_seq = 1;
  std::uint64_t out_of_order = 0;
  std::string bad_payload;
  std::size_t size = 0;
  MessageHandler handler() {
    return [this](const Message& m) {
      if (m.seq != expected_seq) ++out_of_order;
      expected_seq = m.seq + 1;
      if (m.payload.size() != size && bad_payload.empty()) bad_payload = m.payload;
      received.fetch_add(1, std::memory_order_release);
    };
  }
};

std::uint64_t broker_dropped(Client& admin) {
  auto r = admin.admin(v1::ADMIN_STATUS);
  REQUIRE(r);
  return r->status().counters().dropped();
}

void run_full_speed(std::size_t subscribers, std::size_t size, std::size_t n) {
  StreamEnv env;
  REQUIRE(env.started);
  // The checks outlive the clients whose I/O threads call them.
  std::vector<std::unique_ptr<SeqCheck>> checks;
  std::vector<std::unique_ptr<Client>> subs;
  for (std::size_t i = 0; i < subscribers; ++i) {
    subs.push_back(std::make_unique<Client>(env.options("bob")));
    REQUIRE(subs.back()->connect(5000ms));
    checks.push_back(std::make_unique<SeqCheck>());
    checks.back()->size = size;
    REQUIRE(subs.back()->subscribe({"load/stream"}, checks.back()->handler()));
  }
  Client pub(env.options("alice"));
  REQUIRE(pub.connect(5000ms));
  const std::string payload(size, 'p');
  for (std::size_t i = 0; i < n; ++i) REQUIRE(pub.publish("load/stream", payload));
  // Liveness, not speed: wait while deliveries keep coming (a sanitizer build
  // on a loaded machine moves well under 1 MB/s), at most 30 s without one.
  bool all = false;
  std::size_t seen = 0;
  while (!all) {
    all = wait_until(
        [&] {
          for (const auto& c : checks)
            if (c->received.load(std::memory_order_acquire) < n) return false;
          return true;
        },
        30000ms, 10ms);
    std::size_t now_seen = 0;
    for (const auto& c : checks) now_seen += c->received.load(std::memory_order_acquire);
    if (now_seen == seen) break;
    seen = now_seen;
  }
  // What the publisher and the broker saw, for a failure's message.
  const ClientCounters pc0 = pub.counters();
  INFO("publisher: published " << pc0.published << " frames_sent " << pc0.frames_sent
                               << " reconnects " << pc0.reconnects << " errors " << pc0.errors
                               << " queue_full " << pc0.queue_full << " state "
                               << static_cast<int>(pub.state()));
  std::ostringstream broker_line;
  if (auto st = pub.admin(v1::ADMIN_STATUS)) {
    const auto& bc = st->status().counters();
    broker_line << "broker: publications " << bc.publications() << " deliveries " << bc.deliveries()
                << " dropped " << bc.dropped() << " budget_refused " << bc.budget_refused()
                << " sessions_timed_out " << bc.sessions_timed_out();
  }
  INFO(broker_line.str());
  for (std::size_t i = 0; i < subscribers; ++i) {
    INFO("subscriber " << i << ": reconnects " << subs[i]->counters().reconnects << " errors "
                       << subs[i]->counters().errors);
    CHECK(checks[i]->received.load() == n);
    CHECK(checks[i]->out_of_order == 0);
    CHECK(checks[i]->expected_seq == n + 1);
    CHECK(checks[i]->bad_payload.empty());
    CHECK(subs[i]->counters().sequence_gaps == 0);
    CHECK(subs[i]->counters().delivered == n);
  }
  REQUIRE(all);
  // Nothing arrives twice: the counts stay put.
  std::this_thread::sleep_for(200ms);
  for (const auto& c : checks) CHECK(c->received.load() == n);
  const ClientCounters pc = pub.counters();
  CHECK(pc.published == n);
  CHECK(pc.queue_full == 0);
  CHECK(pc.errors == 0);
  CHECK(pc.frames_sent < n);  // batched
  CHECK(broker_dropped(pub) == 0);
}

}  // namespace

TEST_CASE(
    "client: at full speed 1 -> 1, every publication reaches the handler once, in seq "
    "order, none dropped",
    "[client][stream]") {
  const std::size_t size = GENERATE(64u, 1024u);
  INFO("payload " << size << " B");
  run_full_speed(1, size, size == 64 ? 200000 : 50000);
}

TEST_CASE(
    "client: at full speed 1 -> 4, every subscriber gets every publication once, in seq "
    "order, none dropped",
    "[client][stream]") {
  const std::size_t size = GENERATE(64u, 1024u);
  INFO("payload " << size << " B");
  run_full_speed(4, size, size == 64 ? 100000 : 25000);
}

TEST_CASE("client: handlers follow subscribe and unsubscribe from the next delivery on",
          "[client][stream]") {
  StreamEnv env;
  REQUIRE(env.started);
  std::mutex mu;  // before the clients: their handlers use it
  std::vector<std::string> seen;
  Client sub(env.options("bob")), pub(env.options("alice"));
  REQUIRE(sub.connect(5000ms));
  REQUIRE(pub.connect(5000ms));
  auto tagged = [&](const std::string& tag) {
    return [&, tag](const Message& m) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(tag + ":" + m.payload);
    };
  };
  auto seen_now = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  };
  PublishOptions ack;
  ack.wait_ack = true;
  REQUIRE(sub.subscribe({"s/#"}, tagged("all")));
  REQUIRE(pub.publish("s/x", "1", ack));
  REQUIRE(wait_until([&] { return seen_now().size() == 1; }, 5000ms));
  // A second handler on the same topic: the topic's cached handler list
  // must grow.
  REQUIRE(sub.subscribe({"s/x"}, tagged("x")));
  REQUIRE(pub.publish("s/x", "2", ack));
  REQUIRE(wait_until([&] { return seen_now().size() == 3; }, 5000ms));
  // ...and shrink.
  REQUIRE(sub.unsubscribe({"s/#"}));
  REQUIRE(pub.publish("s/x", "3", ack));
  REQUIRE(wait_until([&] { return seen_now().size() == 4; }, 5000ms));
  std::this_thread::sleep_for(200ms);
  CHECK(seen_now() == std::vector<std::string>{"all:1", "all:2", "x:2", "x:3"});
}

TEST_CASE("client: publications made while the broker is down go out, in order, once it is back",
          "[client][stream]") {
  StreamEnv env;
  REQUIRE(env.started);
  Client pub(env.options("alice"));
  REQUIRE(pub.connect(5000ms));
  env.broker.kill(SIGKILL);
  REQUIRE(wait_until([&] { return pub.state() == ConnectionState::Reconnecting; }, 10000ms));
  for (int i = 1; i <= 6; ++i) REQUIRE(pub.publish("s/queued", "v" + std::to_string(i)));
  REQUIRE(env.broker.restart(kRoomyBroker));
  REQUIRE(wait_until([&] { return pub.state() == ConnectionState::Connected; }, 10000ms));
  // seq 1 is v1; history after seq 1 is v2..v6, in order.
  Result<std::vector<Message>> history = Status::Error("not yet");
  REQUIRE(wait_until(
      [&] {
        history = pub.pull("s/queued", 1);
        return history && history->size() == 5;
      },
      5000ms, 50ms));
  for (int i = 0; i < 5; ++i) {
    CHECK(history->at(static_cast<std::size_t>(i)).payload == "v" + std::to_string(i + 2));
    CHECK(history->at(static_cast<std::size_t>(i)).seq == static_cast<std::uint64_t>(i + 2));
  }
  CHECK(pub.counters().reconnects >= 1);
}
