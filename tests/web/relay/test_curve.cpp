// A real CurveZMQ session through curvebus-web: libzmq DEALERs with CURVE
// keys connect to a bridge of the test's own that speaks WebSocket to the
// relay's /bus, so every byte crosses the relay as a browser's would.  The
// broker is the real curvebus-broker.  What the relay carried is recorded
// and searched for the topic and the payload.
#include <catch2/catch.hpp>

#include "relay_env.hpp"
#include "test_peer.hpp"

namespace curvebus::web::test {

using curvebus::test::BrokerHarness;
using curvebus::test::TestPeer;

TEST_CASE(
    "a libzmq CURVE client works through the relay, and the relayed bytes hold no topic or "
    "payload in clear",
    "[web][curve]") {
  TempDir tmp("curvebus-web-curve");
  BrokerHarness broker(CURVEBUS_BROKER_BIN, tmp.path());
  broker.add_client({"webpub", {"lab/#"}, {}, false, "client"});
  broker.add_client({"websub", {}, {"lab/#"}, false, "client"});
  REQUIRE(broker.start());
  RelayProcess relay(tmp.path(),
                     {"--broker", broker.endpoint(), "--server-key", broker.server_public_key()});
  REQUIRE(relay.started());
  WsBridge bridge(relay.port());

  zmq::context_t ctx;
  TestPeer sub(ctx, bridge.endpoint(), broker.server_public_key(), broker.keys_of("websub"));
  const auto registered = sub.register_peer(v1::ROLE_CLIENT, 0, std::chrono::seconds(10));
  REQUIRE(registered);
  REQUIRE(registered->has_registered());
  CHECK(registered->registered().name() == "websub");
  const auto subscribed = sub.subscribe({"lab/#"});
  REQUIRE(subscribed);
  REQUIRE(subscribed->has_suback());

  TestPeer pub(ctx, bridge.endpoint(), broker.server_public_key(), broker.keys_of("webpub"));
  REQUIRE(pub.register_peer(v1::ROLE_CLIENT, 0, std::chrono::seconds(10)));
  const std::string topic = "lab/relay-capture-topic-5e1f";
  const std::string payload = "relay capture payload, plain text 8c2d";
  const auto ack = pub.publish(topic, payload, true);
  REQUIRE(ack);
  CHECK(ack->has_puback());
  const auto delivered = sub.wait_deliver(topic, std::chrono::seconds(5));
  REQUIRE(delivered);
  CHECK(delivered->payload() == payload);

  CHECK(bridge.connections() == 2);
  const std::string up = bridge.to_broker(), down = bridge.to_client();
  // It is ZMTP 3 with CURVE that crossed the relay (greeting signature and
  // mechanism, the handshake's command names are in clear by design) ...
  REQUIRE(up.size() > 64);
  REQUIRE(down.size() > 64);
  CHECK(static_cast<unsigned char>(up[0]) == 0xFF);
  CHECK(static_cast<unsigned char>(up[9]) == 0x7F);
  CHECK(up.find("CURVE") != std::string::npos);
  CHECK(up.find("HELLO") != std::string::npos);
  CHECK(up.find("INITIATE") != std::string::npos);
  CHECK(down.find("WELCOME") != std::string::npos);
  CHECK(down.find("READY") != std::string::npos);
  // ... and neither the topic nor the payload appears in either direction,
  // nor any recognisable part of them.
  for (const std::string* carried : {&up, &down}) {
    CHECK(carried->find(topic) == std::string::npos);
    CHECK(carried->find(payload) == std::string::npos);
    CHECK(carried->find("relay-capture") == std::string::npos);
    CHECK(carried->find("plain text") == std::string::npos);
    CHECK(carried->find("lab/") == std::string::npos);
  }
  const auto h = relay.healthz();
  CHECK(h.at("connections.relaysTotal") == 2);
  CHECK(h.at("bytes.toBroker") > 0);
  CHECK(h.at("bytes.toBrowser") > 0);
}

}  // namespace curvebus::web::test
