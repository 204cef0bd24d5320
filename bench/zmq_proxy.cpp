// curvebus-bench-zmq-proxy: the reference ceiling for a ZeroMQ broker on this
// machine — a plain libzmq XSUB/XPUB proxy with CURVE on both sides and a ZAP
// handler that admits only allow-listed client keys — measured the same way
// as curvebus-bench-throughput: one publisher, N subscribers, delivered
// messages/s counted at the subscribers, loss reported.
//
// Proxy, publisher and subscribers run in one process but on separate ZeroMQ
// contexts (separate I/O threads), as separate processes would.
//
// --latency RATE: publish at a fixed RATE (msg/s) instead, with the send time
// (steady_clock, ns) in the payload, and report one-way latency percentiles
// over all subscribers; the first --warmup seconds are not counted.
//
// --serve INFO: run only the proxy (with --heartbeat-ms, ZMTP heartbeats on its
// sockets) and write INFO = "xsub-endpoint xpub-endpoint server-public
// client-public client-secret"; INFO.count holds the number of completed
// CURVE handshakes on the XPUB side (a socket monitor), rewritten on change.
// --hold N --info INFO: in another process, hold N idle CURVE SUB connections
// to that proxy (at most --inflight handshakes outstanding) until SIGTERM.
// --slow INFO: against a --serve proxy, a publisher at --rate msg/s of --size
// bytes, 2 fast SUBs and one SUB that stops reading after --stop-after s;
// once a second the proxy's RSS/CPU (--proxy-pid) and the fast SUBs' rates.
#include <zmq.h>
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proc_sample.hpp"

namespace {

using curvebus::bench::proc_cpu_ticks;
using curvebus::bench::proc_rss_kb;

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()));
  return static_cast<double>(sorted[std::min(rank, sorted.size() - 1)]);
}

struct Keys {
  char pub[41], sec[41];
};

Keys keypair() {
  Keys k{};
  zmq_curve_keypair(k.pub, k.sec);
  return k;
}

std::string raw_key(const char* z85) {
  std::string raw(32, '\0');
  zmq_z85_decode(reinterpret_cast<std::uint8_t*>(raw.data()), z85);
  return raw;
}

// --plain: no CURVE and no ZAP anywhere, to show what encryption costs.
bool g_plain = false;
const char* system_name() {
  return g_plain ? "zmq-proxy-plain" : "zmq-proxy-curve";
}

void set_curve_server(void* s, const Keys& server) {
  if (g_plain) return;
  const int one = 1;
  zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server.sec, 40);
  zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "bench", 5);
}

void set_curve_client(void* s, const Keys& server, const Keys& client) {
  if (g_plain) return;
  zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server.pub, 40);
  zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, client.pub, 40);
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, client.sec, 40);
}

void set_hwm(void* s, int hwm) {
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
}

std::string recv_string(void* s) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  zmq_msg_recv(&m, s, 0);
  std::string out(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
  zmq_msg_close(&m);
  return out;
}

// RFC 27 ZAP handler: admits CURVE clients whose public key is allow-listed.
void zap_handler(void* ctx, const std::set<std::string>& allowed,
                 std::atomic<std::uint64_t>& denied) {
  void* zap = zmq_socket(ctx, ZMQ_REP);
  zmq_bind(zap, "inproc://zeromq.zap.01");
  while (true) {
    std::vector<std::string> parts;
    int more = 1;
    while (more) {
      parts.push_back(recv_string(zap));
      size_t len = sizeof more;
      zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &len);
    }
    if (parts.size() < 7) continue;
    const bool ok = parts[5] == "CURVE" && allowed.count(parts[6]) > 0;
    if (!ok) ++denied;
    const std::string reply[] = {
        "1.0", parts[1], ok ? "200" : "400", ok ? "OK" : "denied", ok ? "client" : "", ""};
    for (int i = 0; i < 6; ++i)
      zmq_send(zap, reply[i].data(), reply[i].size(), i < 5 ? ZMQ_SNDMORE : 0);
  }
}

// Counts completed CURVE handshakes minus disconnections on `s` into
// `path` (written through a rename, at most every 100 ms, when it changes).
void count_handshakes(void* ctx, void* s, const std::string& path) {
  zmq_socket_monitor(s, "inproc://bench-monitor",
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED);
  void* mon = zmq_socket(ctx, ZMQ_PAIR);
  zmq_connect(mon, "inproc://bench-monitor");
  const int timeout = 100;
  zmq_setsockopt(mon, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  long count = 0, written = -1;
  while (true) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, 0) >= 0) {
      std::uint16_t event = 0;
      if (zmq_msg_size(&m) >= 2) std::memcpy(&event, zmq_msg_data(&m), 2);
      zmq_msg_close(&m);
      recv_string(mon);  // the endpoint part
      count += event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? 1 : -1;
      continue;  // drain bursts before writing
    }
    zmq_msg_close(&m);
    if (count != written) {
      std::ofstream(path + ".tmp") << count << "\n";
      std::rename((path + ".tmp").c_str(), path.c_str());
      written = count;
    }
  }
}

long read_count(const std::string& path) {
  long n = 0;
  std::ifstream in(path);
  in >> n;
  return n;
}

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
  g_stop = true;
}

// --hold: N idle SUB connections to a --serve proxy, described by `info`.
int hold(const std::string& info, int n, int inflight, int heartbeat_ms, double connect_timeout) {
  std::ifstream in(info);
  std::string in_addr, out_addr, server_pub, client_pub, client_sec;
  if (!(in >> in_addr >> out_addr >> server_pub >> client_pub >> client_sec)) {
    std::fprintf(stderr, "bench: cannot read %s\n", info.c_str());
    return 1;
  }
  Keys server{}, client{};
  std::memcpy(server.pub, server_pub.data(), 40);
  std::memcpy(client.pub, client_pub.data(), 40);
  std::memcpy(client.sec, client_sec.data(), 40);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  void* ctx = zmq_ctx_new();
  zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, n + 64);
  const std::string count_file = info + ".count";
  const long base = read_count(count_file);
  std::vector<void*> socks;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(connect_timeout));
  long done = 0;
  while (!g_stop && Clock::now() < deadline) {
    done = read_count(count_file) - base;
    if (done >= n) break;
    while (static_cast<long>(socks.size()) < n &&
           static_cast<long>(socks.size()) - done < inflight) {
      void* s = zmq_socket(ctx, ZMQ_SUB);
      if (!s) {
        std::fprintf(stderr, "bench: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
        g_stop = true;
        break;
      }
      const int zero = 0;
      zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
      set_curve_client(s, server, client);
      if (heartbeat_ms > 0) {
        const int timeout = 3 * heartbeat_ms;
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &heartbeat_ms, sizeof heartbeat_ms);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
      }
      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
      zmq_connect(s, out_addr.c_str());
      socks.push_back(s);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::printf("peers=%d registered=%ld connect_s=%.1f\n", n, std::min<long>(done, n),
              std::chrono::duration<double>(Clock::now() - start).count());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::printf("final connected=%ld\n", read_count(count_file) - base);
  std::fflush(stdout);
  ::_exit(0);
}

// --slow: a steady publisher, 2 fast SUBs and one that stops reading, through
// a --serve proxy in another process (so its RSS is the proxy's alone).
int slow(const std::string& info, int proxy_pid, double rate, int size, double seconds,
         double stop_after) {
  std::ifstream in(info);
  std::string in_addr, out_addr, server_pub, client_pub, client_sec;
  if (!(in >> in_addr >> out_addr >> server_pub >> client_pub >> client_sec)) {
    std::fprintf(stderr, "bench: cannot read %s\n", info.c_str());
    return 1;
  }
  Keys server{}, client{};
  std::memcpy(server.pub, server_pub.data(), 40);
  std::memcpy(client.pub, client_pub.data(), 40);
  std::memcpy(client.sec, client_sec.data(), 40);
  const int fast = 2;
  std::atomic<bool> quit{false}, slow_stopped{false}, sending{true};
  std::atomic<int> ready{0};
  std::vector<std::atomic<std::uint64_t>> count(fast + 1);
  std::vector<std::thread> subs;
  for (int i = 0; i <= fast; ++i) {
    subs.emplace_back([&, i] {
      const bool is_slow = i == fast;
      void* ctx = zmq_ctx_new();
      void* s = zmq_socket(ctx, ZMQ_SUB);
      set_curve_client(s, server, client);
      if (!is_slow) set_hwm(s, 100000);  // the slow one keeps libzmq's default 1000
      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
      zmq_connect(s, out_addr.c_str());
      const int timeout = 50;
      zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
      std::vector<char> buf(static_cast<std::size_t>(size) + 16);
      bool counted = false;
      const auto start = Clock::now();
      while (!quit) {
        if (is_slow && counted &&
            Clock::now() - start > std::chrono::duration<double>(stop_after)) {
          slow_stopped = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        const int r = zmq_recv(s, buf.data(), buf.size(), 0);
        if (r < 0) continue;
        if (buf[0] == 'w') {
          if (!counted) {
            counted = true;
            ++ready;
          }
          continue;
        }
        count[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      }
      zmq_close(s);
      zmq_ctx_term(ctx);
    });
  }
  void* pub_ctx = zmq_ctx_new();
  void* p = zmq_socket(pub_ctx, ZMQ_PUB);
  set_curve_client(p, server, client);
  set_hwm(p, 100000);
  zmq_connect(p, in_addr.c_str());
  std::string msg(static_cast<std::size_t>(size), 'w');
  const auto warm_deadline = Clock::now() + std::chrono::seconds(10);
  while (ready <= fast && Clock::now() < warm_deadline) {
    zmq_send(p, msg.data(), msg.size(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ready <= fast) {
    std::fprintf(stderr, "bench: subscribers did not come up\n");
    ::_exit(2);
  }
  msg.assign(static_cast<std::size_t>(size), 'x');
  std::atomic<std::uint64_t> sent{0};
  std::thread publisher([&] {
    const auto period = std::chrono::duration<double>(1.0 / rate);
    const auto total = static_cast<std::uint64_t>(seconds * rate);
    const auto t0 = Clock::now();
    for (std::uint64_t i = 1; i <= total; ++i) {
      const auto due =
          t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
      if (Clock::now() < due) std::this_thread::sleep_until(due);
      zmq_send(p, msg.data(), msg.size(), 0);
      ++sent;
    }
    sending = false;
  });
  const long hz = ::sysconf(_SC_CLK_TCK);
  std::printf(
      "| t s | slow reading | proxy RSS MB | proxy CPU %% | fast msg/s (each) | slow received "
      "|\n|---|---|---|---|---|---|\n");
  std::vector<std::uint64_t> last(fast, 0);
  long last_ticks = proc_cpu_ticks(proxy_pid), rss_min = 0, rss_max = 0;
  double fast_min = 1e18;
  const auto t0 = Clock::now();
  auto last_t = t0;
  while (sending) {
    std::this_thread::sleep_until(last_t + std::chrono::seconds(1));
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last_t).count();
    last_t = now;
    std::string rates;
    for (int i = 0; i < fast; ++i) {
      const auto c = count[static_cast<std::size_t>(i)].load();
      const double r = static_cast<double>(c - last[static_cast<std::size_t>(i)]) / dt;
      last[static_cast<std::size_t>(i)] = c;
      rates += (i ? " / " : "") + std::to_string(static_cast<long>(r));
      if (slow_stopped && sending) fast_min = std::min(fast_min, r);
    }
    const long rss = proc_rss_kb(proxy_pid), ticks = proc_cpu_ticks(proxy_pid);
    if (slow_stopped) {
      rss_max = std::max(rss_max, rss);
      rss_min = rss_min ? std::min(rss_min, rss) : rss;
    }
    std::printf("| %.0f | %s | %.1f | %.0f | %s | %llu |\n",
                std::chrono::duration<double>(now - t0).count(), slow_stopped ? "no" : "yes",
                static_cast<double>(rss) / 1024,
                100.0 * static_cast<double>(ticks - last_ticks) / static_cast<double>(hz) / dt,
                rates.c_str(), static_cast<unsigned long long>(count[fast].load()));
    std::fflush(stdout);
    last_ticks = ticks;
  }
  publisher.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::printf(
      "\nsummary system=%s size=%d rate=%.0f sent=%llu fast_received=%llu/%llu "
      "fast_rate_min_after_stop=%.0f slow_received=%llu dropped=(not counted by libzmq) "
      "rss_after_stop_mb=%.1f..%.1f\n",
      system_name(), size, rate, static_cast<unsigned long long>(sent.load()),
      static_cast<unsigned long long>(count[0].load()),
      static_cast<unsigned long long>(count[1].load()), fast_min == 1e18 ? 0.0 : fast_min,
      static_cast<unsigned long long>(count[fast].load()), static_cast<double>(rss_min) / 1024,
      static_cast<double>(rss_max) / 1024);
  std::fflush(stdout);
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  int size = 64, subscribers = 1, port = 0;
  double seconds = 5;
  CLI::App app{
      "curvebus-bench-zmq-proxy: libzmq XSUB/XPUB proxy with CURVE + ZAP, 1 -> N throughput"};
  app.add_option("--size", size)->capture_default_str();
  app.add_option("--subscribers", subscribers)->capture_default_str();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--port", port, "First of two TCP ports (0: pick free ones)");
  bool search = false;
  app.add_flag("--plain", g_plain, "No CURVE, no ZAP: the cost of encryption, for comparison");
  app.add_flag("--search", search,
               "Pace the publisher at the highest rate with < 1 % loss (found by short trials)");
  double latency_rate = 0, warmup = 1;
  app.add_option("--latency", latency_rate,
                 "Publish at this fixed rate (msg/s) and report one-way latency percentiles");
  app.add_option("--warmup", warmup, "Latency mode: seconds published first, not counted")
      ->capture_default_str();
  std::string serve_info, hold_info;
  int hold_n = 0, inflight = 200, heartbeat_ms = 0;
  app.add_option("--serve", serve_info, "Run only the proxy; write its endpoints and keys here");
  app.add_option("--hold", hold_n, "Hold this many idle SUB connections to a --serve proxy");
  app.add_option("--info", hold_info, "--hold: the --serve proxy's info file");
  double connect_timeout = 120;
  app.add_option("--connect-timeout", connect_timeout, "--hold: seconds")->capture_default_str();
  app.add_option("--inflight", inflight, "--hold: outstanding handshakes")->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "--serve/--hold: ZMTP heartbeat interval (0 = off)")
      ->capture_default_str();
  std::string slow_info;
  int proxy_pid = 0, proxy_hwm = 100000;
  app.add_option("--hwm", proxy_hwm, "SNDHWM/RCVHWM of the proxy's and the benchmark's sockets")
      ->capture_default_str();
  double rate = 5000, stop_after = 5;
  app.add_option("--slow", slow_info, "Slow-subscriber run against the --serve proxy of this info");
  app.add_option("--proxy-pid", proxy_pid, "--slow: the proxy process (RSS / CPU samples)");
  app.add_option("--rate", rate, "--slow: publications per second")->capture_default_str();
  app.add_option("--stop-after", stop_after, "--slow: seconds until one subscriber stops reading")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (latency_rate > 0) size = std::max(size, 16);
  if (!slow_info.empty()) return slow(slow_info, proxy_pid, rate, size, seconds, stop_after);
  if (hold_n > 0) return hold(hold_info, hold_n, inflight, heartbeat_ms, connect_timeout);

  const Keys server = keypair(), pub_keys = keypair(), sub_keys = keypair();
  std::set<std::string> allowed{raw_key(pub_keys.pub), raw_key(sub_keys.pub)};
  std::atomic<std::uint64_t> denied{0};
  const int hwm = proxy_hwm;

  // The proxy.
  void* proxy_ctx = zmq_ctx_new();
  std::thread zap([&] { zap_handler(proxy_ctx, allowed, denied); });
  zap.detach();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  void* xsub = zmq_socket(proxy_ctx, ZMQ_XSUB);
  void* xpub = zmq_socket(proxy_ctx, ZMQ_XPUB);
  for (void* s : {xsub, xpub}) {
    set_curve_server(s, server);
    set_hwm(s, hwm);
    const int backlog = 4096;  // as the curvebus broker
    zmq_setsockopt(s, ZMQ_BACKLOG, &backlog, sizeof backlog);
    if (heartbeat_ms > 0) {
      const int timeout = 3 * heartbeat_ms;
      zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &heartbeat_ms, sizeof heartbeat_ms);
      zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    }
  }
  const std::string in_ep = port ? "tcp://127.0.0.1:" + std::to_string(port) : "tcp://127.0.0.1:*";
  const std::string out_ep =
      port ? "tcp://127.0.0.1:" + std::to_string(port + 1) : "tcp://127.0.0.1:*";
  if (zmq_bind(xsub, in_ep.c_str()) != 0 || zmq_bind(xpub, out_ep.c_str()) != 0) {
    std::fprintf(stderr, "bench: bind failed: %s\n", zmq_strerror(zmq_errno()));
    return 1;
  }
  char in_addr[256], out_addr[256];
  size_t len = sizeof in_addr;
  zmq_getsockopt(xsub, ZMQ_LAST_ENDPOINT, in_addr, &len);
  len = sizeof out_addr;
  zmq_getsockopt(xpub, ZMQ_LAST_ENDPOINT, out_addr, &len);
  if (!serve_info.empty()) {
    std::thread counter([&] { count_handshakes(proxy_ctx, xpub, serve_info + ".count"); });
    counter.detach();
    std::ofstream(serve_info + ".tmp") << in_addr << " " << out_addr << " " << server.pub << " "
                                       << sub_keys.pub << " " << sub_keys.sec << "\n";
    std::rename((serve_info + ".tmp").c_str(), serve_info.c_str());
    zmq_proxy(xsub, xpub, nullptr);  // until killed
    return 0;
  }
  std::thread proxy([&] { zmq_proxy(xsub, xpub, nullptr); });
  proxy.detach();

  // Subscribers, each on its own context.
  std::atomic<bool> publishing_done{false};
  std::atomic<int> ready{0};
  std::vector<std::uint64_t> received(static_cast<std::size_t>(subscribers), 0);
  std::vector<std::vector<std::int64_t>> latency_ns(static_cast<std::size_t>(subscribers));
  std::atomic<std::uint64_t> delivered_now{0};  // all subscribers, live
  std::vector<std::thread> subs;
  for (int i = 0; i < subscribers; ++i) {
    subs.emplace_back([&, i] {
      void* ctx = zmq_ctx_new();
      void* s = zmq_socket(ctx, ZMQ_SUB);
      set_curve_client(s, server, sub_keys);
      set_hwm(s, hwm);
      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
      zmq_connect(s, out_addr);
      const int timeout = 100;
      zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
      std::vector<char> buf(static_cast<std::size_t>(size) + 16);
      bool counted_ready = false;
      std::uint64_t n = 0;
      Clock::time_point first, last;
      auto idle_since = Clock::now();
      while (true) {
        const int r = zmq_recv(s, buf.data(), buf.size(), 0);
        const auto now = Clock::now();
        if (r < 0) {
          if (publishing_done && now - idle_since > std::chrono::milliseconds(1000)) break;
          continue;
        }
        idle_since = now;
        if (buf[0] == 'w') {  // warm-up probe
          if (!counted_ready) {
            counted_ready = true;
            ++ready;
          }
          continue;
        }
        if (buf[0] == 'm' && r >= 16) {  // latency mode, measured publication
          std::int64_t sent_ns = 0;
          std::memcpy(&sent_ns, buf.data() + 8, 8);
          latency_ns[static_cast<std::size_t>(i)].push_back(now_ns() - sent_ns);
        }
        if (n == 0) first = now;
        last = now;
        ++n;
        delivered_now.fetch_add(1, std::memory_order_relaxed);
      }
      received[static_cast<std::size_t>(i)] = n;
      zmq_close(s);
      zmq_ctx_term(ctx);
    });
  }

  void* pub_ctx = zmq_ctx_new();
  void* p = zmq_socket(pub_ctx, ZMQ_PUB);
  set_curve_client(p, server, pub_keys);
  set_hwm(p, hwm);
  zmq_connect(p, in_addr);
  // Until every subscriber is connected and subscribed end to end.
  std::string warm(static_cast<std::size_t>(size), 'w');
  const auto warm_deadline = Clock::now() + std::chrono::seconds(10);
  while (ready < subscribers && Clock::now() < warm_deadline) {
    zmq_send(p, warm.data(), warm.size(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (ready < subscribers) {
    std::fprintf(stderr, "bench: subscribers did not come up\n");
    return 2;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string payload(static_cast<std::size_t>(size), 'x');
  std::uint64_t sent = 0;
  // Publishes at `msgs_per_s` (0 = as fast as possible) for `secs`; returns
  // (sent, delivered to all subscribers during the trial plus a drain pause).
  auto trial = [&](double msgs_per_s, double secs) {
    const std::uint64_t before = delivered_now.load();
    std::uint64_t n = 0;
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration<double>(secs);
    while (Clock::now() < end) {
      for (int k = 0; k < 256; ++k)
        if (zmq_send(p, payload.data(), payload.size(), 0) >= 0) ++n;
      if (msgs_per_s > 0) {
        const auto due = t0 + std::chrono::duration<double>(static_cast<double>(n) / msgs_per_s);
        std::this_thread::sleep_until(std::min(due, end));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the pipes drain
    return std::make_pair(n, delivered_now.load() - before);
  };
  if (latency_rate > 0) {
    // Fixed schedule: sleep until the next slot, send a late slot at once.
    const auto warm_count = static_cast<std::uint64_t>(warmup * latency_rate);
    const auto total = warm_count + static_cast<std::uint64_t>(seconds * latency_rate);
    std::string msg(static_cast<std::size_t>(size), 'x');
    const auto period = std::chrono::duration<double>(1.0 / latency_rate);
    const auto t0 = Clock::now();
    for (std::uint64_t i = 0; i < total; ++i) {
      const auto due =
          t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i));
      if (Clock::now() < due) std::this_thread::sleep_until(due);
      msg[0] = i < warm_count ? 'u' : 'm';
      const std::int64_t t = now_ns();
      std::memcpy(msg.data() + 8, &t, 8);
      zmq_send(p, msg.data(), msg.size(), 0);
    }
    const double pub_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    publishing_done = true;
    for (auto& t : subs) t.join();
    std::vector<std::int64_t> all;
    for (const auto& v : latency_ns) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    const std::uint64_t expected = (total - warm_count) * static_cast<std::uint64_t>(subscribers);
    std::printf(
        "system=%s size=%d subscribers=%d rate=%.0f achieved_rate=%.0f samples=%zu "
        "lost=%llu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f zap_denied=%llu\n",
        system_name(), size, subscribers, latency_rate, static_cast<double>(total) / pub_seconds,
        all.size(),
        static_cast<unsigned long long>(expected > all.size() ? expected - all.size() : 0),
        percentile(all, 50) / 1e3, percentile(all, 99) / 1e3, percentile(all, 99.9) / 1e3,
        all.empty() ? 0.0 : static_cast<double>(all.back()) / 1e3,
        static_cast<unsigned long long>(denied.load()));
    std::fflush(stdout);
    ::_exit(0);
  }
  double rate_used = 0;
  if (search) {
    // Highest rate with < 1 % loss: grow by 25 % until loss appears.
    auto ok_at = [&](double r) {
      auto [n, got] = trial(r, 1.0);
      return static_cast<double>(got) >= 0.99 * static_cast<double>(n) * subscribers;
    };
    double best = 0, r = 100000;
    while (r < 2e7 && ok_at(r)) {
      best = r;
      r *= 1.25;
    }
    // Then narrow the step between the last good and the first bad rate.
    double lo = best, hi = r;
    for (int i = 0; i < 3 && lo > 0; ++i) {
      const double mid = (lo + hi) / 2;
      if (ok_at(mid))
        lo = mid;
      else
        hi = mid;
    }
    rate_used = lo > 0 ? lo : 100000;
  }
  // The measured run: delivered counts what reached the subscribers during
  // it (plus a short drain), so the search trials before it do not count.
  auto [n_final, got_final] = trial(rate_used, seconds);
  sent = n_final;
  publishing_done = true;
  for (auto& t : subs) t.join();
  const std::uint64_t expected = sent * static_cast<std::uint64_t>(subscribers);
  const std::uint64_t lost = expected > got_final ? expected - got_final : 0;
  std::printf(
      "system=%s%s size=%d subscribers=%d sent=%llu publish_rate=%.0f/s "
      "delivered=%llu "
      "delivered_rate=%.0f/s lost=%llu zap_denied=%llu\n",
      system_name(), search ? "-paced" : "", size, subscribers,
      static_cast<unsigned long long>(sent), static_cast<double>(sent) / seconds,
      static_cast<unsigned long long>(got_final), static_cast<double>(got_final) / seconds,
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(denied.load()));
  std::fflush(stdout);
  ::_exit(0);  // the proxy and ZAP threads block forever by design
}
