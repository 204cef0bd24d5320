// The client library against a stand-in broker the test drives op by op: a
// raw CURVE ROUTER socket on 127.0.0.1.  It sees exactly what the client puts
// on the wire (how many ZeroMQ messages, which ops, in which order) and sends
// exactly the frames a test needs, including ones the real broker never
// would.
#include <catch2/catch.hpp>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/certificate.hpp"
#include "curvebus/client.hpp"
#include "curvebus/codec.hpp"
#include "process.hpp"

using namespace curvebus;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kHeartbeatMs = 2000;  // the interval the stand-in agrees to

// A CURVE server ROUTER without a ZAP handler: any client key is accepted.
class FakeBroker {
 public:
  FakeBroker() : keys_(generate_keypair()) {
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::rcvhwm, 10);  // when it stops reading, the client soon sees it
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, keys_.secret_key);
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }

  ClientOptions options() const {
    const KeyPair mine = generate_keypair();
    ClientOptions o;
    o.endpoint = endpoint_;
    o.server_public_key = keys_.public_key;
    o.public_key = mine.public_key;
    o.secret_key = mine.secret_key;
    o.heartbeat = std::chrono::milliseconds(kHeartbeatMs);
    o.reconnect_min = 20ms;
    o.reconnect_max = 100ms;
    return o;
  }

  // The next ZeroMQ message from the client, parsed; false after `timeout`.
  bool receive(v1::Frame& frame, std::chrono::milliseconds timeout = 5000ms) {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return false;
    zmq::message_t id, body;
    if (!router_.recv(id) || !router_.recv(body)) return false;
    peer_ = id.to_string();
    ++messages_;
    return frame.ParseFromArray(body.data(), static_cast<int>(body.size()));
  }

  // The next op other than HEARTBEAT and PONG; false after `timeout`.
  bool next_op(v1::Op& op, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      while (!pending_.empty()) {
        op = std::move(pending_.front());
        pending_.pop_front();
        if (op.has_heartbeat() || op.has_pong()) continue;
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      v1::Frame f;
      if (left.count() <= 0 || !receive(f, left)) return false;
      for (auto& o : *f.mutable_ops()) pending_.push_back(std::move(o));
    }
  }

  void send(const std::string& bytes) {
    router_.send(zmq::buffer(peer_), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(bytes));
  }
  void send(const v1::Op& op) { send(encode_op(op)); }

  // Waits for a REGISTER (ops before it are discarded) and returns its id.
  std::uint64_t wait_register(std::chrono::milliseconds timeout = 5000ms) {
    v1::Op op;
    while (next_op(op, timeout))
      if (op.has_register_()) return op.register_().request_id();
    return 0;
  }
  void answer_register(std::uint64_t id) {
    v1::Op op;
    auto* r = op.mutable_registered();
    r->set_request_id(id);
    r->set_session_id("s" + std::to_string(++sessions_));
    r->set_name("tester");
    r->set_heartbeat_ms(kHeartbeatMs);
    r->set_timeout_ms(3 * kHeartbeatMs);
    r->mutable_limits()->set_max_message_bytes(1u << 20);
    send(op);
  }
  // Answers the next SUBSCRIBE with every pattern granted.
  bool grant_subscribe() {
    v1::Op op;
    while (next_op(op))
      if (op.has_subscribe()) {
        v1::Op ack;
        ack.mutable_suback()->set_request_id(op.subscribe().request_id());
        for (const auto& p : op.subscribe().patterns()) {
          auto* a = ack.mutable_suback()->add_answers();
          a->set_pattern(p);
          a->set_result(v1::PATTERN_GRANTED);
        }
        send(ack);
        return true;
      }
    return false;
  }
  void send_error(v1::ErrorCode code, std::uint64_t request_id = 0) {
    v1::Op op;
    op.mutable_error()->set_code(code);
    op.mutable_error()->set_request_id(request_id);
    op.mutable_error()->set_message("from the stand-in broker");
    send(op);
  }

  std::size_t messages() const { return messages_; }

 private:
  zmq::context_t ctx_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  KeyPair keys_;
  std::string endpoint_;
  std::string peer_;
  std::deque<v1::Op> pending_;
  std::size_t messages_ = 0;
  int sessions_ = 0;
};

// Connects `c` to `fb`, answering its REGISTER.
bool connect_to(Client& c, FakeBroker& fb) {
  auto done = std::async(std::launch::async, [&] { return c.connect(5000ms); });
  const std::uint64_t id = fb.wait_register();
  if (id == 0) return false;
  fb.answer_register(id);
  return done.get().ok();
}

// Subscribes `c` to `patterns`, the stand-in granting them.
bool subscribe_to(Client& c, FakeBroker& fb, const std::vector<std::string>& patterns,
                  MessageHandler h) {
  auto done = std::async(std::launch::async, [&] { return c.subscribe(patterns, h); });
  if (!fb.grant_subscribe()) return false;
  return done.get().ok();
}

v1::Op deliver_op(const std::string& topic, std::uint64_t seq, const std::string& payload,
                  bool retained = false) {
  v1::Op op;
  auto* d = op.mutable_deliver();
  d->set_topic(topic);
  d->set_payload(payload);
  d->set_seq(seq);
  d->set_publisher("alice");
  d->set_timestamp_us(1700000000000000 + static_cast<std::int64_t>(seq));
  d->set_retained(retained);
  return op;
}

struct LinkInbox {
  std::mutex mu;
  std::vector<Message> messages;
  MessageHandler handler() {
    return [this](const Message& m) {
      std::lock_guard<std::mutex> lock(mu);
      messages.push_back(m);
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return messages.size();
  }
};

// Collects PUBLISH ops until `n` arrived: their payloads in arrival order, and
// how many ZeroMQ messages carried them.
struct Received {
  std::vector<std::string> payloads;
  std::size_t messages = 0;
  std::vector<std::string> others;  // names of other ops
};
Received collect_publications(FakeBroker& fb, std::size_t n) {
  Received r;
  v1::Frame f;
  while (r.payloads.size() < n && fb.receive(f)) {
    bool carried = false;
    for (const auto& op : f.ops()) {
      if (op.has_publish()) {
        r.payloads.push_back(op.publish().payload());
        carried = true;
      } else if (!op.has_heartbeat()) {
        r.others.push_back(op_name(op.body_case()));
      }
    }
    if (carried) ++r.messages;
  }
  return r;
}

std::string numbered(std::size_t i, std::size_t size) {
  std::string s = std::to_string(i);
  s.resize(size, '.');
  return s;
}

}  // namespace

TEST_CASE(
    "client: publications queued before registration leave in full 64 KiB batches, in "
    "order, each once",
    "[client][batching]") {
  FakeBroker fb;
  ClientOptions o = fb.options();
  o.max_queued = 20000;
  Client c(o);
  auto connected = std::async(std::launch::async, [&] { return c.connect(5000ms); });
  const std::uint64_t reg = fb.wait_register();
  REQUIRE(reg != 0);
  REQUIRE(c.state() == ConnectionState::Connecting);
  const std::size_t n = 10000;
  for (std::size_t i = 0; i < n; ++i) REQUIRE(c.publish("load/t", numbered(i, 64)));
  fb.answer_register(reg);
  REQUIRE(connected.get());

  const Received r = collect_publications(fb, n);
  REQUIRE(r.payloads.size() == n);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(r.payloads[i] == numbered(i, 64));
  // Every op is the same size, so the batches are as full as 64 KiB allows.
  PublishView v;
  v.topic = "load/t";
  const std::string payload(64, 'x');
  v.payload = payload;
  std::string one;
  encode_publish(v, one);
  const std::size_t per_batch = (64 * 1024) / one.size();
  CHECK(r.messages == (n + per_batch - 1) / per_batch);
  CHECK(c.counters().published == n);
  CHECK(c.counters().frames_sent == r.messages);
}

TEST_CASE("client: publications made at full speed leave many per ZeroMQ message, in order",
          "[client][batching]") {
  FakeBroker fb;
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  const std::size_t n = 100000;
  std::thread publisher([&] {
    for (std::size_t i = 0; i < n; ++i)
      if (!c.publish("load/t", numbered(i, 64))) return;
  });
  const Received r = collect_publications(fb, n);
  publisher.join();
  REQUIRE(r.payloads.size() == n);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(r.payloads[i] == numbered(i, 64));
  INFO(r.messages << " ZeroMQ messages for " << n << " publications");
  // One ZeroMQ message (one CURVE box) per publication was the old cost; a
  // batch is whatever queued during one turn of the I/O thread.
  CHECK(r.messages * 8 <= n);
  CHECK(r.others.empty());
}

TEST_CASE("client: a frame the delivery scan declines reaches the handlers with the same fields",
          "[client][deliver]") {
  FakeBroker fb;
  LinkInbox in;  // before the client: its handler uses it
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  REQUIRE(subscribe_to(c, fb, {"a/#"}, in.handler()));

  // DELIVER, PING, DELIVER with a field this client does not know (protobuf
  // skips it), in one ZeroMQ message.
  std::string frame = encode_op(deliver_op("a/1", 1, "first"));
  v1::Op ping;
  ping.mutable_ping()->set_nonce(42);
  append_op(ping, frame);
  const std::string body =
      deliver_op("a/2", 7, "second").deliver().SerializeAsString() + std::string("\x78\x05", 2);
  frame += std::string("\x0A") + static_cast<char>(body.size() + 2) + "\x42" +
           static_cast<char>(body.size()) + body;
  fb.send(frame);

  REQUIRE(test::wait_until([&] { return in.size() == 2; }, 5000ms));
  std::lock_guard<std::mutex> lock(in.mu);
  CHECK(in.messages[0].topic == "a/1");
  CHECK(in.messages[0].payload == "first");
  CHECK(in.messages[0].seq == 1);
  CHECK(in.messages[1].topic == "a/2");
  CHECK(in.messages[1].payload == "second");
  CHECK(in.messages[1].seq == 7);
  CHECK(in.messages[1].publisher == "alice");
  CHECK(in.messages[1].published_us == 1700000000000007);
  CHECK(c.counters().delivered == 2);
}

TEST_CASE("client: the PING in a batch of deliveries is answered with its nonce",
          "[client][deliver]") {
  FakeBroker fb;
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  std::string frame = encode_op(deliver_op("a/1", 1, "x"));
  v1::Op ping;
  ping.mutable_ping()->set_nonce(4242);
  append_op(ping, frame);
  fb.send(frame);
  v1::Frame f;
  bool pong = false;
  while (!pong && fb.receive(f, 3000ms))
    for (const auto& op : f.ops())
      if (op.has_pong() && op.pong().nonce() == 4242) pong = true;
  CHECK(pong);
}

TEST_CASE(
    "client: a thousand deliveries in one ZeroMQ message reach every matching handler in "
    "order, and sequence gaps are counted",
    "[client][deliver]") {
  FakeBroker fb;
  LinkInbox all, one;  // before the client: its handlers use them
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  REQUIRE(subscribe_to(c, fb, {"s/#"}, all.handler()));
  REQUIRE(subscribe_to(c, fb, {"s/a"}, one.handler()));

  std::string frame;
  for (std::uint64_t seq = 1; seq <= 1000; ++seq) {
    append_op(deliver_op("s/a", seq, std::to_string(seq)), frame);
    append_op(deliver_op("s/b", seq, std::to_string(seq)), frame);
  }
  fb.send(frame);
  REQUIRE(test::wait_until([&] { return all.size() == 2000; }, 5000ms));
  {
    std::lock_guard<std::mutex> lock(all.mu);
    for (std::size_t i = 0; i < 2000; ++i) {
      REQUIRE(all.messages[i].topic == (i % 2 == 0 ? "s/a" : "s/b"));
      REQUIRE(all.messages[i].seq == i / 2 + 1);
    }
  }
  REQUIRE(one.size() == 1000);
  CHECK(c.counters().sequence_gaps == 0);

  // s/a jumps from 1000 to 1003 (one gap); a retained value with an old seq
  // is not a gap, nor is what follows it.
  frame.clear();
  append_op(deliver_op("s/a", 1003, "late"), frame);
  append_op(deliver_op("s/a", 5, "kept", true), frame);
  append_op(deliver_op("s/a", 1004, "next"), frame);
  fb.send(frame);
  REQUIRE(test::wait_until([&] { return all.size() == 2003; }, 5000ms));
  CHECK(c.counters().sequence_gaps == 1);
  CHECK(c.counters().delivered == 2003);
  std::lock_guard<std::mutex> lock(one.mu);
  CHECK(one.messages.back().payload == "next");
  CHECK(one.messages[1001].retained);
}

TEST_CASE("client: a request that timed out before it was sent never reaches the broker",
          "[client][requests]") {
  FakeBroker fb;
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  // The broker forgets the session: the client registers again and holds
  // its queue until REGISTERED.
  fb.send_error(v1::ERROR_NOT_REGISTERED);
  const std::uint64_t again = fb.wait_register();
  REQUIRE(again != 0);
  REQUIRE(test::wait_until([&] { return c.state() == ConnectionState::Reconnecting; }, 3000ms));
  auto pulled = c.pull("never/sent", 0, 0, 200ms);
  CHECK(pulled.status().code() == "NO_BROKER");
  REQUIRE(c.publish("after/pull", "queued"));

  fb.answer_register(again);
  v1::Op op;
  REQUIRE(fb.next_op(op));
  CHECK_FALSE(op.has_pull());
  REQUIRE(op.has_publish());
  CHECK(op.publish().payload() == "queued");
  CHECK_FALSE(fb.next_op(op, 300ms));
}

TEST_CASE("client: a request already sent fails with NO_BROKER as soon as the link is lost",
          "[client][requests]") {
  FakeBroker fb;
  Client c(fb.options());
  REQUIRE(connect_to(c, fb));
  const auto start = std::chrono::steady_clock::now();
  auto pulled = std::async(std::launch::async, [&] { return c.pull("t", 0, 0, 10000ms); });
  v1::Op op;
  REQUIRE(fb.next_op(op));
  REQUIRE(op.has_pull());
  fb.send_error(v1::ERROR_KICKED);
  const auto r = pulled.get();
  CHECK(r.status().code() == "NO_BROKER");
  CHECK(std::chrono::steady_clock::now() - start < 5000ms);
  CHECK(c.counters().reconnects == 1);
}

TEST_CASE(
    "client: with the queue full, publish fails QUEUE_FULL at once while disconnected and "
    "the queue leaves in order after the reconnect",
    "[client][backpressure]") {
  FakeBroker fb;
  ClientOptions o = fb.options();
  o.max_queued = 100;
  Client c(o);
  REQUIRE(connect_to(c, fb));
  fb.send_error(v1::ERROR_KICKED);  // lost: reconnects with a fresh socket
  const std::uint64_t again = fb.wait_register();
  REQUIRE(again != 0);
  REQUIRE(c.state() != ConnectionState::Connected);
  for (std::size_t i = 0; i < 100; ++i) REQUIRE(c.publish("q/t", numbered(i, 16)));
  PublishOptions slow;
  slow.ack_timeout = 5000ms;
  const auto start = std::chrono::steady_clock::now();
  CHECK(c.publish("q/t", "one too many", slow).code() == "QUEUE_FULL");
  CHECK(std::chrono::steady_clock::now() - start < 1000ms);  // did not wait for room
  CHECK(c.counters().queue_full == 1);

  fb.answer_register(again);
  const Received r = collect_publications(fb, 100);
  REQUIRE(r.payloads.size() == 100);
  for (std::size_t i = 0; i < 100; ++i) CHECK(r.payloads[i] == numbered(i, 16));
}

TEST_CASE(
    "client: with the queue full while connected, publish waits for room, and goes on when "
    "the broker reads again",
    "[client][backpressure]") {
  FakeBroker fb;
  ClientOptions o = fb.options();
  o.max_queued = 50;
  Client c(o);
  REQUIRE(connect_to(c, fb));
  // The stand-in stops reading: ZeroMQ's pipe and the kernel's buffers fill
  // (each 40 KiB publication is a batch of its own), then the outbox.
  const std::string big(40 * 1024, 'b');
  PublishOptions quick;
  quick.ack_timeout = 200ms;
  std::size_t accepted = 0;
  Status refused;
  for (; accepted < 4000; ++accepted) {
    refused = c.publish("q/big", big, quick);
    if (!refused) break;
  }
  REQUIRE(refused.code() == "QUEUE_FULL");
  CHECK(c.state() == ConnectionState::Connected);
  // The kernel may still grow its socket buffers for a moment after the first
  // refusal, which makes room: top the queue up until it stays full.
  for (int quiet = 0; quiet < 5;) {
    std::this_thread::sleep_for(100ms);
    bool took = false;
    while (c.publish("q/big", big, quick)) {
      ++accepted;
      took = true;
    }
    quiet = took ? 0 : quiet + 1;
  }

  // A publisher with patience blocks, then returns once the stand-in drains.
  std::atomic<bool> returned{false};
  Status later;
  std::thread patient([&] {
    PublishOptions wait;
    wait.ack_timeout = 10000ms;
    later = c.publish("q/big", "after the wait", wait);
    returned = true;
  });
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(returned.load());
  const Received r = collect_publications(fb, accepted + 1);
  patient.join();
  CHECK(later.ok());
  REQUIRE(r.payloads.size() == accepted + 1);
  CHECK(r.payloads.back() == "after the wait");
}

TEST_CASE("client: a malformed endpoint is a USAGE error from connect, not a silent retry",
          "[client][setup]") {
  FakeBroker fb;
  ClientOptions o = fb.options();
  o.endpoint = "tcp://127.0.0.1:no-port";
  Client c(o);
  const auto start = std::chrono::steady_clock::now();
  const Status s = c.connect(5000ms);
  CHECK(s.code() == "USAGE");
  CHECK(s.message().find("connect") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < 2000ms);
  CHECK(c.state() == ConnectionState::Closed);
}

TEST_CASE("client: keys that are not Z85 are refused before any socket is made",
          "[client][setup]") {
  FakeBroker fb;
  ClientOptions o = fb.options();
  o.secret_key = std::string(40, '~');  // not in Z85's alphabet
  Client c(o);
  CHECK(c.connect(1000ms).code() == "USAGE");
}
