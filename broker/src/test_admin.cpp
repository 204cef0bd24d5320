// ADMIN, in process (testing/harness.hpp): only administrators are served;
// STATUS reports sessions, topics and counters; KICK and REVOKE end a name's
// sessions with an ERROR to each and an offline presence, and a revoked name
// cannot come back.
#include <catch2/catch.hpp>

#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker::testing;

TEST_CASE(
    "admin: every command from a name that is not an administrator is refused NOT_ADMIN, "
    "counted as a denial, and changes nothing",
    "[inproc][admin]") {
  Harness h;
  auto dev = h.open("dev");
  auto alex = h.open("alex");
  const auto before = h.status().counters().denials();
  for (auto command : {v1::ADMIN_STATUS, v1::ADMIN_KICK, v1::ADMIN_REVOKE, v1::ADMIN_RELOAD}) {
    INFO(v1::AdminCommand_Name(command));
    auto answer = h.request(alex, ops::admin(command, "dev"));
    REQUIRE(answer.has_error());
    CHECK(answer.error().code() == v1::ERROR_NOT_ADMIN);
    CHECK(answer.error().answers() == "admin");
  }
  CHECK(h.status().counters().denials() == before + 4);
  CHECK(h.registered(dev));
  CHECK(h.take(dev).empty());
  CHECK(h.request(dev, ops::admin(v1::ADMIN_REVOCATIONS)).admin_reply().revocations_size() == 0);
}

TEST_CASE(
    "admin: STATUS reports the live sessions, the topics and the counters of what was "
    "routed, audit events on $SYS/audit included",
    "[inproc][admin]") {
  Harness h;
  auto dev = h.open("dev");
  auto sub = h.open("dev");
  auto alex = h.open("alex");
  h.request(sub, ops::subscribe({"robot/#"}));
  const auto start = h.request(dev, ops::admin(v1::ADMIN_STATUS)).admin_reply().status();
  for (int i = 0; i < 3; ++i) h.send(alex, ops::publish("robot/alex/t", "x"));
  h.send(alex, ops::publish("robot/bob/t", "x"));  // denied
  auto answer = h.request(dev, ops::admin(v1::ADMIN_STATUS));
  REQUIRE(answer.has_admin_reply());
  CHECK(answer.admin_reply().command() == v1::ADMIN_STATUS);
  const auto& st = answer.admin_reply().status();
  CHECK(st.peers() == 3);
  // The audit trail is published too: the denial on $SYS/audit/acl_denied and
  // the first STATUS on $SYS/audit/admin (this one's is published after it).
  CHECK(st.topics() == start.topics() + 3);
  CHECK(st.counters().publications() == start.counters().publications() + 3 + 2);
  CHECK(st.counters().deliveries() == start.counters().deliveries() + 3);
  CHECK(st.counters().denials() == start.counters().denials() + 1);
  CHECK(st.counters().sessions_opened() == 3);
  CHECK_FALSE(st.broker_id().empty());
}

TEST_CASE(
    "admin: KICK ends every session of the name with ERROR KICKED, publishes it offline "
    "(kicked), and the name may register again",
    "[inproc][admin]") {
  Harness h;
  auto dev = h.open("dev");
  auto watcher = h.open("dev");
  h.request(watcher, ops::subscribe({"$SYS/presence/#"}));
  auto a1 = h.open("alex");
  auto a2 = h.open("alex");
  h.take(watcher);
  h.take(a1);
  h.take(a2);
  auto answer = h.request(dev, ops::admin(v1::ADMIN_KICK, "alex"));
  REQUIRE(answer.has_admin_reply());
  CHECK(answer.admin_reply().message() == "kicked 2 session(s) of 'alex'");
  for (const Peer* p : {&a1, &a2}) {
    const auto got = h.take(*p);
    const v1::Error* e = find_error(got, v1::ERROR_KICKED);
    REQUIRE(e != nullptr);
    CHECK(e->answers() == "session");
    CHECK_FALSE(h.registered(*p));
  }
  const auto seen = presences(h.take(watcher), "alex");
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().state() == "offline");
  CHECK(seen.back().reason() == "kicked");
  CHECK(seen.back().sessions() == 0);
  CHECK(h.registered(dev));

  auto after = h.request(a1, ops::publish("robot/alex/t", "x", true));
  CHECK(after.error().code() == v1::ERROR_NOT_REGISTERED);
  CHECK(h.open("alex").registered.name() == "alex");  // kicked, not revoked

  auto none = h.request(dev, ops::admin(v1::ADMIN_KICK, "nobody"));
  REQUIRE(none.has_error());
  CHECK(none.error().code() == v1::ERROR_NOT_FOUND);
}

TEST_CASE(
    "admin: REVOKE of a name ends its sessions with ERROR REVOKED, publishes it offline "
    "(revoked), lists the revocation, and refuses the name's key afterwards",
    "[inproc][admin]") {
  Harness h;
  auto dev = h.open("dev");
  auto watcher = h.open("dev");
  h.request(watcher, ops::subscribe({"$SYS/presence/#"}));
  auto alex = h.open("alex");
  h.take(watcher);
  h.take(alex);
  v1::Op op = ops::admin(v1::ADMIN_REVOKE, "alex");
  op.mutable_admin()->set_reason("lost robot");
  auto answer = h.request(dev, op);
  REQUIRE(answer.has_admin_reply());
  CHECK(answer.admin_reply().message().find("revoked name 'alex' (1 session(s) cut)") == 0);
  const auto cut = h.take(alex);
  const v1::Error* e = find_error(cut, v1::ERROR_REVOKED);
  REQUIRE(e != nullptr);
  CHECK(e->answers() == "session");
  CHECK_FALSE(h.registered(alex));
  const auto seen = presences(h.take(watcher), "alex");
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().state() == "offline");
  CHECK(seen.back().reason() == "revoked");

  // The cut connection and a new one with the same key are both refused.
  CHECK(h.request(alex, ops::publish("robot/alex/t", "x", true)).error().code() ==
        v1::ERROR_REVOKED);
  auto again = h.connect("alex");
  v1::Op reg;
  reg.mutable_register_()->set_client_name("again");
  auto refused = h.request(again, reg);
  REQUIRE(refused.has_error());
  CHECK(refused.error().code() == v1::ERROR_REVOKED);
  CHECK_FALSE(h.registered(again));

  auto list = h.request(dev, ops::admin(v1::ADMIN_REVOCATIONS)).admin_reply();
  REQUIRE(list.revocations_size() == 1);
  CHECK(list.revocations(0).kind() == "name");
  CHECK(list.revocations(0).value() == "alex");
  CHECK(list.revocations(0).by() == "dev");
  CHECK(list.revocations(0).reason() == "lost robot");
}
