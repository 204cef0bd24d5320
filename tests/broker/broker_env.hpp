// Shared set-up for the broker's integration tests: a temp dir, a real
// curvebus-broker process (BrokerHarness) and raw test peers connected to it.
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "test_peer.hpp"

namespace curvebus::test {

struct BrokerEnv {
  explicit BrokerEnv(const std::vector<ClientSpec>& clients,
                     const std::vector<std::string>& extra_args = {})
      : tmp("curvebus-broker-test"), broker(CURVEBUS_BROKER_BIN, tmp.path()) {
    for (const auto& c : clients) broker.add_client(c);
    started = broker.start(extra_args);
  }
  ~BrokerEnv() { broker.stop(); }

  std::unique_ptr<TestPeer> connect(const std::string& name) {
    return std::make_unique<TestPeer>(ctx, broker.endpoint(), broker.server_public_key(),
                                      broker.keys_of(name));
  }
  // A connected and registered peer (fails the test otherwise).
  std::unique_ptr<TestPeer> registered(const std::string& name, std::uint32_t heartbeat_ms = 0) {
    auto peer = connect(name);
    auto reply = peer->register_peer(v1::ROLE_CLIENT, heartbeat_ms, std::chrono::seconds(10));
    REQUIRE(reply);
    REQUIRE(reply->has_registered());
    REQUIRE(reply->registered().name() == name);
    return peer;
  }
  // Admin STATUS counters via an admin peer.
  v1::Counters counters(TestPeer& admin) {
    auto r = admin.admin(v1::ADMIN_STATUS);
    REQUIRE(r);
    REQUIRE(r->has_admin_reply());
    return r->admin_reply().status().counters();
  }
  std::string log() { return broker.process().err() + broker.process().out(); }

  TempDir tmp;
  BrokerHarness broker;
  zmq::context_t ctx;
  bool started = false;
};

// Everyone: "admin" may do everything; "pub" publishes sensors/#; "sub" reads
// sensors/# and presence; "robot" is an agent on robot/{name}/#.
inline std::vector<ClientSpec> standard_clients() {
  return {
      {"admin", {"#"}, {"#", "$SYS/#"}, true, "client"},
      {"pub", {"sensors/#"}, {"sensors/#"}, false, "provider"},
      {"sub", {}, {"sensors/#", "$SYS/presence/#", "robot/#"}, false, "client"},
      {"robot", {"robot/{name}/#"}, {"robot/{name}/cmd"}, false, "agent"},
  };
}

}  // namespace curvebus::test
