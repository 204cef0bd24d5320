// curvebus-bench-idle-peers: holds N authenticated, registered, idle v1 peers
// on a broker, keeping the alive signal as the protocol asks (docs/protocol.md
// §4): each peer sends HEARTBEAT when it has sent nothing for one interval
// (the broker's default, agreed in REGISTERED) and answers every PING.
//
// The peers are DEALER sockets spread over --threads threads, each thread with
// its own ZeroMQ context (one I/O thread, ZMQ_MAX_SOCKETS raised).  A thread
// waits on the sockets' ZMQ_FDs with epoll and looks only at the sockets that
// were signalled (zmq_poll over thousands of sockets costs O(N) per wake-up,
// which starved this process of CPU at 10,000 peers and made the peers, not
// the broker, miss heartbeats).  Connecting
// is paced: each thread keeps at most --inflight handshakes + REGISTERs
// outstanding.  When all are registered (or --connect-timeout passed) one line
// goes to --ready-file; the peers then stay until SIGTERM/SIGINT, and a
// summary line (registered, expired, errors, pings answered) goes to stdout.
#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "scenario_peer.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::bench;

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) {
  g_stop = true;
}

struct Totals {
  std::atomic<std::uint64_t> created{0}, registered{0}, errors{0}, expired{0}, pings{0},
      heartbeats_in{0}, heartbeats_out{0};
  std::atomic<long> worst_quiet_ms{0};  // longest time a registered peer sent nothing
  std::atomic<long> worst_turn_ms{0};   // longest turn of a thread's loop
};

struct IdlePeer {
  explicit IdlePeer(zmq::context_t& ctx) : socket(ctx, zmq::socket_type::dealer) {}
  zmq::socket_t socket;
  Clock::time_point last_sent;
  bool registered = false;
};

void run_thread(int n, const std::string& endpoint, const std::string& server, const KeyPair& keys,
                int inflight, std::uint32_t heartbeat_ms, Clock::time_point connect_deadline,
                Totals& totals) {
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, n + 64);
  std::vector<std::unique_ptr<IdlePeer>> peers;
  peers.reserve(static_cast<std::size_t>(n));
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(256);
  std::vector<std::size_t> ready;  // sockets to look at without waiting
  int registered = 0;
  std::uint32_t interval_ms = 1000;  // replaced by the agreed interval
  auto send_op = [&](IdlePeer& p, const v1::Op& op) {
    const std::string bytes = encode_op(op);
    p.socket.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
    p.last_sent = Clock::now();
  };
  auto last_sweep = Clock::now();
  auto turn_start = Clock::now();
  while (!g_stop) {
    {
      const auto t = Clock::now();
      const long ms = static_cast<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(t - turn_start).count());
      if (ms > totals.worst_turn_ms) totals.worst_turn_ms = ms;
    }
    // Open more peers while fewer than `inflight` are waiting for REGISTERED.
    while (static_cast<int>(peers.size()) < n &&
           static_cast<int>(peers.size()) - registered < inflight &&
           Clock::now() < connect_deadline) {
      auto p = std::make_unique<IdlePeer>(ctx);
      p->socket.set(zmq::sockopt::linger, 0);
      p->socket.set(zmq::sockopt::curve_serverkey, server);
      p->socket.set(zmq::sockopt::curve_publickey, keys.public_key);
      p->socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
      p->socket.connect(endpoint);
      v1::Op op;
      op.mutable_register_()->set_request_id(1);
      op.mutable_register_()->set_client_name("curvebus-bench-idle");
      op.mutable_register_()->set_heartbeat_ms(heartbeat_ms);
      send_op(*p, op);  // queued by libzmq until the handshake completes
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = peers.size();
      ::epoll_ctl(ep, EPOLL_CTL_ADD, p->socket.get(zmq::sockopt::fd), &ev);
      peers.push_back(std::move(p));
      ready.push_back(peers.size() - 1);  // its signal may predate the epoll registration
      ++totals.created;
    }
    const int nready =
        ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), ready.empty() ? 50 : 0);
    turn_start = Clock::now();
    for (int k = 0; k < nready; ++k) ready.push_back(events[static_cast<std::size_t>(k)].data.u64);
    std::vector<std::size_t> now_ready;
    now_ready.swap(ready);
    for (std::size_t i : now_ready) {
      IdlePeer& p = *peers[i];
      zmq::message_t m;
      // ZMQ_FD only signals a change: read until ZMQ_EVENTS has no POLLIN.
      while ((p.socket.get(zmq::sockopt::events) & ZMQ_POLLIN) &&
             p.socket.recv(m, zmq::recv_flags::dontwait)) {
        v1::Frame f;
        if (!decode_frame(m.data(), m.size(), f)) continue;
        for (const auto& o : f.ops()) {
          if (o.has_registered()) {
            if (!p.registered) {
              p.registered = true;
              ++registered;
              ++totals.registered;
            }
            interval_ms = o.registered().heartbeat_ms();
          } else if (o.has_ping()) {
            v1::Op pong;
            pong.mutable_pong()->set_nonce(o.ping().nonce());
            send_op(p, pong);
            ++totals.pings;
          } else if (o.has_heartbeat()) {
            ++totals.heartbeats_in;
          } else if (o.has_error()) {
            ++totals.errors;
            if (o.error().code() == v1::ERROR_SESSION_EXPIRED && p.registered) {
              // The broker timed this peer out: count it and register again,
              // as a client would (docs/protocol.md §4).
              p.registered = false;
              --registered;
              --totals.registered;
              ++totals.expired;
              v1::Op op;
              op.mutable_register_()->set_request_id(2);
              op.mutable_register_()->set_client_name("curvebus-bench-idle");
              op.mutable_register_()->set_heartbeat_ms(heartbeat_ms);
              send_op(p, op);
            }
            if (totals.errors <= 5)
              std::fprintf(stderr, "idle-peers: broker error %s: %s\n",
                           error_code_name(o.error().code()).c_str(), o.error().message().c_str());
          }
        }
      }
    }
    // The peer's half of the alive signal: HEARTBEAT after one quiet interval.
    const auto now = Clock::now();
    if (now - last_sweep >= std::chrono::milliseconds(100)) {
      last_sweep = now;
      const auto quiet = std::chrono::milliseconds(interval_ms);
      for (std::size_t i = 0; i < peers.size(); ++i) {
        auto& p = peers[i];
        if (!p->registered || now - p->last_sent < quiet) continue;
        const long q = static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(now - p->last_sent).count());
        if (q > totals.worst_quiet_ms) totals.worst_quiet_ms = q;
        v1::Op hb;
        hb.mutable_heartbeat();
        send_op(*p, hb);
        ++totals.heartbeats_out;
        ready.push_back(i);  // a send may consume the socket's signal
      }
    }
  }
  for (auto& p : peers) p->socket.close();
  ::close(ep);
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = kDefaultEndpoint, server_key, key, ready_file;
  int peers = 1000, threads = 4, inflight = 200;
  double connect_timeout = 180;
  std::uint32_t heartbeat_ms = 0;
  CLI::App app{"curvebus-bench-idle-peers: N registered idle peers keeping the alive signal"};
  app.add_option("--endpoint", endpoint)->capture_default_str();
  app.add_option("--server-key", server_key, "Broker public key (Z85 or certificate)")->required();
  app.add_option("--key", key, "Peers' secret certificate")->required();
  app.add_option("--peers", peers)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--inflight", inflight, "Outstanding connects per thread")->capture_default_str();
  app.add_option("--connect-timeout", connect_timeout, "Seconds")->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "Requested interval (0 = broker default)")
      ->capture_default_str();
  app.add_option("--ready-file", ready_file, "Written when connecting is over");
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const std::string server = load_server_key(server_key);
  const KeyPair keys = load_secret(key);
  Totals totals;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(connect_timeout));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const int n = peers / threads + (t < peers % threads ? 1 : 0);
    pool.emplace_back(run_thread, n, endpoint, server, keys, inflight, heartbeat_ms, deadline,
                      std::ref(totals));
  }
  auto last_report = start;
  while (!g_stop && totals.registered < static_cast<std::uint64_t>(peers) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (Clock::now() - last_report > std::chrono::seconds(5)) {
      last_report = Clock::now();
      std::fprintf(stderr, "idle-peers: %llu/%d registered after %.1f s\n",
                   static_cast<unsigned long long>(totals.registered.load()), peers,
                   std::chrono::duration<double>(last_report - start).count());
    }
  }
  const double connect_s = std::chrono::duration<double>(Clock::now() - start).count();
  char line[256];
  std::snprintf(line, sizeof line, "peers=%d registered=%llu connect_s=%.1f\n", peers,
                static_cast<unsigned long long>(totals.registered.load()), connect_s);
  std::fputs(line, stdout);
  std::fflush(stdout);
  if (!ready_file.empty()) {
    std::ofstream(ready_file + ".tmp") << line;
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (auto& t : pool) t.join();
  std::printf(
      "final registered=%llu expired_and_reregistered=%llu errors=%llu pings_answered=%llu "
      "heartbeats_in=%llu "
      "heartbeats_out=%llu worst_quiet_ms=%ld worst_turn_ms=%ld\n",
      static_cast<unsigned long long>(totals.registered.load()),
      static_cast<unsigned long long>(totals.expired.load()),
      static_cast<unsigned long long>(totals.errors.load()),
      static_cast<unsigned long long>(totals.pings.load()),
      static_cast<unsigned long long>(totals.heartbeats_in.load()),
      static_cast<unsigned long long>(totals.heartbeats_out.load()), totals.worst_quiet_ms.load(),
      totals.worst_turn_ms.load());
  return 0;
}
