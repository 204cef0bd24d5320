// curvebus-bench-federation: curvebus across two federated brokers
// (docs/federation.md), measured through the public client library, for
// bench/run-federation. The publisher connects to one broker (--pub-home or
// --pub-endpoint), the subscribers to another (--sub-home or --sub-endpoint);
// both may name the same broker, for the single-broker comparison. One
// process holds both ends, so one steady_clock times them.
//
//   --mode telemetry   the comparison harness (peer_bench.hpp) in latency
//                      mode: Client::publish(topic, payload) without ack at
//                      --latency msg/s, timestamps in the payload; prints the
//                      harness's latency line (rate, lost, p50/p99/p99.9).
//   --mode commands    one publication at a time with
//                      PublishOptions{.wait_ack = true} for --seconds (each
//                      right after the previous PUBACK, or at most --latency
//                      RATE per second when given): on a
//                      federated `commands` topic the broker's PUBACK comes only
//                      after JetStream stored the command. One subscriber
//                      counts deliveries by sequence number. Prints
//                      `system=... acked=... acked_rate=... puback_p50_us=...
//                      puback_p99_us=... delivered=... delivered_rate=...
//                      duplicates=... acked_not_delivered=... e2e_p50_us=...
//                      e2e_p99_us=...`; delivered_rate: distinct commands over
//                      the time from the first publication to the last first
//                      delivery (the subscriber's side may lag behind).
//
// Payload layout (both modes): byte 0 'w' (warm-up probe, not counted) or 'x',
// bytes 1..8 the send time (steady_clock ns); commands add bytes 9..16, the
// publication's sequence number from 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_client.hpp"
#include "curvebus/client.hpp"
#include "peer_bench.hpp"

namespace {

using peer_bench::Clock;

using bench_client::connect_client;
using bench_client::Where;

class ClientPublisher : public peer_bench::Publisher {
 public:
  ClientPublisher(curvebus::Client& c, std::string topic) : c_(c), topic_(std::move(topic)) {}
  bool send(const char* data, std::size_t n) override {
    payload_.assign(data, n);
    const curvebus::Status s = c_.publish(topic_, payload_);
    if (!s && refusals_++ == 0)
      std::fprintf(stderr, "fed-bench: publish refused: %s %s\n", s.code().c_str(),
                   s.message().c_str());
    return s.ok();
  }

 private:
  curvebus::Client& c_;
  std::string topic_;
  std::string payload_;
  std::uint64_t refusals_ = 0;
};

double percentile_us(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()));
  if (rank >= v.size()) rank = v.size() - 1;
  return static_cast<double>(v[rank]) / 1e3;
}

int run_telemetry(peer_bench::Options& o, const Where& pub_at, const Where& sub_at,
                  const std::string& topic, const std::string& label) {
  if (o.latency_rate <= 0) {
    std::fprintf(stderr, "fed-bench: --mode telemetry needs --latency RATE\n");
    return 1;
  }
  peer_bench::Sinks sinks(o.subscribers);
  std::vector<std::unique_ptr<curvebus::Client>> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    auto c = connect_client(sub_at, "bench-sub-" + std::to_string(i));
    if (!c) return 2;
    peer_bench::Sink& sink = sinks[i];
    const curvebus::Status s = c->subscribe({topic}, [&sink](const curvebus::Message& m) {
      sink.on_payload(m.payload.data(), m.payload.size());
    });
    if (!s) {
      std::fprintf(stderr, "fed-bench: subscribe: %s\n", s.message().c_str());
      return 2;
    }
    subs.push_back(std::move(c));
  }
  auto pc = connect_client(pub_at, "bench-pub");
  if (!pc) return 2;
  ClientPublisher pub(*pc, topic);
  peer_bench::Driver driver(o, pub, sinks);
  const bool measured = driver.measure();
  std::uint64_t gaps = 0;
  for (auto& s : subs) gaps += s->counters().sequence_gaps;
  const auto pk = pc->counters();
  for (auto& s : subs) s->close();
  pc->close();
  if (!measured) return 2;
  driver.report(label, " sequence_gaps=" + std::to_string(gaps) + " queue_full=" +
                           std::to_string(pk.queue_full) + " errors=" + std::to_string(pk.errors));
  return 0;
}

// The subscriber's side of --mode commands: deliveries by sequence number.
struct CommandSink {
  std::mutex mu;
  std::unordered_map<std::uint64_t, int> seen;  // seq -> deliveries
  std::vector<std::int64_t> e2e_ns;             // first delivery of each seq
  std::int64_t last_new_ns = 0;                 // when the latest first delivery came
  std::atomic<std::uint64_t> deliveries{0};
  std::atomic<bool> warm{false};

  void on_payload(const std::string& p) {
    if (p.empty()) return;
    if (p[0] == peer_bench::kWarm) {
      warm = true;
      return;
    }
    if (p.size() < 17) return;
    std::int64_t sent;
    std::uint64_t seq;
    std::memcpy(&sent, p.data() + 1, sizeof sent);
    std::memcpy(&seq, p.data() + 9, sizeof seq);
    const std::int64_t now = peer_bench::now_ns();
    std::lock_guard<std::mutex> lock(mu);
    if (seen[seq]++ == 0) {
      e2e_ns.push_back(now - sent);
      last_new_ns = now;
    }
    deliveries.fetch_add(1, std::memory_order_relaxed);
  }
};

int run_commands(const peer_bench::Options& o, const Where& pub_at, const Where& sub_at,
                 const std::string& topic, const std::string& label) {
  CommandSink sink;
  auto sc = connect_client(sub_at, "bench-sub-0");
  if (!sc) return 2;
  const curvebus::Status ss =
      sc->subscribe({topic}, [&sink](const curvebus::Message& m) { sink.on_payload(m.payload); });
  if (!ss) {
    std::fprintf(stderr, "fed-bench: subscribe: %s\n", ss.message().c_str());
    return 2;
  }
  auto pc = connect_client(pub_at, "bench-pub");
  if (!pc) return 2;
  curvebus::PublishOptions ack;
  ack.wait_ack = true;
  std::string payload(static_cast<std::size_t>(o.size), peer_bench::kWarm);

  // Warm-up: the brokers set up their JetStream streams and durable consumers
  // in the background after start; probe until one reaches the subscriber.
  const auto warm_deadline = Clock::now() + std::chrono::seconds(60);
  std::string last_refusal;
  while (!sink.warm && Clock::now() < warm_deadline) {
    const curvebus::Status s = pc->publish(topic, payload, ack);
    if (!s) last_refusal = s.code() + " " + s.message();
    std::this_thread::sleep_for(std::chrono::milliseconds(s ? 100 : 500));
  }
  if (!sink.warm) {
    std::fprintf(stderr, "fed-bench: no warm-up command reached the subscriber (last: %s)\n",
                 last_refusal.c_str());
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  payload.assign(static_cast<std::size_t>(o.size), peer_bench::kData);
  std::vector<std::int64_t> puback_ns;
  std::uint64_t seq = 0, acked = 0, refused = 0;
  std::string first_refusal;
  const std::int64_t t0_ns = peer_bench::now_ns();
  const auto t0 = Clock::now();
  const auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  while (Clock::now() < end) {
    ++seq;
    const std::int64_t sent = peer_bench::now_ns();
    std::memcpy(&payload[1], &sent, sizeof sent);
    std::memcpy(&payload[9], &seq, sizeof seq);
    const curvebus::Status s = pc->publish(topic, payload, ack);
    const std::int64_t took = peer_bench::now_ns() - sent;
    if (s) {
      ++acked;
      puback_ns.push_back(took);
    } else {
      if (refused++ == 0) first_refusal = s.code();
    }
    if (o.latency_rate > 0)  // paced: the next one when due (never two at once)
      std::this_thread::sleep_until(std::min(
          end, t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(seq) / o.latency_rate))));
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();

  // Drain: until every acked command arrived or nothing moved for 3 s (60 s at most).
  const auto drain_deadline = Clock::now() + std::chrono::seconds(60);
  std::uint64_t last = sink.deliveries.load();
  auto last_move = Clock::now();
  while (Clock::now() < drain_deadline && Clock::now() - last_move < std::chrono::seconds(3)) {
    {
      std::lock_guard<std::mutex> lock(sink.mu);
      if (sink.seen.size() >= seq) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::uint64_t now = sink.deliveries.load();
    if (now != last) {
      last = now;
      last_move = Clock::now();
    }
  }
  // A little longer for late redeliveries (duplicates) to show.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  sc->close();
  pc->close();

  std::uint64_t delivered = 0, duplicates = 0;
  std::vector<std::int64_t> e2e;
  double delivery_secs = 0;
  {
    std::lock_guard<std::mutex> lock(sink.mu);
    delivered = sink.seen.size();
    delivery_secs = static_cast<double>(sink.last_new_ns - t0_ns) / 1e9;
    for (const auto& kv : sink.seen)
      duplicates += static_cast<std::uint64_t>(kv.second > 1 ? kv.second - 1 : 0);
    e2e = sink.e2e_ns;
  }
  std::printf(
      "system=%s size=%d seconds=%.2f sent=%llu acked=%llu refused=%llu%s%s "
      "acked_rate=%.0f/s puback_p50_us=%.1f puback_p99_us=%.1f puback_max_us=%.1f "
      "delivered=%llu delivered_rate=%.0f/s duplicates=%llu acked_not_delivered=%llu "
      "e2e_p50_us=%.1f e2e_p99_us=%.1f\n",
      label.c_str(), o.size, secs, static_cast<unsigned long long>(seq),
      static_cast<unsigned long long>(acked), static_cast<unsigned long long>(refused),
      first_refusal.empty() ? "" : " first_refusal=", first_refusal.c_str(),
      static_cast<double>(acked) / secs, percentile_us(puback_ns, 50), percentile_us(puback_ns, 99),
      percentile_us(puback_ns, 100), static_cast<unsigned long long>(delivered),
      delivery_secs > 0 ? static_cast<double>(delivered) / delivery_secs : 0.0,
      static_cast<unsigned long long>(duplicates),
      static_cast<unsigned long long>(acked > delivered ? acked - delivered : 0),
      percentile_us(e2e, 50), percentile_us(e2e, 99));
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  peer_bench::Options o;
  Where pub_at, sub_at;
  std::string mode = "telemetry", topic = "bench/data", label;
  CLI::App app{
      "curvebus-bench-federation: publisher on one broker, subscribers on another (or the "
      "same), through the public client library"};
  o.add_to(app, false);
  app.add_option("--mode", mode,
                 "telemetry (latency at the --latency rate) or commands (wait_ack, one at a "
                 "time; --latency RATE paces them)")
      ->check(CLI::IsMember({"telemetry", "commands"}))
      ->capture_default_str();
  app.add_option("--topic", topic, "Topic published and subscribed")->capture_default_str();
  app.add_option("--label", label, "system= of the result line");
  app.add_option("--pub-home", pub_at.home, "curvebus home of the publisher's broker");
  app.add_option("--pub-endpoint", pub_at.endpoint, "The publisher's broker endpoint");
  app.add_option("--pub-server-key", pub_at.server_key, "Its public key");
  app.add_option("--pub-key", pub_at.key, "The publisher's secret certificate");
  app.add_option("--sub-home", sub_at.home, "curvebus home of the subscribers' broker");
  app.add_option("--sub-endpoint", sub_at.endpoint, "The subscribers' broker endpoint");
  app.add_option("--sub-server-key", sub_at.server_key, "Its public key");
  app.add_option("--sub-key", sub_at.key, "The subscribers' secret certificate");
  CLI11_PARSE(app, argc, argv);
  if (!o.valid()) return 1;
  if (o.size < 17) {
    std::fprintf(stderr, "fed-bench: --size >= 17\n");
    return 1;
  }
  if (label.empty()) label = "curvebus-" + mode;
  if (mode == "telemetry") return run_telemetry(o, pub_at, sub_at, topic, label);
  return run_commands(o, pub_at, sub_at, topic, label);
}
