// A peer that registers and then goes silent: it never reads or answers
// again.  Integration tests SIGKILL it (or leave it mute) to exercise the
// broker's timeout.  Usage: broker_silent_peer ENDPOINT SERVER_KEY SECRET_FILE
#include <chrono>
#include <cstdio>
#include <thread>

#include "curvebus/certificate.hpp"
#include "test_peer.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: broker_silent_peer ENDPOINT SERVER_KEY SECRET_FILE\n");
    return 2;
  }
  auto cert = curvebus::read_certificate(argv[3], true);
  if (!cert) {
    std::fprintf(stderr, "broker_silent_peer: %s\n", cert.status().message().c_str());
    return 1;
  }
  zmq::context_t ctx;
  curvebus::test::TestPeer peer(ctx, argv[1], argv[2], cert->keys);
  auto reply = peer.register_peer(curvebus::v1::ROLE_AGENT, 0, std::chrono::seconds(10));
  if (!reply || !reply->has_registered()) {
    std::fprintf(stderr, "broker_silent_peer: no REGISTERED\n");
    return 1;
  }
  std::printf("registered %s\n", reply->registered().session_id().c_str());
  std::fflush(stdout);
  while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
}
