// Fault injection against the real broker process on 127.0.0.1: subscribers
// flapping by the thousand, a storm of unknown-key and plaintext peers next to
// a legitimate flow, and hostile input the integration tests do not cover.
// Timing never decides an outcome; the bounds below are generous liveness
// bounds only.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "broker_env.hpp"
#include "proc_stats.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

std::vector<v1::ClientInfo> clients(TestPeer& admin) {
  auto r = admin.admin(v1::ADMIN_CLIENTS);
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  return {r->admin_reply().clients().begin(), r->admin_reply().clients().end()};
}

std::multiset<std::string> client_names(TestPeer& admin) {
  std::multiset<std::string> names;
  for (const auto& c : clients(admin)) names.insert(c.name());
  return names;
}

// Keeps publishing fire-and-forget on `topic` from its own connection until
// stopped; drains what the broker sends it (heartbeats, pings).
class Publisher {
 public:
  Publisher(BrokerEnv& env, const std::string& name, std::string topic)
      : peer_(env.registered(name)), topic_(std::move(topic)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        peer_->publish_nowait(topic_, std::to_string(++sent_));
        // About 1,000 publications a second; reading also answers PINGs.
        peer_->wait_for([](const v1::Op&) { return false; }, 1ms);
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  ~Publisher() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t sent() const { return sent_; }

 private:
  std::unique_ptr<TestPeer> peer_;
  std::string topic_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
  std::thread thread_;
};

// A frame holding one op whose bytes are `op_bytes` (Frame.ops = field 1).
std::string frame_of(const std::string& op_bytes) {
  std::string out(1, '\x0a');
  std::uint64_t n = op_bytes.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  return out + op_bytes;
}

// Length-delimited field `number` holding `bytes`.
std::string field(int number, const std::string& bytes) {
  std::string out;
  std::uint64_t tag = (static_cast<std::uint64_t>(number) << 3) | 2;
  while (tag >= 0x80) {
    out.push_back(static_cast<char>((tag & 0x7f) | 0x80));
    tag >>= 7;
  }
  out.push_back(static_cast<char>(tag));
  std::uint64_t n = bytes.size();
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
  return out + bytes;
}

// Unknown fields: number 1000 as a varint, number 1001 as bytes.
const std::string kUnknown = std::string("\xc0\x3e\x2a", 3) + std::string("\xca\x3e\x03xyz", 6);

}  // namespace

TEST_CASE(
    "1000 subscribers flapping while a publisher publishes: no stale session, bounded "
    "RSS and FDs",
    "[faults]") {
  // One name reconnecting 1000 times as fast as it can: lift the per-key
  // handshake rate and the per-name session cap that would (rightly) stop it.
  BrokerEnv env(standard_clients(), {"--handshake-rate", "0", "--max-sessions-per-name", "2000"});
  REQUIRE(env.started);
  const pid_t broker = env.broker.process().pid();
  auto admin = env.registered("admin", 60000);
  Publisher publisher(env, "pub", "sensors/load");

  auto cycle = [&](int i) {
    auto peer = env.connect("sub");
    auto reg = peer->register_peer(v1::ROLE_CLIENT, 0, 10s);
    REQUIRE(reg);
    REQUIRE(reg->has_registered());
    auto ack = peer->subscribe({"sensors/#"});
    REQUIRE(ack);
    REQUIRE(ack->has_suback());
    if (i % 10 == 0) REQUIRE(peer->wait_deliver("sensors/load", 5000ms));
    if (i % 2 == 0) peer->bye("flap");
    // Otherwise abrupt: the socket closes with linger 0 and no BYE.
  };
  // Warm-up, so the baseline includes the allocator's steady state.
  for (int i = 0; i < 50; ++i) cycle(i);
  REQUIRE(wait_until([&] { return client_names(*admin).count("sub") == 0; }, 10000ms));
  const long rss0 = rss_kb(broker), fd0 = fd_count(broker);
  for (int i = 50; i < 1050; ++i) cycle(i);

  // Every flapped session is gone (BYE at once, abrupt ones by connection
  // loss or the 3-interval timeout): only admin and the publisher are live.
  CHECK(wait_until(
      [&] {
        return client_names(*admin) == std::multiset<std::string>{"admin", "pub"};
      },
      10000ms));
  CHECK(wait_until([&] { return fd_count(broker) <= fd0 + 5; }, 10000ms));
  const long rss1 = rss_kb(broker), fd1 = fd_count(broker);
  std::printf("flapping: broker RSS %ld -> %ld kB, FDs %ld -> %ld, %llu published\n", rss0, rss1,
              fd0, fd1, static_cast<unsigned long long>(publisher.sent()));
  // Stated bounds: RSS grows less than 20 MB over 1,000 cycles; FDs back to
  // the baseline within 5.
  if (kRssMeaningful) CHECK(rss1 - rss0 < kRssGrowthBoundKb);
  CHECK(fd1 <= fd0 + 5);
  const auto counters = env.counters(*admin);
  CHECK(counters.sessions_opened() >= 1050 + 2);

  // A fresh subscriber is still served.
  auto fresh = env.registered("sub");
  REQUIRE(fresh->subscribe({"sensors/#"}));
  CHECK(fresh->wait_deliver("sensors/load", 5000ms));
  publisher.stop();
  fresh.reset();
  CHECK(env.broker.process().running());
  // A clean exit (under the sanitizers: no leak reported at exit either).
  CHECK(env.broker.stop() == 0);
}

TEST_CASE(
    "a storm of unknown-key and plaintext peers gets nothing while a legitimate flow "
    "delivers everything",
    "[faults]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin", 60000);
  auto sub = env.registered("sub", 60000);
  REQUIRE(sub->subscribe({"sensors/#"}));
  auto pub = env.registered("pub", 60000);
  const auto before = env.counters(*admin);

  // 300 attempts from 3 threads: unknown CURVE keys (fresh each time),
  // plaintext ZeroMQ peers, and raw TCP garbage (not even ZMTP).  Each sends
  // garbage and a REGISTER and listens for anything coming back.
  const std::string endpoint = env.broker.endpoint();
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  std::atomic<int> curve_attempts{0}, plain_attempts{0}, tcp_attempts{0}, got_through{0};
  std::atomic<bool> storming{true};
  auto storm = [&](int thread) {
    std::mt19937 rng(static_cast<unsigned>(thread));
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 100; ++i) {
      std::string junk(64, '\0');
      for (auto& c : junk) c = static_cast<char>(byte(rng));
      v1::Op reg;
      reg.mutable_register_()->set_request_id(1);
      const int kind = (i + thread) % 3;
      if (kind == 2) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          (void)!::write(fd, junk.data(), junk.size());
          ++tcp_attempts;
        }
        ::close(fd);
        std::this_thread::sleep_for(10ms);
        continue;
      }
      std::unique_ptr<TestPeer> peer;
      if (kind == 0) {
        peer = std::make_unique<TestPeer>(env.ctx, endpoint, env.broker.server_public_key(),
                                          generate_keypair());
        ++curve_attempts;
      } else {
        peer = std::make_unique<TestPeer>(env.ctx, endpoint);
        ++plain_attempts;
      }
      peer->send_raw(junk);
      peer->send(reg);
      if (peer->recv(30ms)) ++got_through;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back(storm, t);

  // The legitimate flow, fire-and-forget, for as long as the storm lasts
  // (and at least 500 publications), read as it goes.
  std::thread watcher([&] {
    for (auto& t : threads) t.join();
    storming = false;
  });
  std::uint64_t published = 0, received = 0, expected_seq = 1;
  bool in_order = true;
  while (storming || published < 500) {
    pub->publish_nowait("sensors/flow", std::to_string(++published));
    while (auto op = sub->wait_for(v1::Op::kDeliver, 1ms)) {
      if (op->deliver().topic() != "sensors/flow") continue;
      in_order = in_order && op->deliver().seq() == expected_seq++;
      ++received;
    }
    std::this_thread::sleep_for(2ms);
  }
  watcher.join();
  while (received < published) {
    auto d = sub->wait_deliver("sensors/flow", 5000ms);
    if (!d) break;
    in_order = in_order && d->seq() == expected_seq++;
    ++received;
  }
  std::printf("storm: %d unknown-key, %d plaintext, %d raw TCP attempts; flow %llu/%llu\n",
              curve_attempts.load(), plain_attempts.load(), tcp_attempts.load(),
              static_cast<unsigned long long>(received),
              static_cast<unsigned long long>(published));
  CHECK(received == published);
  CHECK(in_order);
  CHECK(got_through == 0);
  CHECK(curve_attempts + plain_attempts + tcp_attempts == 300);

  // Nobody from the storm holds a session; the broker counted the attempts.
  CHECK(client_names(*admin) == std::multiset<std::string>{"admin", "pub", "sub"});
  v1::Counters after;
  CHECK(wait_until(
      [&] {
        after = env.counters(*admin);
        // Generous: most attempts finish their handshake before they hang up.
        // Raw TCP garbage is not required to count: libzmq drops a
        // connection whose greeting is not ZMTP without a handshake event,
        // so the broker's monitor sees only accept + disconnect for it.
        return after.auth_denied() - before.auth_denied() >=
                   static_cast<std::uint64_t>(curve_attempts / 2) &&
               after.handshake_failures() - before.handshake_failures() >=
                   static_cast<std::uint64_t>((curve_attempts + plain_attempts) / 2);
      },
      10000ms));
  std::printf(
      "storm: auth_denied +%llu, handshake_failures +%llu\n",
      static_cast<unsigned long long>(after.auth_denied() - before.auth_denied()),
      static_cast<unsigned long long>(after.handshake_failures() - before.handshake_failures()));
  CHECK(after.sessions_opened() == before.sessions_opened());  // no session from the storm
  CHECK(env.broker.process().running());
}

TEST_CASE("hostile ops: unknown fields, wrong direction, bad UTF-8, wildcards, truncation",
          "[faults]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin", 60000);
  auto bad = env.registered("pub", 60000);
  auto good = env.registered("sub", 60000);
  REQUIRE(good->subscribe({"sensors/#"}));
  auto pub2 = env.registered("pub", 60000);
  const auto before = env.counters(*admin);
  std::uint64_t served = 0;

  // After each hostile input: the second peer is still served.
  auto others_served = [&] {
    auto r = pub2->publish("sensors/probe", std::to_string(++served));
    REQUIRE(r);
    REQUIRE(r->has_puback());
    auto d = good->wait_deliver("sensors/probe", 5000ms);
    REQUIRE(d);
    CHECK(d->payload() == std::to_string(served));
  };
  auto expect_error = [&](v1::ErrorCode code, std::uint64_t rid) {
    auto op = bad->wait_for(v1::Op::kError, 5000ms);
    REQUIRE(op);
    INFO("error " << error_code_name(op->error().code()) << ": " << op->error().message());
    CHECK(error_code_name(op->error().code()) == error_code_name(code));
    CHECK(op->error().request_id() == rid);
  };

  SECTION("unknown fields in the frame, the op and the body are ignored") {
    v1::Op p;
    p.mutable_publish()->set_request_id(7);
    p.mutable_publish()->set_topic("sensors/unknown-fields");
    p.mutable_publish()->set_payload("x");
    p.mutable_publish()->set_ack(true);
    const std::string body = p.publish().SerializeAsString() + kUnknown;
    bad->send_raw(frame_of(field(v1::Op::kPublishFieldNumber, body) + kUnknown) + kUnknown);
    auto ack =
        bad->wait_for([](const v1::Op& op) { return op.has_puback() || op.has_error(); }, 5000ms);
    REQUIRE(ack);
    INFO("answer: " << ack->ShortDebugString());
    CHECK(ack->has_puback());
    CHECK(ack->puback().request_id() == 7);
    CHECK(good->wait_deliver("sensors/unknown-fields", 5000ms));
    others_served();
  }
  SECTION("ops only the broker sends are answered UNSUPPORTED, each counted") {
    std::vector<v1::Op> ops(7);
    ops[0].mutable_deliver()->set_topic("sensors/forged");
    ops[0].mutable_deliver()->set_payload("forged");
    ops[1].mutable_registered()->set_request_id(11);
    ops[2].mutable_suback()->set_request_id(12);
    ops[3].mutable_puback()->set_request_id(13);
    ops[4].mutable_admin_reply()->set_request_id(14);
    ops[5].mutable_error()->set_request_id(15);
    ops[6].mutable_pull_reply()->set_request_id(16);
    for (std::size_t i = 0; i < ops.size(); ++i) {
      bad->send(ops[i]);
      // Answered with request_id 0: these ops are not requests.
      expect_error(v1::ERROR_UNSUPPORTED, 0);
      others_served();
    }
    // A forged DELIVER is never routed.
    CHECK_FALSE(good->wait_deliver("sensors/forged", 300ms));
    CHECK(env.counters(*admin).errors_sent() >= before.errors_sent() + ops.size());
  }
  SECTION("an op with no body, and a body under an unknown op number") {
    bad->send_raw(frame_of(""));
    auto e1 = bad->wait_for(v1::Op::kError, 5000ms);
    REQUIRE(e1);
    others_served();
    bad->send_raw(frame_of(field(99, "\x08\x05")));
    auto e2 = bad->wait_for(v1::Op::kError, 5000ms);
    REQUIRE(e2);
    others_served();
    CHECK(env.counters(*admin).errors_sent() >= before.errors_sent() + 2);
  }
  SECTION("invalid UTF-8 in subscribe, pull and topics; wildcards in publish and pull") {
    const std::string bad_utf8 = "sensors/\xc3\x28";
    v1::Op s;
    s.mutable_subscribe()->set_request_id(21);
    s.mutable_subscribe()->add_patterns(bad_utf8);
    v1::Op pl;
    pl.mutable_pull()->set_request_id(22);
    pl.mutable_pull()->set_topic(bad_utf8);
    v1::Op t;
    t.mutable_topics()->set_request_id(23);
    t.mutable_topics()->set_pattern(bad_utf8);
    for (const auto* op : {&s, &pl, &t}) {
      bad->send(*op);
      expect_error(v1::ERROR_INVALID_TOPIC, 21 + static_cast<std::uint64_t>(op == &pl) +
                                                2 * static_cast<std::uint64_t>(op == &t));
      others_served();
    }
    // A bad op between two good ones: both good ones served, in order.
    v1::Op a, b, bad_pub;
    a.mutable_publish()->set_topic("sensors/seq");
    a.mutable_publish()->set_payload("a");
    bad_pub.mutable_publish()->set_request_id(24);
    bad_pub.mutable_publish()->set_topic(bad_utf8);
    b.mutable_publish()->set_topic("sensors/seq");
    b.mutable_publish()->set_payload("b");
    bad->send_ops({a, bad_pub, b});
    expect_error(v1::ERROR_INVALID_TOPIC, 24);
    auto da = good->wait_deliver("sensors/seq", 5000ms);
    auto db = good->wait_deliver("sensors/seq", 5000ms);
    REQUIRE(da);
    REQUIRE(db);
    CHECK(da->payload() == "a");
    CHECK(db->payload() == "b");
    // Wildcards where an exact topic is required.
    for (const std::string topic : {"sensors/+/x", "sensors/#", "+", "#"}) {
      auto r = bad->publish(topic, "w");
      REQUIRE(r);
      REQUIRE(r->has_error());
      CHECK(r->error().code() == v1::ERROR_INVALID_TOPIC);
      auto p = bad->pull(topic);
      REQUIRE(p);
      REQUIRE(p->has_error());
      CHECK(p->error().code() == v1::ERROR_INVALID_TOPIC);
    }
    others_served();
    CHECK(env.counters(*admin).errors_sent() >= before.errors_sent() + 4 + 8);
  }
  SECTION("every truncation of a valid frame is MALFORMED and counted") {
    v1::Op p;
    p.mutable_publish()->set_request_id(31);
    p.mutable_publish()->set_topic("sensors/truncated");
    p.mutable_publish()->set_payload(std::string(40, 'p'));
    p.mutable_publish()->set_ack(true);
    const std::string whole = encode_op(p);
    std::uint64_t sent = 0;
    for (std::size_t cut = 1; cut < whole.size(); cut += 3) {
      bad->send_raw(whole.substr(0, cut));
      auto e = bad->wait_for(v1::Op::kError, 5000ms);
      REQUIRE(e);
      INFO("cut at " << cut << " of " << whole.size());
      CHECK(e->error().code() == v1::ERROR_MALFORMED);
      ++sent;
      if (sent % 5 == 0) others_served();
    }
    CHECK_FALSE(good->wait_deliver("sensors/truncated", 200ms));
    CHECK(env.counters(*admin).malformed() >= before.malformed() + sent);
    // The whole frame still works on the same connection.
    bad->send_raw(whole);
    auto ack = bad->wait_for(v1::Op::kPuback, 5000ms);
    REQUIRE(ack);
    CHECK(ack->puback().request_id() == 31);
  }
  CHECK(env.broker.process().running());
  // The hostile peer kept its session throughout.
  CHECK(client_names(*admin).count("pub") == 2);
}
