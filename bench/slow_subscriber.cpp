// curvebus-bench-slow-subscriber: one subscriber stops reading while a
// publisher keeps a steady rate and --fast subscribers keep reading.  Shows,
// once a second: the broker's RSS and CPU (from /proc, --broker-pid), each
// fast subscriber's receive rate, and what the broker itself reports for the
// slow session (ADMIN CLIENTS: queue_depth, dropped) and in total (ADMIN
// STATS: dropped).  The slow subscriber stays alive — it keeps sending
// HEARTBEAT — it just never reads again, as a stuck consumer would.
//
// Raw v1 DEALER peers as in throughput.cpp, each on its own ZeroMQ context.
// The publisher asks for a PUBACK every --ack-every messages; PUBACK.dropped
// (matching subscribers over their queue bound) is summed.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "proc_sample.hpp"
#include "scenario_peer.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::bench;

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = kDefaultEndpoint, server_key, pub_key, sub_key, admin_key, done_file;
  int size = 1024, fast = 2, broker_pid = 0, ack_every = 1000;
  double rate = 5000, seconds = 30, stop_after = 5, linger = 0;
  CLI::App app{
      "curvebus-bench-slow-subscriber: one stuck subscriber, fast ones, a steady publisher"};
  app.add_option("--endpoint", endpoint)->capture_default_str();
  app.add_option("--server-key", server_key, "Broker public key (Z85 or certificate)")->required();
  app.add_option("--pub-key", pub_key, "Publisher's secret certificate")->required();
  app.add_option("--sub-key", sub_key, "Subscribers' secret certificate")->required();
  app.add_option("--admin-key", admin_key, "An admin's secret certificate")->required();
  app.add_option("--broker-pid", broker_pid, "Broker process for RSS / CPU samples");
  app.add_option("--size", size, "Payload bytes")->capture_default_str();
  app.add_option("--rate", rate, "Publications per second")->capture_default_str();
  app.add_option("--seconds", seconds, "Publishing time")->capture_default_str();
  app.add_option("--stop-after", stop_after, "Seconds until the slow subscriber stops reading")
      ->capture_default_str();
  app.add_option("--fast", fast, "Fast subscribers")->capture_default_str();
  app.add_option("--ack-every", ack_every)->capture_default_str();
  app.add_option("--linger", linger, "Seconds to keep the slow subscriber connected at the end")
      ->capture_default_str();
  app.add_option("--done-file", done_file, "Touched when publishing is over (for admin checks)");
  CLI11_PARSE(app, argc, argv);

  const std::string server = load_server_key(server_key);
  const KeyPair pub_keys = load_secret(pub_key), sub_keys = load_secret(sub_key),
                admin_keys = load_secret(admin_key);
  std::atomic<int> ready{0};
  std::atomic<bool> failed{false}, quit{false}, slow_stopped{false};
  std::vector<std::atomic<std::uint64_t>> fast_count(static_cast<std::size_t>(fast));
  std::vector<std::uint64_t> fast_gaps(static_cast<std::size_t>(fast), 0);
  std::atomic<std::uint64_t> slow_count{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < fast; ++i) {
    threads.emplace_back([&, i] {
      zmq::context_t ctx(1);
      Peer p(ctx, endpoint, server, sub_keys);
      if (!p.register_peer("bench-fast-" + std::to_string(i + 1)) || !p.subscribe("slow/#")) {
        failed = true;
        ++ready;
        return;
      }
      ++ready;
      std::uint64_t expect = 0;
      while (!quit) {
        v1::Frame f;
        if (p.recv(f, 100)) {
          for (const auto& op : f.ops()) {
            if (op.has_ping()) p.pong(op.ping().nonce());
            if (!op.has_deliver()) continue;
            const auto seq = op.deliver().seq();
            if (expect && seq != expect) ++fast_gaps[static_cast<std::size_t>(i)];
            expect = seq + 1;
            fast_count[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
          }
        }
        if (Clock::now() - p.last_sent > std::chrono::milliseconds(500)) p.heartbeat();
      }
    });
  }
  threads.emplace_back([&] {
    zmq::context_t ctx(1);
    Peer p(ctx, endpoint, server, sub_keys, 1000);  // libzmq's default HWM
    if (!p.register_peer("bench-slow") || !p.subscribe("slow/#")) {
      failed = true;
      ++ready;
      return;
    }
    ++ready;
    const auto stop_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(stop_after));
    while (!quit && Clock::now() < stop_at) {
      v1::Frame f;
      if (p.recv(f, 50))
        for (const auto& op : f.ops()) {
          if (op.has_ping()) p.pong(op.ping().nonce());
          if (op.has_deliver()) ++slow_count;
        }
      if (Clock::now() - p.last_sent > std::chrono::milliseconds(500)) p.heartbeat();
    }
    slow_stopped = true;
    // Stuck: alive (HEARTBEAT every 500 ms, below the 1 s interval), never reads.
    while (!quit) {
      p.heartbeat();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  while (ready < fast + 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (failed) {
    std::fprintf(stderr, "bench: a subscriber could not register/subscribe\n");
    quit = true;
    for (auto& t : threads) t.join();
    return 2;
  }

  std::atomic<std::uint64_t> sent{0}, puback_dropped{0}, pubacks{0};
  std::atomic<bool> publishing{true}, sending{true};
  std::thread publisher([&] {
    zmq::context_t ctx(1);
    Peer pub(ctx, endpoint, server, pub_keys);
    if (!pub.register_peer("bench-publisher")) {
      std::fprintf(stderr, "bench: the publisher could not register\n");
      publishing = false;
      return;
    }
    v1::Op op;
    auto* p = op.mutable_publish();
    p->set_topic("slow/data");
    p->set_payload(std::string(static_cast<std::size_t>(size), 'x'));
    std::string bytes;
    const auto period = std::chrono::duration<double>(1.0 / rate);
    const auto total = static_cast<std::uint64_t>(seconds * rate);
    const auto start = Clock::now();
    auto drain = [&] {
      zmq::message_t m;
      while (pub.socket.recv(m, zmq::recv_flags::dontwait)) {
        v1::Frame f;
        if (!decode_frame(m.data(), m.size(), f)) continue;
        for (const auto& o : f.ops()) {
          if (o.has_ping()) pub.pong(o.ping().nonce());
          if (o.has_puback()) {
            ++pubacks;
            puback_dropped += o.puback().dropped();
          }
        }
      }
    };
    for (std::uint64_t i = 1; i <= total; ++i) {
      const auto due =
          start + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
      if (Clock::now() < due) std::this_thread::sleep_until(due);
      const bool ask = i % static_cast<std::uint64_t>(ack_every) == 0;
      p->set_ack(ask);
      p->set_request_id(ask ? pub.next_request++ : 0);
      bytes.clear();
      append_op(op, bytes);
      pub.socket.send(zmq::buffer(bytes), zmq::send_flags::none);
      ++sent;
      if (i % 64 == 0) drain();
    }
    sending = false;
    const auto until = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < until) {
      drain();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    publishing = false;
  });

  // Sampler: once a second, /proc and the broker's own view (ADMIN).
  zmq::context_t admin_ctx(1);
  Peer admin(admin_ctx, endpoint, server, admin_keys);
  if (!admin.register_peer("bench-admin")) {
    std::fprintf(stderr, "bench: the admin peer could not register\n");
    return 2;
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  std::printf(
      "| t s | slow reading | broker RSS MB | broker CPU %% | fast msg/s (each) | slow "
      "queue_depth | slow dropped | broker dropped |\n|---|---|---|---|---|---|---|---|\n");
  std::vector<std::uint64_t> last(static_cast<std::size_t>(fast), 0);
  long last_ticks = broker_pid ? proc_cpu_ticks(broker_pid) : 0;
  long rss_max_after_stop = 0, rss_min_after_stop = 0;
  std::vector<double> fast_rates_after_stop;
  const auto t0 = Clock::now();
  auto last_t = t0;
  std::uint64_t slow_dropped = 0, slow_depth = 0, broker_dropped = 0;
  while (publishing) {
    std::this_thread::sleep_until(last_t + std::chrono::seconds(1));
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last_t).count();
    last_t = now;
    std::string rates;
    for (int i = 0; i < fast; ++i) {
      const auto c = fast_count[static_cast<std::size_t>(i)].load();
      const double r = static_cast<double>(c - last[static_cast<std::size_t>(i)]) / dt;
      last[static_cast<std::size_t>(i)] = c;
      rates += (i ? " / " : "") + std::to_string(static_cast<long>(r));
      if (slow_stopped && sending) fast_rates_after_stop.push_back(r);
    }
    v1::Op q;
    q.mutable_admin()->set_request_id(admin.next_request++);
    q.mutable_admin()->set_command(v1::ADMIN_CLIENTS);
    v1::Op a;
    if (admin.request(q, v1::Op::kAdminReply, 2000, &a))
      for (const auto& c : a.admin_reply().clients())
        if (c.client_name() == "bench-slow") {
          slow_dropped = c.dropped();
          slow_depth = c.queue_depth();
        }
    q.mutable_admin()->set_request_id(admin.next_request++);
    q.mutable_admin()->set_command(v1::ADMIN_STATS);
    if (admin.request(q, v1::Op::kAdminReply, 2000, &a))
      broker_dropped = a.admin_reply().status().counters().dropped();
    const long rss = broker_pid ? proc_rss_kb(broker_pid) : 0;
    const long ticks = broker_pid ? proc_cpu_ticks(broker_pid) : 0;
    if (slow_stopped) {
      rss_max_after_stop = std::max(rss_max_after_stop, rss);
      rss_min_after_stop = rss_min_after_stop ? std::min(rss_min_after_stop, rss) : rss;
    }
    std::printf("| %.0f | %s | %.1f | %.0f | %s | %llu | %llu | %llu |\n",
                std::chrono::duration<double>(now - t0).count(), slow_stopped ? "no" : "yes",
                static_cast<double>(rss) / 1024,
                100.0 * static_cast<double>(ticks - last_ticks) / static_cast<double>(hz) / dt,
                rates.c_str(), static_cast<unsigned long long>(slow_depth),
                static_cast<unsigned long long>(slow_dropped),
                static_cast<unsigned long long>(broker_dropped));
    std::fflush(stdout);
    last_ticks = ticks;
  }
  publisher.join();
  if (!done_file.empty()) std::ofstream(done_file) << "done\n";
  const auto linger_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(linger));
  while (Clock::now() < linger_end) {  // the admin peer stays alive too
    admin.heartbeat();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  quit = true;
  for (auto& t : threads) t.join();

  std::sort(fast_rates_after_stop.begin(), fast_rates_after_stop.end());
  std::printf("\nsummary size=%d rate=%.0f sent=%llu fast_received=", size, rate,
              static_cast<unsigned long long>(sent.load()));
  std::uint64_t gaps = 0;
  for (int i = 0; i < fast; ++i) {
    std::printf("%s%llu", i ? "/" : "",
                static_cast<unsigned long long>(fast_count[static_cast<std::size_t>(i)].load()));
    gaps += fast_gaps[static_cast<std::size_t>(i)];
  }
  std::printf(
      " fast_gaps=%llu fast_rate_min_after_stop=%.0f slow_received=%llu slow_dropped=%llu "
      "broker_dropped=%llu puback_dropped=%llu pubacks=%llu rss_after_stop_mb=%.1f..%.1f\n",
      static_cast<unsigned long long>(gaps),
      fast_rates_after_stop.empty() ? 0.0 : fast_rates_after_stop.front(),
      static_cast<unsigned long long>(slow_count.load()),
      static_cast<unsigned long long>(slow_dropped),
      static_cast<unsigned long long>(broker_dropped),
      static_cast<unsigned long long>(puback_dropped.load()),
      static_cast<unsigned long long>(pubacks.load()),
      static_cast<double>(rss_min_after_stop) / 1024,
      static_cast<double>(rss_max_after_stop) / 1024);
  return 0;
}
