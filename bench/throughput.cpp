// curvebus-bench-throughput: messages/s from one publisher to N subscribers
// through a running broker, CURVE on, on this machine.
//
// Each peer is a raw DEALER speaking the v1 protocol (no client library in
// the path), so the figure is the broker's and CurveZMQ's, not a client's.
// The publisher sends PUBLISH ops without acks, `--batch` ops per ZeroMQ
// message, and asks for one PUBACK every `--window` messages, keeping at most
// two windows outstanding: the broker paces it, so nothing is dropped for the
// subscribers' sake unless they really fall behind (drops are reported).
// Rates are counted at the subscribers between their first and last message.
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"
#include "scenario_peer.hpp"

namespace {

using namespace curvebus;
using bench::load_secret;
using bench::Peer;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string endpoint = kDefaultEndpoint;
  std::string server_key;        // Z85 or certificate path
  std::string pub_key, sub_key;  // secret certificate paths
  int size = 64;
  double seconds = 5;
  int subscribers = 1;
  int batch = 1;
  int window = 2000;
};

struct SubResult {
  std::uint64_t received = 0;
  double seconds = 0;
  std::uint64_t gaps = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"curvebus-bench-throughput: 1 publisher -> N subscribers through a broker"};
  app.add_option("--endpoint", o.endpoint)->capture_default_str();
  app.add_option("--server-key", o.server_key, "Broker public key (Z85 or certificate)")
      ->required();
  app.add_option("--pub-key", o.pub_key, "Publisher's secret certificate")->required();
  app.add_option("--sub-key", o.sub_key, "Subscribers' secret certificate")->required();
  app.add_option("--size", o.size, "Payload bytes")->capture_default_str();
  app.add_option("--seconds", o.seconds, "Publishing time")->capture_default_str();
  app.add_option("--subscribers", o.subscribers)->capture_default_str();
  app.add_option("--batch", o.batch, "PUBLISH ops per ZeroMQ message from the publisher")
      ->capture_default_str();
  app.add_option("--window", o.window, "Messages per PUBACK (flow control)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto server = resolve_public_key(o.server_key);
  if (!server) {
    std::fprintf(stderr, "bench: %s\n", server.status().message().c_str());
    return 1;
  }
  const KeyPair pub_keys = load_secret(o.pub_key), sub_keys = load_secret(o.sub_key);
  zmq::context_t ctx(2);

  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
  std::vector<SubResult> results(static_cast<std::size_t>(o.subscribers));
  std::vector<std::thread> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    subs.emplace_back([&, i] {
      Peer p(ctx, o.endpoint, *server, sub_keys);
      v1::Op sub;
      sub.mutable_subscribe()->set_request_id(2);
      sub.mutable_subscribe()->add_patterns("bench/#");
      if (!p.register_peer("curvebus-bench", 10000) || !p.request(sub, v1::Op::kSuback, 5000)) {
        failed = true;
        ++ready;
        return;
      }
      ++ready;
      SubResult& r = results[static_cast<std::size_t>(i)];
      Clock::time_point first, last;
      std::uint64_t expect_seq = 0;
      bool done = false;
      while (!done) {
        v1::Frame f;
        if (!p.recv(f, 5000)) break;  // publisher gone quiet: stop
        for (const auto& op : f.ops()) {
          if (op.has_ping()) {
            p.pong(op.ping().nonce());
          } else if (op.has_deliver()) {
            if (op.deliver().topic() == "bench/end") {
              done = true;
              break;
            }
            last = Clock::now();
            if (r.received == 0) first = last;
            ++r.received;
            if (expect_seq && op.deliver().seq() != expect_seq) ++r.gaps;
            expect_seq = op.deliver().seq() + 1;
          }
        }
      }
      r.seconds = std::chrono::duration<double>(last - first).count();
    });
  }
  while (ready < o.subscribers) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (failed) {
    std::fprintf(stderr, "bench: a subscriber could not register/subscribe\n");
    for (auto& t : subs) t.join();
    return 2;
  }

  Peer pub(ctx, o.endpoint, *server, pub_keys);
  if (!pub.register_peer("curvebus-bench", 10000)) {
    std::fprintf(stderr, "bench: the publisher could not register\n");
    return 2;
  }
  const std::string payload(static_cast<std::size_t>(o.size), 'x');
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic("bench/data");
  p->set_payload(payload);
  std::string batch;
  std::uint64_t sent = 0, acked_windows = 0, asked_windows = 0, request_id = 100;
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration<double>(o.seconds);
  auto drain = [&](int timeout_ms) {
    v1::Frame f;
    if (!pub.recv(f, timeout_ms)) return;
    for (const auto& r : f.ops()) {
      if (r.has_puback()) ++acked_windows;
      if (r.has_ping()) pub.pong(r.ping().nonce());
      if (r.has_error())
        std::fprintf(stderr, "bench: publish error %s: %s\n",
                     error_code_name(r.error().code()).c_str(), r.error().message().c_str());
    }
  };
  // The op without an ack is the same bytes every time: encoded once, so the
  // load generator spends its core sending, not serialising (as a NATS or
  // MQTT load generator writes a prepared buffer).
  std::string plain_op;
  append_op(op, plain_op);
  while (Clock::now() < stop_at) {
    for (int k = 0; k < o.batch; ++k) {
      ++sent;
      const bool ask = sent % static_cast<std::uint64_t>(o.window) == 0;
      if (!ask) {
        batch.append(plain_op);
        continue;
      }
      p->set_ack(true);
      p->set_request_id(++request_id);
      ++asked_windows;
      append_op(op, batch);
      p->set_ack(false);
      p->set_request_id(0);
    }
    pub.socket.send(zmq::buffer(batch), zmq::send_flags::none);
    batch.clear();
    while (asked_windows > acked_windows + 1) drain(1000);
    drain(0);
  }
  const double pub_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  v1::Op end;
  end.mutable_publish()->set_topic("bench/end");
  end.mutable_publish()->set_request_id(++request_id);
  end.mutable_publish()->set_ack(true);
  pub.request(end, v1::Op::kPuback, 10000);
  for (auto& t : subs) t.join();

  std::uint64_t total = 0, gaps = 0;
  double rate_sum = 0;
  for (const auto& r : results) {
    total += r.received;
    gaps += r.gaps;
    if (r.seconds > 0) rate_sum += static_cast<double>(r.received) / r.seconds;
  }
  const std::uint64_t expected = sent * static_cast<std::uint64_t>(o.subscribers);
  std::printf(
      "size=%d subscribers=%d batch=%d sent=%llu publish_rate=%.0f/s delivered=%llu "
      "delivered_rate=%.0f/s lost=%llu gaps=%llu\n",
      o.size, o.subscribers, o.batch, static_cast<unsigned long long>(sent),
      static_cast<double>(sent) / pub_seconds, static_cast<unsigned long long>(total), rate_sum,
      static_cast<unsigned long long>(expected - total), static_cast<unsigned long long>(gaps));
  return 0;
}
