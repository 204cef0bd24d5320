// curvebus-bench-storm: hostile connection attempts against a broker for a
// given time, to measure legitimate traffic while it lasts (run-all runs the
// latency scenario with and without it).  Each attempt is one of: a CURVE
// peer with a fresh key the allow-list does not know, a plaintext ZeroMQ
// peer, or a raw TCP connection sending garbage.  Only 127.0.0.1 targets are
// accepted.  Prints the attempts made and how many got any answer (must be 0).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"

namespace {

using namespace curvebus;
using Clock = std::chrono::steady_clock;

struct Totals {
  std::atomic<long> curve{0}, plain{0}, tcp{0}, answered{0};
};

void raw_tcp(int port, const std::string& junk, Totals& t) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)!::write(fd, junk.data(), junk.size());
    ++t.tcp;
  }
  ::close(fd);
}

void zmq_attempt(zmq::context_t& ctx, const std::string& endpoint, const std::string& server_key,
                 bool curve, const std::string& junk, Totals& t) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  if (curve) {
    const KeyPair k = generate_keypair();  // unknown to the allow-list
    s.set(zmq::sockopt::curve_serverkey, server_key);
    s.set(zmq::sockopt::curve_publickey, k.public_key);
    s.set(zmq::sockopt::curve_secretkey, k.secret_key);
  }
  s.connect(endpoint);
  v1::Op reg;
  reg.mutable_register_()->set_request_id(1);
  const std::string bytes = encode_op(reg);
  (void)s.send(zmq::buffer(junk), zmq::send_flags::dontwait);
  (void)s.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::chrono::milliseconds(30)) > 0) ++t.answered;
  ++(curve ? t.curve : t.plain);
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint, server_key;
  double seconds = 5;
  int threads = 2;
  int pause_ms = 5;
  CLI::App app{"curvebus-bench-storm: unknown-key, plaintext and garbage connection attempts"};
  app.add_option("--endpoint", endpoint, "Broker endpoint, tcp://127.0.0.1:PORT")->required();
  app.add_option("--server-key", server_key, "Broker public key (Z85 or certificate)")->required();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--pause-ms", pause_ms, "Pause between attempts per thread")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (endpoint.rfind("tcp://127.", 0) != 0) {
    std::fprintf(stderr, "storm: only 127.0.0.0/8 endpoints are allowed\n");
    return 2;
  }
  auto server = resolve_public_key(server_key);
  if (!server) {
    std::fprintf(stderr, "storm: %s\n", server.status().message().c_str());
    return 1;
  }
  const int port = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, 4096);
  Totals totals;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      std::mt19937 rng(static_cast<unsigned>(i) + 1);
      std::uniform_int_distribution<int> byte(0, 255);
      for (long n = 0; Clock::now() < end; ++n) {
        std::string junk(64, '\0');
        for (auto& c : junk) c = static_cast<char>(byte(rng));
        switch ((n + i) % 3) {
          case 0:
            zmq_attempt(ctx, endpoint, *server, true, junk, totals);
            break;
          case 1:
            zmq_attempt(ctx, endpoint, *server, false, junk, totals);
            break;
          default:
            raw_tcp(port, junk, totals);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      }
    });
  }
  for (auto& t : pool) t.join();
  const double rate =
      static_cast<double>(totals.curve + totals.plain + totals.tcp) / std::max(seconds, 0.001);
  std::printf(
      "storm seconds=%.1f unknown_key=%ld plaintext=%ld raw_tcp=%ld attempts_per_s=%.0f "
      "answered=%ld\n",
      seconds, totals.curve.load(), totals.plain.load(), totals.tcp.load(), rate,
      totals.answered.load());
  return totals.answered == 0 ? 0 : 3;
}
