// The one harness every system of the throughput and latency comparison is
// measured with (curvebus through its public client library in
// curvebus-bench-client, nats-server in curvebus-bench-nats, Mosquitto in
// curvebus-bench-mqtt, the libzmq CURVE proxy in curvebus-bench-zmq-client):
// options, the per-subscriber counters, the publisher loop (open loop, paced,
// or a fixed rate for latency), the search for the highest rate with < 1 %
// loss, the CPU of the server process and of this one, and the one result
// line each run prints.
//
// A client plugs in a Publisher (send / flush / service) and feeds each
// subscriber's payloads to its Sink from that subscriber's own thread.
// Thread use: the Driver runs on the publishing thread; Sinks are written by
// their subscriber's thread and read live (atomics) by the Driver.
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h>

#include "proc_sample.hpp"

namespace peer_bench {

using Clock = std::chrono::steady_clock;

struct Options {
  int size = 64;
  int subscribers = 1;
  double seconds = 5;
  int port = 0;
  bool tls = false;
  std::string cafile;
  bool search = false;
  double latency_rate = 0;  // > 0: latency mode at this fixed rate
  int server_pid = 0;       // > 0: the server's CPU over the measured run is reported

  // `port_required`: false for a client that finds its server another way.
  void add_to(CLI::App& app, bool port_required = true) {
    auto* port_opt = app.add_option("--port", port, "Server port on 127.0.0.1");
    if (port_required) port_opt->required();
    app.add_option("--server-pid", server_pid,
                   "The server's process: its CPU % over the measured run is reported");
    app.add_option("--size", size, "Payload bytes")->capture_default_str();
    app.add_option("--subscribers", subscribers)->capture_default_str();
    app.add_option("--seconds", seconds, "Length of the measured run")->capture_default_str();
    app.add_flag("--tls", tls,
                 "Connect with TLS (the server certificate checked against --cafile)");
    app.add_option("--cafile", cafile, "CA certificate that signed the server's");
    app.add_flag("--search", search,
                 "Pace the publisher at the highest rate with < 1 % loss (found by short trials); "
                 "without it (and without --latency) the publisher runs open loop, as fast as "
                 "the client lets it");
    app.add_option("--latency", latency_rate,
                   "Latency mode: publish at this fixed rate (msg/s), timestamps in the payload, "
                   "percentiles at the subscribers");
  }
  bool valid() const {
    if (tls && cafile.empty()) {
      std::fprintf(stderr, "bench: --tls needs --cafile\n");
      return false;
    }
    if (size < 16 || subscribers < 1 || seconds <= 0) {
      std::fprintf(stderr, "bench: --size >= 16, --subscribers >= 1, --seconds > 0\n");
      return false;
    }
    return true;
  }
};

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Payload layout: byte 0 is 'w' (warm-up probe) or 'x' (counted); bytes 1..8
// carry the send time (steady_clock ns) in latency mode.
constexpr char kWarm = 'w';
constexpr char kData = 'x';

// One subscriber's counters. Written only by that subscriber's thread; the
// counter is atomic (and on its own cache line) so the driver may read it live.
struct alignas(64) Sink {
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> ready{false};
  std::vector<std::int64_t> latencies_ns;  // read by the driver only after the run
  const std::atomic<bool>* recording = nullptr;

  void on_payload(const char* p, std::size_t n) {
    if (n == 0) return;
    if (p[0] == kWarm) {
      if (!ready.load(std::memory_order_relaxed)) ready.store(true, std::memory_order_release);
      return;
    }
    received.store(received.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (n >= 9 && recording != nullptr && recording->load(std::memory_order_relaxed)) {
      std::int64_t sent;
      std::memcpy(&sent, p + 1, sizeof sent);
      latencies_ns.push_back(now_ns() - sent);
    }
  }
};

struct Sinks {
  std::vector<std::unique_ptr<Sink>> all;
  std::atomic<bool> recording{false};

  explicit Sinks(int n) {
    for (int i = 0; i < n; ++i) {
      all.push_back(std::make_unique<Sink>());
      all.back()->recording = &recording;
    }
  }
  Sink& operator[](int i) { return *all[static_cast<std::size_t>(i)]; }
  std::uint64_t total() const {
    std::uint64_t t = 0;
    for (const auto& s : all) t += s->received.load(std::memory_order_relaxed);
    return t;
  }
  std::vector<std::uint64_t> each() const {
    std::vector<std::uint64_t> v;
    for (const auto& s : all) v.push_back(s->received.load(std::memory_order_relaxed));
    return v;
  }
  bool all_ready() const {
    for (const auto& s : all)
      if (!s->ready.load(std::memory_order_acquire)) return false;
    return true;
  }
  // Until the subscribers' counts stop moving (a backlog from the previous
  // trial must not count in the next), at most `limit`.
  void quiesce(std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) const {
    const auto deadline = Clock::now() + limit;
    std::uint64_t before = total();
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::uint64_t now = total();
      if (now == before) return;
      before = now;
    }
  }
};

// The client's publishing side.
class Publisher {
 public:
  virtual ~Publisher() = default;
  // Queues or sends one message; false if the client refused it.
  virtual bool send(const char* data, std::size_t n) = 0;
  // Sends whatever the client buffers.
  virtual void flush() {}
  // Answers the server between pacing ticks (PING and the like).
  virtual void service() {}
};

struct TrialResult {
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;          // by the end of the drain
  std::uint64_t delivered_at_stop = 0;  // when the publisher stopped
  std::vector<std::uint64_t> per_sub;   // delivered to each subscriber by the end of the drain
  double seconds = 0;                   // time spent publishing
  // Delivered (all subscribers) from 20 % into the run to its end, and that
  // span: the steady rate, without the first queues filling.
  std::uint64_t delivered_steady = 0;
  double steady_seconds = 0;
  double server_cpu = -1;    // % of one core while publishing; < 0: not measured
  double client_cpu = -1;    // this process (publisher and subscribers), % of one core
  double drain_seconds = 0;  // from the publisher's stop to the count of `delivered`
};

// CPU time of a process and of this one, between start() and stop().
class CpuMeter {
 public:
  explicit CpuMeter(int server_pid) : server_pid_(server_pid) {}
  void start() {
    t0_ = Clock::now();
    self0_ = curvebus::bench::proc_cpu_ticks(::getpid());
    if (server_pid_ > 0) server0_ = curvebus::bench::proc_cpu_ticks(server_pid_);
  }
  // % of one core since start(): {server (-1 without a pid), this process}.
  std::pair<double, double> stop() const {
    const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
    auto pct = [&](long ticks) {
      return secs > 0 ? 100.0 * static_cast<double>(ticks) / hz / secs : 0;
    };
    const double self = pct(curvebus::bench::proc_cpu_ticks(::getpid()) - self0_);
    const double server =
        server_pid_ > 0 ? pct(curvebus::bench::proc_cpu_ticks(server_pid_) - server0_) : -1;
    return {server, self};
  }

 private:
  int server_pid_;
  Clock::time_point t0_;
  long self0_ = 0, server0_ = 0;
};

class Driver {
 public:
  Driver(const Options& o, Publisher& pub, Sinks& sinks)
      : o_(o), pub_(pub), sinks_(sinks), payload_(static_cast<std::size_t>(o.size), kData) {}

  // Probes until every subscriber has seen a message end to end.
  bool warm_up() {
    std::string warm(static_cast<std::size_t>(o_.size), kWarm);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!sinks_.all_ready() && Clock::now() < deadline) {
      pub_.send(warm.data(), warm.size());
      pub_.flush();
      pub_.service();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!sinks_.all_ready()) {
      std::fprintf(stderr, "bench: subscribers did not come up\n");
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sinks_.quiesce();
    return true;
  }

  // Publishes at `rate` msg/s (0: as fast as possible) for `secs`. In latency
  // mode every message carries its send time and goes out at once; otherwise
  // 256 messages per pacing tick. `full_drain`: afterwards, wait until every
  // subscriber has everything or nothing moved for 2 s (at most 60 s: a
  // client may hold many seconds of publications in its socket's pipe; on a
  // loaded machine a pipeline can stall for half a second), so that `lost` is
  // what never arrives; otherwise a 300 ms drain (the search: a backlog
  // worked off only later is loss at that rate).
  TrialResult trial(double rate, double secs, bool latency, bool full_drain = false) {
    sinks_.quiesce();
    const std::vector<std::uint64_t> before_each = sinks_.each();
    const std::uint64_t before = sinks_.total();
    TrialResult r;
    CpuMeter cpu(o_.server_pid);
    cpu.start();
    const auto t0 = Clock::now();
    const Clock::time_point end =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
    const Clock::time_point mark =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs * 0.2));
    bool marked = false;
    std::uint64_t at_mark = 0;
    Clock::time_point mark_time = t0;
    const int per_tick = latency ? 1 : 256;
    for (auto now = Clock::now(); now < end; now = Clock::now()) {
      if (!marked && now >= mark) {
        marked = true;
        at_mark = sinks_.total();
        mark_time = now;
      }
      for (int k = 0; k < per_tick; ++k) {
        if (latency) {
          const std::int64_t t = now_ns();
          std::memcpy(payload_.data() + 1, &t, sizeof t);
        }
        if (pub_.send(payload_.data(), payload_.size())) ++r.sent;
      }
      pub_.flush();
      pub_.service();
      if (rate > 0) {
        const auto due =
            t0 + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(static_cast<double>(r.sent) / rate));
        std::this_thread::sleep_until(std::min(due, end));
      }
    }
    pub_.flush();
    const auto stopped = Clock::now();
    r.seconds = std::chrono::duration<double>(stopped - t0).count();
    const std::uint64_t at_stop = sinks_.total();
    std::tie(r.server_cpu, r.client_cpu) = cpu.stop();
    r.delivered_at_stop = at_stop - before;
    if (marked) {
      r.delivered_steady = at_stop - at_mark;
      r.steady_seconds = std::chrono::duration<double>(stopped - mark_time).count();
    } else {
      r.delivered_steady = r.delivered_at_stop;
      r.steady_seconds = r.seconds;
    }
    const std::uint64_t expected = r.sent * static_cast<std::uint64_t>(o_.subscribers);
    if (full_drain) {
      const auto deadline = Clock::now() + std::chrono::seconds(60);
      std::uint64_t last = sinks_.total();
      auto last_move = Clock::now();
      while (sinks_.total() - before < expected && Clock::now() < deadline &&
             Clock::now() - last_move < std::chrono::milliseconds(2000)) {
        pub_.flush();
        pub_.service();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        const std::uint64_t now_total = sinks_.total();
        if (now_total != last) {
          last = now_total;
          last_move = Clock::now();
        }
      }
    } else {
      // What arrived during the trial and a short drain counts (as in
      // zmq_proxy.cpp): a backlog that a broker only works off later is loss
      // at this rate. The next trial starts after it is gone.
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    r.delivered = sinks_.total() - before;
    r.drain_seconds = std::chrono::duration<double>(Clock::now() - stopped).count();
    const std::vector<std::uint64_t> after_each = sinks_.each();
    for (std::size_t i = 0; i < after_each.size(); ++i)
      r.per_sub.push_back(after_each[i] - before_each[i]);
    return r;
  }

  // More than 1 % lost, or more than 5 % still on the way when the publisher
  // stopped: the drain pause alone would let a 1 s trial pass a rate ~30 %
  // above what the broker sustains, its queues absorbing the excess.
  bool lossy(const TrialResult& t) const {
    const double expected = static_cast<double>(t.sent) * static_cast<double>(o_.subscribers);
    return static_cast<double>(t.delivered) < 0.99 * expected ||
           static_cast<double>(t.delivered_at_stop) < 0.95 * expected;
  }

  // Highest rate with < 1 % loss that the publisher also reaches (a publisher
  // held back by TCP is not a rate the broker sustains): 1 s trials growing by
  // 25 % (or halving when the first fails), then three bisection steps.
  double search() {
    // A failed trial is tried once more before it counts: on a shared
    // machine one busy second would otherwise end the search far too low.
    auto ok_at = [&](double rate) {
      for (int attempt = 0; attempt < 2; ++attempt) {
        const TrialResult t = trial(rate, 1.0, false);
        const bool reached = static_cast<double>(t.sent) >= 0.97 * rate * t.seconds;
        const bool ok = reached && !lossy(t);
        std::fprintf(stderr, "bench: trial %.0f/s sent %llu delivered %llu (%llu at stop) -> %s\n",
                     rate, static_cast<unsigned long long>(t.sent),
                     static_cast<unsigned long long>(t.delivered),
                     static_cast<unsigned long long>(t.delivered_at_stop),
                     ok ? "ok" : (reached ? "lossy" : "publisher behind"));
        if (ok) return true;
      }
      return false;
    };
    double lo = 0, hi = 0, r = 100000;
    if (ok_at(r)) {
      lo = r;
      for (r *= 1.25; r < 2e7 && ok_at(r); r *= 1.25) lo = r;
      hi = r;
    } else {
      hi = r;
      for (r /= 2; r >= 1000; r /= 2) {
        if (ok_at(r)) {
          lo = r;
          break;
        }
        hi = r;
      }
      if (lo == 0) return 1000;
    }
    for (int i = 0; i < 3; ++i) {
      const double mid = (lo + hi) / 2;
      if (ok_at(mid))
        lo = mid;
      else
        hi = mid;
    }
    return lo;
  }

  // The whole run (warm-up, search or latency, the measured trial). The
  // caller stops its subscribers, then calls report().
  bool measure() {
    if (!warm_up()) return false;
    if (o_.latency_rate > 0) {
      std::size_t per_sub = static_cast<std::size_t>(o_.latency_rate * o_.seconds * 1.2) + 1024;
      for (auto& s : sinks_.all) s->latencies_ns.reserve(per_sub);
      // One short unrecorded second first: connections and caches settle.
      trial(o_.latency_rate, 1.0, true);
      sinks_.recording = true;
      result_ = trial(o_.latency_rate, o_.seconds, true, true);
      sinks_.recording = false;
      return true;
    }
    if (!o_.search) {
      // Open loop: as fast as the client takes publications, then every
      // subscriber drained, so that `lost` counts only what never arrives.
      result_ = trial(0, o_.seconds, false, true);
      return true;
    }
    double rate = search();
    result_ = trial(rate, o_.seconds, false);
    // Short trials can pass a rate that a longer run does not sustain (or
    // the machine got busier): step down by 10 %, at most 3 times, and say so.
    while (steps_down_ < 3 && lossy(result_)) {
      ++steps_down_;
      rate *= 0.9;
      std::fprintf(stderr, "bench: measured run lossy, again at %.0f/s\n", rate);
      result_ = trial(rate, o_.seconds, false);
    }
    return true;
  }

  // Prints the one result line. `system` like "nats-tls"; `extra` is appended.
  // delivered_rate: in open-loop runs the steady rate at the subscribers
  // (all of them, from 20 % into the run to its end); in paced runs what
  // arrived during the run and a 300 ms drain, over the run. lost: per
  // subscriber, publications sent minus received, summed (lost_per_sub lists
  // them). server_cpu / client_cpu: % of one core while publishing.
  void report(const std::string& system, const std::string& extra = "") {
    const TrialResult& t = result_;
    if (o_.latency_rate > 0) {
      print_latency(system, t, extra);
      return;
    }
    const std::uint64_t expected = t.sent * static_cast<std::uint64_t>(o_.subscribers);
    const std::uint64_t lost = expected > t.delivered ? expected - t.delivered : 0;
    const double rate = o_.search ? static_cast<double>(t.delivered) / t.seconds
                                  : static_cast<double>(t.delivered_steady) / t.steady_seconds;
    std::printf(
        "system=%s%s size=%d subscribers=%d seconds=%.2f sent=%llu publish_rate=%.0f/s "
        "delivered=%llu delivered_rate=%.0f/s lost=%llu loss=%.2f%% lost_per_sub=%s "
        "server_cpu=%s client_cpu=%.0f%% drain_s=%.1f steps_down=%d%s\n",
        system.c_str(), o_.search ? "-paced" : "", o_.size, o_.subscribers, t.seconds,
        static_cast<unsigned long long>(t.sent), static_cast<double>(t.sent) / t.seconds,
        static_cast<unsigned long long>(t.delivered), rate, static_cast<unsigned long long>(lost),
        expected ? 100.0 * static_cast<double>(lost) / static_cast<double>(expected) : 0.0,
        per_sub_lost(t).c_str(), cpu_text(t.server_cpu).c_str(), t.client_cpu, t.drain_seconds,
        steps_down_, extra.c_str());
    std::fflush(stdout);
  }

 private:
  static std::string cpu_text(double pct) {
    if (pct < 0) return "?";
    char b[32];
    std::snprintf(b, sizeof b, "%.0f%%", pct);
    return b;
  }
  std::string per_sub_lost(const TrialResult& t) const {
    std::string out;
    for (std::uint64_t got : t.per_sub) {
      if (!out.empty()) out += "/";
      out += std::to_string(t.sent > got ? t.sent - got : 0);
    }
    return out.empty() ? "-" : out;
  }

  // Same line and percentile method as bench/latency.cpp and zmq_proxy.cpp
  // --latency (rank = p x samples, clamped), with loss and delivered_rate.
  void print_latency(const std::string& system, const TrialResult& t, const std::string& extra) {
    std::vector<std::int64_t> all;
    for (auto& s : sinks_.all)
      all.insert(all.end(), s->latencies_ns.begin(), s->latencies_ns.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
      if (all.empty()) return 0.0;
      auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(all.size()));
      if (rank >= all.size()) rank = all.size() - 1;
      return static_cast<double>(all[rank]) / 1e3;
    };
    const std::uint64_t expected = t.sent * static_cast<std::uint64_t>(o_.subscribers);
    const std::uint64_t lost = expected > t.delivered ? expected - t.delivered : 0;
    std::printf(
        "system=%s size=%d subscribers=%d rate=%.0f achieved_rate=%.0f samples=%zu lost=%llu "
        "loss=%.2f%% delivered_rate=%.0f/s p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
        "server_cpu=%s client_cpu=%.0f%%%s\n",
        system.c_str(), o_.size, o_.subscribers, o_.latency_rate,
        static_cast<double>(t.sent) / t.seconds, all.size(), static_cast<unsigned long long>(lost),
        expected ? 100.0 * static_cast<double>(lost) / static_cast<double>(expected) : 0.0,
        static_cast<double>(t.delivered) / t.seconds, pct(50), pct(99), pct(99.9),
        all.empty() ? 0.0 : static_cast<double>(all.back()) / 1e3, cpu_text(t.server_cpu).c_str(),
        t.client_cpu, extra.c_str());
    std::fflush(stdout);
  }

  const Options& o_;
  Publisher& pub_;
  Sinks& sinks_;
  std::string payload_;
  TrialResult result_;
  int steps_down_ = 0;
};

}  // namespace peer_bench
