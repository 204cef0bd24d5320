// REGISTER, in process (testing/harness.hpp): identity is the key the
// handshake proved, so the name and role come from the allow-list; provides
// outside the ACL are reported; REGISTER again updates the same session; and
// the refusals (unknown key, chosen routing id, per-name session cap).
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;

namespace {

v1::Op register_op(v1::Role role = v1::ROLE_UNSPECIFIED, std::uint32_t heartbeat_ms = 0,
                   const std::vector<std::string>& provides = {}) {
  v1::Op op;
  auto* r = op.mutable_register_();
  r->set_role(role);
  r->set_heartbeat_ms(heartbeat_ms);
  r->set_client_name("test");
  for (const auto& t : provides) r->add_provides(t);
  return op;
}

std::vector<std::string> strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return {r.begin(), r.end()};
}

}  // namespace

TEST_CASE("register: a key that is not on the allow-list is refused REVOKED and gets no session",
          "[inproc][register]") {
  Harness h;
  Harness other;  // its keys are unknown here
  Peer stranger = h.connect("dev");
  stranger.key = other.key_of("dev");
  auto answer = h.request(stranger, register_op());
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_REVOKED);
  CHECK(answer.error().answers() == "register");
  CHECK(answer.error().message().find("unknown key") != std::string::npos);
  CHECK_FALSE(h.registered(stranger));
  CHECK(h.status().peers() == 0);
}

TEST_CASE("register: ops before REGISTER are answered NOT_REGISTERED and not served",
          "[inproc][register]") {
  Harness h;
  auto sub = h.open("dev");
  h.request(sub, ops::subscribe({"#"}));
  Peer early = h.connect("dev");
  auto answer = h.request(early, ops::publish("a/b", "x", true));
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_NOT_REGISTERED);
  CHECK(answer.error().answers() == "publish");
  CHECK(h.take(sub).empty());
}

TEST_CASE(
    "register: the name and role are the allow-list's whatever role the peer asks for, and "
    "the heartbeat is clamped to the broker's bounds with a timeout of three intervals",
    "[inproc][register]") {
  Harness::Options o;
  o.config.min_heartbeat_ms = 100;
  o.config.max_heartbeat_ms = 60000;
  Harness h(std::move(o));
  auto alex = h.connect("alex");
  auto a = h.request(alex, register_op(v1::ROLE_CLIENT, 10));
  REQUIRE(a.has_registered());
  CHECK(a.registered().name() == "alex");
  CHECK(a.registered().role() == v1::ROLE_AGENT);
  CHECK(a.registered().heartbeat_ms() == 100);
  CHECK(a.registered().timeout_ms() == 300);
  CHECK_FALSE(a.registered().session_id().empty());

  auto dev = h.connect("dev");
  auto d = h.request(dev, register_op(v1::ROLE_AGENT, 600000));
  REQUIRE(d.has_registered());
  CHECK(d.registered().name() == "dev");
  CHECK(d.registered().role() == v1::ROLE_CLIENT);
  CHECK(d.registered().heartbeat_ms() == 60000);
  CHECK(d.registered().session_id() != a.registered().session_id());
}

TEST_CASE(
    "register: provides the name may not publish (or that are not topics) come back in "
    "denied_provides, and only the allowed ones are listed in the directory",
    "[inproc][register]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.connect("alex");
  auto answer =
      h.request(alex, register_op(v1::ROLE_AGENT, 0,
                                  {"robot/alex/telemetry", "robot/bob/telemetry", "robot/alex/+"}));
  REQUIRE(answer.has_registered());
  CHECK(strings(answer.registered().denied_provides()) ==
        std::vector<std::string>{"robot/bob/telemetry", "robot/alex/+"});
  auto listing = h.request(dev, ops::topics("robot/#"));
  REQUIRE(listing.has_topics_reply());
  REQUIRE(listing.topics_reply().topics_size() == 1);
  CHECK(listing.topics_reply().topics(0).topic() == "robot/alex/telemetry");
  CHECK(strings(listing.topics_reply().topics(0).publishers()) == std::vector<std::string>{"alex"});
}

TEST_CASE(
    "register: REGISTER again on a live session keeps its session id and replaces its "
    "provides and heartbeat, without opening a second session",
    "[inproc][register]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.open("alex", RegisterSpec{1000, "first", {"robot/alex/a"}});
  const auto opened = h.status().counters().sessions_opened();
  const auto peers = h.status().peers();
  auto again = h.request(alex, register_op(v1::ROLE_AGENT, 2000, {"robot/alex/b"}));
  REQUIRE(again.has_registered());
  CHECK(again.registered().session_id() == alex.registered.session_id());
  CHECK(again.registered().heartbeat_ms() == 2000);
  CHECK(h.status().counters().sessions_opened() == opened);
  CHECK(h.status().peers() == peers);
  auto listing = h.request(dev, ops::topics("robot/alex/#")).topics_reply();
  REQUIRE(listing.topics_size() == 1);
  CHECK(listing.topics(0).topic() == "robot/alex/b");
}

TEST_CASE(
    "register: a name over max_sessions_per_name is refused RESOURCE_EXHAUSTED and counted, "
    "and accepted again once one of its sessions ends",
    "[inproc][register]") {
  Harness::Options o;
  o.config.max_sessions_per_name = 2;
  Harness h(std::move(o));
  auto first = h.open("alex");
  auto second = h.open("alex");
  auto third = h.connect("alex");
  auto answer = h.request(third, register_op());
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_RESOURCE_EXHAUSTED);
  CHECK(answer.error().answers() == "register");
  CHECK_FALSE(h.registered(third));
  CHECK(h.status().counters().sessions_refused() == 1);
  CHECK(h.open("dev").registered.name() == "dev");  // other names are not affected

  h.send(first, ops::bye("done"));
  CHECK_FALSE(h.registered(first));
  CHECK(h.request(third, register_op()).has_registered());
  CHECK(h.registered(second));
}

TEST_CASE("register: a connection that chose its own routing id is refused IDENTITY and counted",
          "[inproc][register]") {
  Harness h;
  auto p = h.connect("dev");
  p.chose_routing_id = true;
  auto answer = h.request(p, register_op());
  REQUIRE(answer.has_error());
  CHECK(answer.error().code() == v1::ERROR_IDENTITY);
  CHECK_FALSE(h.registered(p));
  CHECK(h.status().counters().routing_ids_refused() == 1);
}
