// curvebus-bench-client: curvebus measured the way its users send and
// receive, through the public C++ client library: one curvebus::Client
// publishes with Client::publish(topic, payload) (no ack), and N other Clients
// (separate connections, each with its own I/O thread) count deliveries in
// their Client::subscribe handlers. The harness (peer_bench.hpp) is the one
// nats-server, Mosquitto and the libzmq CURVE proxy are measured with; the
// line it prints also carries what only curvebus counts:
//   broker_dropped   the broker's `dropped` counter (ADMIN STATUS), the run's
//                    increase: deliveries dropped for subscribers over their
//                    queue bound
//   sequence_gaps    deliveries whose seq skipped ahead, summed over the
//                    subscribers' ClientCounters
//   queue_full, errors   the publisher's ClientCounters
//
// --role pub|sub (the callgrind runs, bench/run-callgrind): one Client per
// process, a fixed --count of publications, coordinated through files in
// --sync DIR so that the instruction counts can be zeroed once everything is
// connected and warm:
//   sub: subscribes; writes DIR/sub.warm at its first warm-up probe, then
//        DIR/sub.count (deliveries so far) every 100 ms and DIR/sub.done when
//        --count measured deliveries have arrived; exits on SIGTERM/SIGINT.
//   pub: sends warm-up probes until DIR/sub.warm exists, writes DIR/pub.ready,
//        waits for DIR/go, publishes --count payloads as fast as publish()
//        takes them but never more than --window ahead of the subscriber's
//        DIR/sub.count (so that nothing is dropped when the processes run at
//        valgrind's pace), writes DIR/pub.sent; exits on SIGTERM/SIGINT.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_client.hpp"
#include "curvebus/client.hpp"
#include "peer_bench.hpp"

namespace {

using peer_bench::Clock;

const char* const kTopic = "bench/data";

using bench_client::connect_client;
using bench_client::Where;

// The broker's dropped counter, or -1 when ADMIN STATUS is refused or
// unanswered (three tries of 10 s: a broker may still be working off a
// backlog).
long long broker_dropped(curvebus::Client& c) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = c.admin(curvebus::v1::ADMIN_STATUS, "", std::chrono::seconds(10));
    if (r) return static_cast<long long>(r->status().counters().dropped());
    std::fprintf(stderr, "bench: ADMIN STATUS: %s\n", r.status().message().c_str());
  }
  return -1;
}

class ClientPublisher : public peer_bench::Publisher {
 public:
  explicit ClientPublisher(curvebus::Client& c) : c_(c) {}
  bool send(const char* data, std::size_t n) override {
    payload_.assign(data, n);  // the public API takes a std::string; no allocation after the first
    const curvebus::Status s = c_.publish(kTopic, payload_);
    if (!s && refusals_++ == 0)
      std::fprintf(stderr, "bench: publish refused: %s %s\n", s.code().c_str(),
                   s.message().c_str());
    return s.ok();
  }

 private:
  curvebus::Client& c_;
  std::string payload_;
  std::uint64_t refusals_ = 0;
};

bool file_exists(const std::string& path) {
  return static_cast<bool>(std::ifstream(path));
}

void write_file(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path + ".tmp");
    out << text << "\n";
  }
  std::rename((path + ".tmp").c_str(), path.c_str());
}

std::atomic<bool> g_quit{false};
extern "C" void on_signal(int) {
  g_quit = true;
}

// --role sub / pub (see the file comment).
std::uint64_t read_count(const std::string& path) {
  std::uint64_t n = 0;
  std::ifstream in(path);
  in >> n;
  return n;
}

int run_role(const Where& w, const std::string& role, std::uint64_t count, std::uint64_t window,
             int size, const std::string& dir) {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  auto c = connect_client(w, "bench-" + role);
  if (!c) return 2;
  if (role == "sub") {
    std::atomic<std::uint64_t> got{0};
    std::atomic<bool> warm{false};
    const curvebus::Status s = c->subscribe({kTopic}, [&](const curvebus::Message& m) {
      if (m.payload.empty()) return;
      if (m.payload[0] == peer_bench::kWarm)
        warm.store(true, std::memory_order_relaxed);
      else
        got.store(got.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    });
    if (!s) {
      std::fprintf(stderr, "bench: subscribe: %s\n", s.message().c_str());
      return 2;
    }
    bool warm_written = false, done_written = false;
    std::uint64_t written = ~std::uint64_t{0};
    while (!g_quit) {
      if (!warm_written && warm.load()) {
        write_file(dir + "/sub.warm", "1");
        warm_written = true;
      }
      const std::uint64_t n = got.load();
      if (n != written) {
        write_file(dir + "/sub.count", std::to_string(n));
        written = n;
      }
      if (!done_written && n >= count) {
        const auto k = c->counters();
        write_file(dir + "/sub.done",
                   std::to_string(n) + " sequence_gaps=" + std::to_string(k.sequence_gaps));
        done_written = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }
  // pub
  std::string warm(static_cast<std::size_t>(size), peer_bench::kWarm);
  const auto warm_deadline = Clock::now() + std::chrono::seconds(120);  // slow under valgrind
  while (!g_quit && !file_exists(dir + "/sub.warm") && Clock::now() < warm_deadline) {
    c->publish(kTopic, warm);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!file_exists(dir + "/sub.warm")) {
    std::fprintf(stderr, "bench: the subscriber never saw a warm-up probe\n");
    return 2;
  }
  write_file(dir + "/pub.ready", "1");
  while (!g_quit && !file_exists(dir + "/go"))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string payload(static_cast<std::size_t>(size), peer_bench::kData);
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;  // what the subscriber had counted when last read
  for (std::uint64_t i = 0; i < count && !g_quit; ++i) {
    if (i % 1000 == 0 || i >= acked + window) {
      acked = read_count(dir + "/sub.count");
      while (i >= acked + window && !g_quit) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        acked = read_count(dir + "/sub.count");
      }
    }
    if (c->publish(kTopic, payload)) ++sent;
  }
  const auto k = c->counters();
  write_file(dir + "/pub.sent",
             std::to_string(sent) + " queue_full=" + std::to_string(k.queue_full));
  while (!g_quit) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  peer_bench::Options o;
  Where w;
  std::string role, sync_dir;
  std::uint64_t count = 200000, window = 5000;
  CLI::App app{
      "curvebus-bench-client: curvebus through its public client library, 1 publisher -> N "
      "subscribers"};
  o.add_to(app, false);
  app.add_option("--endpoint", w.endpoint, "Broker endpoint (default: tcp://127.0.0.1:PORT)");
  app.add_option("--home", w.home, "curvebus home of the broker (its endpoint and keys)");
  app.add_option("--server-key", w.server_key, "Broker public key (Z85 or certificate)");
  app.add_option("--key", w.key, "This client's secret certificate");
  app.add_option("--role", role, "pub or sub: one side alone, for bench/run-callgrind")
      ->check(CLI::IsMember({"pub", "sub"}));
  app.add_option("--count", count, "--role: publications")->capture_default_str();
  app.add_option("--sync", sync_dir, "--role: directory of the coordination files");
  app.add_option("--window", window, "--role pub: publications ahead of the subscriber, at most")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (w.endpoint.empty() && o.port > 0) w.endpoint = "tcp://127.0.0.1:" + std::to_string(o.port);
  if (!role.empty()) {
    if (sync_dir.empty()) {
      std::fprintf(stderr, "bench: --role needs --sync\n");
      return 1;
    }
    return run_role(w, role, count, window, o.size, sync_dir);
  }
  if (o.tls) {
    std::fprintf(stderr, "bench: curvebus has no TLS; CURVE is always on\n");
    return 1;
  }
  if (!o.valid()) return 1;

  peer_bench::Sinks sinks(o.subscribers);
  std::vector<std::unique_ptr<curvebus::Client>> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    auto c = connect_client(w, "bench-sub-" + std::to_string(i));
    if (!c) return 2;
    peer_bench::Sink& sink = sinks[i];
    const curvebus::Status s = c->subscribe({kTopic}, [&sink](const curvebus::Message& m) {
      sink.on_payload(m.payload.data(), m.payload.size());
    });
    if (!s) {
      std::fprintf(stderr, "bench: subscribe: %s\n", s.message().c_str());
      return 2;
    }
    subs.push_back(std::move(c));
  }
  auto pc = connect_client(w, "bench-pub");
  if (!pc) return 2;
  const long long dropped_before = broker_dropped(*pc);
  ClientPublisher pub(*pc);
  peer_bench::Driver driver(o, pub, sinks);
  const bool measured = driver.measure();
  const long long dropped_after = broker_dropped(*pc);
  std::uint64_t gaps = 0, reconnects = pc->counters().reconnects;
  for (auto& s : subs) {
    const auto k = s->counters();
    gaps += k.sequence_gaps;
    reconnects += k.reconnects;
  }
  const auto pk = pc->counters();
  for (auto& s : subs) s->close();
  pc->close();
  if (!measured) return 2;
  const std::string dropped = dropped_before >= 0 && dropped_after >= 0
                                  ? std::to_string(dropped_after - dropped_before)
                                  : std::string("?");
  driver.report("curvebus",
                " broker_dropped=" + dropped + " sequence_gaps=" + std::to_string(gaps) +
                    " queue_full=" + std::to_string(pk.queue_full) + " errors=" +
                    std::to_string(pk.errors) + " reconnects=" + std::to_string(reconnects));
  return 0;
}
