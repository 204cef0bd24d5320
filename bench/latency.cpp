// curvebus-bench-latency: one-way latency publisher -> broker -> N subscribers
// at a fixed publication rate, CURVE on, on this machine.
//
// Raw v1 DEALER peers (as in throughput.cpp), each on its own ZeroMQ context,
// all in this process so that one steady_clock times both ends: the publisher
// writes its send time (ns) and a sequence number into the payload; each
// subscriber subtracts it from its receive time.  The first `--warmup`
// seconds are not counted.  Publications are paced on a fixed schedule
// (sleep until the next slot; a late slot is sent at once), no acks, one
// PUBLISH per ZeroMQ message.
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "scenario_peer.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::bench;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct SubResult {
  std::vector<std::int64_t> latency_ns;  // measured publications only
  std::uint64_t warm = 0, gaps = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = kDefaultEndpoint, server_key, pub_key, sub_key;
  int size = 64, subscribers = 1;
  double rate = 10000, seconds = 5, warmup = 1;
  CLI::App app{"curvebus-bench-latency: publisher -> broker -> N subscribers, one-way latency"};
  app.add_option("--endpoint", endpoint)->capture_default_str();
  app.add_option("--server-key", server_key, "Broker public key (Z85 or certificate)")->required();
  app.add_option("--pub-key", pub_key, "Publisher's secret certificate")->required();
  app.add_option("--sub-key", sub_key, "Subscribers' secret certificate")->required();
  app.add_option("--size", size, "Payload bytes (>= 16)")->capture_default_str();
  app.add_option("--subscribers", subscribers)->capture_default_str();
  app.add_option("--rate", rate, "Publications per second")->capture_default_str();
  app.add_option("--seconds", seconds, "Measured time")->capture_default_str();
  app.add_option("--warmup", warmup, "Seconds published first and not counted")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  size = std::max(size, 16);

  const std::string server = load_server_key(server_key);
  const KeyPair pub_keys = load_secret(pub_key), sub_keys = load_secret(sub_key);
  const auto warm_count = static_cast<std::uint64_t>(warmup * rate);
  const auto total = warm_count + static_cast<std::uint64_t>(seconds * rate);

  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
  std::vector<SubResult> results(static_cast<std::size_t>(subscribers));
  std::vector<std::thread> subs;
  for (int i = 0; i < subscribers; ++i) {
    subs.emplace_back([&, i] {
      zmq::context_t ctx(1);
      Peer p(ctx, endpoint, server, sub_keys);
      if (!p.register_peer("curvebus-bench-latency") || !p.subscribe("lat/#")) {
        failed = true;
        ++ready;
        return;
      }
      ++ready;
      SubResult& r = results[static_cast<std::size_t>(i)];
      r.latency_ns.reserve(total);
      std::uint64_t expect = 0;
      bool done = false;
      while (!done) {
        v1::Frame f;
        if (!p.recv(f, 10000)) break;  // publisher gone quiet: stop
        const std::int64_t t = now_ns();
        for (const auto& op : f.ops()) {
          if (op.has_ping()) p.pong(op.ping().nonce());
          if (!op.has_deliver()) continue;
          const auto& d = op.deliver();
          if (d.topic() == "lat/end") {
            done = true;
            break;
          }
          if (d.payload().size() < 16) continue;
          std::int64_t sent_ns = 0;
          std::uint64_t index = 0;
          std::memcpy(&sent_ns, d.payload().data(), 8);
          std::memcpy(&index, d.payload().data() + 8, 8);
          if (expect && index != expect) ++r.gaps;
          expect = index + 1;
          if (index < warm_count)
            ++r.warm;
          else
            r.latency_ns.push_back(t - sent_ns);
        }
        if (Clock::now() - p.last_sent > std::chrono::milliseconds(500)) p.heartbeat();
      }
    });
  }
  while (ready < subscribers) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (failed) {
    std::fprintf(stderr, "bench: a subscriber could not register/subscribe\n");
    for (auto& t : subs) t.join();
    return 2;
  }

  zmq::context_t pub_ctx(1);
  Peer pub(pub_ctx, endpoint, server, pub_keys);
  if (!pub.register_peer("curvebus-bench-latency")) {
    std::fprintf(stderr, "bench: the publisher could not register\n");
    return 2;
  }
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic("lat/data");
  std::string payload(static_cast<std::size_t>(size), 'x');
  std::string bytes;
  const auto period = std::chrono::duration<double>(1.0 / rate);
  const auto start = Clock::now();
  std::uint64_t late = 0;
  for (std::uint64_t i = 0; i < total; ++i) {
    const auto due =
        start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
    if (Clock::now() < due)
      std::this_thread::sleep_until(due);
    else if (Clock::now() - due > std::chrono::microseconds(500))
      ++late;
    const std::int64_t t = now_ns();
    std::memcpy(payload.data(), &t, 8);
    std::memcpy(payload.data() + 8, &i, 8);
    p->set_payload(payload);
    bytes.clear();
    append_op(op, bytes);
    pub.socket.send(zmq::buffer(bytes), zmq::send_flags::none);
    if (i % 256 == 0) {  // answer the broker's pings, ignore the rest
      zmq::message_t m;
      while (pub.socket.recv(m, zmq::recv_flags::dontwait)) {
        v1::Frame f;
        if (!decode_frame(m.data(), m.size(), f)) continue;
        for (const auto& o : f.ops())
          if (o.has_ping()) pub.pong(o.ping().nonce());
      }
    }
  }
  const double pub_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  v1::Op end;
  end.mutable_publish()->set_topic("lat/end");
  end.mutable_publish()->set_request_id(pub.next_request++);
  end.mutable_publish()->set_ack(true);
  pub.request(end, v1::Op::kPuback, 10000);
  for (auto& t : subs) t.join();

  std::vector<std::int64_t> all;
  std::uint64_t gaps = 0;
  for (const auto& r : results) {
    all.insert(all.end(), r.latency_ns.begin(), r.latency_ns.end());
    gaps += r.gaps;
  }
  std::sort(all.begin(), all.end());
  const std::uint64_t expected = (total - warm_count) * static_cast<std::uint64_t>(subscribers);
  std::printf(
      "system=curvebus size=%d subscribers=%d rate=%.0f achieved_rate=%.0f samples=%zu lost=%llu "
      "gaps=%llu late_slots=%llu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
      size, subscribers, rate, static_cast<double>(total) / pub_seconds, all.size(),
      static_cast<unsigned long long>(expected > all.size() ? expected - all.size() : 0),
      static_cast<unsigned long long>(gaps), static_cast<unsigned long long>(late),
      percentile(all, 50) / 1e3, percentile(all, 99) / 1e3, percentile(all, 99.9) / 1e3,
      all.empty() ? 0.0 : static_cast<double>(all.back()) / 1e3);
  return 0;
}
