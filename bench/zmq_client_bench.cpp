// curvebus-bench-zmq-client: the libzmq CURVE proxy (curvebus-bench-zmq-proxy
// --serve INFO, in its own process) measured with the same harness as
// curvebus, nats-server and Mosquitto (peer_bench.hpp): one ZMQ_PUB connected
// to the proxy's XSUB side and N ZMQ_SUBs to its XPUB side, each socket on its
// own context (its own I/O thread), all with the proxy's client key from INFO,
// high-water marks of --hwm on every socket as on the proxy's. The PUB has
// ZMQ_XPUB_NODROP set: at its high-water mark a send waits for room (at most
// 10 s) instead of dropping, so an open-loop publisher is held back by the
// proxy as TCP holds back nats-server's and Mosquitto's, rather than spinning
// a core on messages that go nowhere; what the proxy's XPUB drops for
// subscribers that fall behind shows up as `lost`.
// --plain: the proxy was started with --plain (no CURVE, no ZAP).
#include <zmq.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "peer_bench.hpp"

namespace {

struct Info {
  std::string in_addr, out_addr, server_pub, client_pub, client_sec;
};

void set_socket(void* s, const Info& info, bool plain, int hwm) {
  const int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (plain) return;
  zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, info.server_pub.data(), info.server_pub.size());
  zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, info.client_pub.data(), info.client_pub.size());
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, info.client_sec.data(), info.client_sec.size());
}

class ZmqPublisher : public peer_bench::Publisher {
 public:
  explicit ZmqPublisher(void* s) : s_(s) {}
  bool send(const char* data, std::size_t n) override { return zmq_send(s_, data, n, 0) >= 0; }

 private:
  void* s_;
};

}  // namespace

int main(int argc, char** argv) {
  peer_bench::Options o;
  std::string info_path;
  bool plain = false;
  int hwm = 100000;
  CLI::App app{"curvebus-bench-zmq-client: the libzmq CURVE proxy, 1 publisher -> N subscribers"};
  o.add_to(app, false);
  app.add_option("--info", info_path, "The --serve proxy's info file")->required();
  app.add_flag("--plain", plain, "The proxy runs without CURVE (--serve --plain)");
  app.add_option("--hwm", hwm, "SNDHWM/RCVHWM of every socket")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!o.valid()) return 1;
  Info info;
  {
    std::ifstream in(info_path);
    if (!(in >> info.in_addr >> info.out_addr >> info.server_pub >> info.client_pub >>
          info.client_sec)) {
      std::fprintf(stderr, "bench: cannot read %s\n", info_path.c_str());
      return 1;
    }
  }

  peer_bench::Sinks sinks(o.subscribers);
  std::atomic<bool> stop{false};
  std::vector<std::thread> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    subs.emplace_back([&, i] {
      peer_bench::Sink& sink = sinks[i];
      void* ctx = zmq_ctx_new();
      void* s = zmq_socket(ctx, ZMQ_SUB);
      set_socket(s, info, plain, hwm);
      zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
      const int timeout = 100;
      zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
      zmq_connect(s, info.out_addr.c_str());
      std::vector<char> buf(static_cast<std::size_t>(o.size) + 64);
      while (!stop.load(std::memory_order_relaxed)) {
        const int r = zmq_recv(s, buf.data(), buf.size(), 0);
        if (r > 0) sink.on_payload(buf.data(), static_cast<std::size_t>(r));
      }
      zmq_close(s);
      zmq_ctx_term(ctx);
    });
  }
  void* pub_ctx = zmq_ctx_new();
  void* p = zmq_socket(pub_ctx, ZMQ_PUB);
  set_socket(p, info, plain, hwm);
  const int one = 1, send_timeout_ms = 10000;
  zmq_setsockopt(p, ZMQ_XPUB_NODROP, &one, sizeof one);
  zmq_setsockopt(p, ZMQ_SNDTIMEO, &send_timeout_ms, sizeof send_timeout_ms);
  zmq_connect(p, info.in_addr.c_str());
  bool measured = false;
  {
    ZmqPublisher pub(p);
    peer_bench::Driver driver(o, pub, sinks);
    measured = driver.measure();
    stop = true;
    for (auto& t : subs) t.join();
    if (measured) driver.report(plain ? "zmq-proxy-plain" : "zmq-proxy-curve");
  }
  stop = true;
  for (auto& t : subs)
    if (t.joinable()) t.join();
  zmq_close(p);
  zmq_ctx_term(pub_ctx);
  return measured ? 0 : 2;
}
