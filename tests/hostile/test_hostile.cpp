// The hostile-peer suite (issue 10): every attack found against curvebus,
// replayed by attack clients of our own (attacker.hpp: raw ZeroMQ / CURVE
// sockets that choose routing ids, claim ids, send hand-made frames) against
// a real broker.  Each test asserts the attack's outcome AND that a
// legitimate client still works.  Timing appears only as generous liveness
// bounds; docs/security.md names the test for each threat.
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "curvebus/text.hpp"
#include "hostile_env.hpp"

using namespace curvebus;
using namespace curvebus::hostile;
using namespace curvebus::hostile::testing;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// A liveness bound for a legitimate client's round trip under attack: far
// above what a healthy broker needs (a few ms; the probe's p50 under a flood
// is ~8 ms), below the stalls the attacks caused before (many seconds).  A
// flood beside other tests on 2 cores once took a probe 1.29 s, so the bound
// is 2.5 s: it checks liveness, the benchmarks measure latency.
constexpr double kLivenessMs = 2500;

bool has_op(const std::vector<v1::Op>& ops, v1::Op::BodyCase body) {
  return std::any_of(ops.begin(), ops.end(),
                     [body](const v1::Op& o) { return o.body_case() == body; });
}

// dev publishes a command to bob and bob receives it: the legitimate path works.
void check_dev_reaches_bob(HostileEnv& env) {
  auto bob = env.registered("bob");
  auto ack = bob->subscribe_wait({"robot/bob/cmd"});
  REQUIRE(ack);
  REQUIRE(ack->has_suback());
  auto dev = env.registered("dev");
  auto r = dev->publish_wait("robot/bob/cmd", "legit");
  REQUIRE(r);
  REQUIRE(r->has_puback());
  auto d = bob->wait_for(v1::Op::kDeliver, 3000ms);
  REQUIRE(d);
  CHECK(d->deliver().payload() == "legit");
  CHECK(d->deliver().publisher() == "dev");
}

void print_probe(const char* attack, const ProbeReport& r) {
  WARN(attack << ": probe sent=" << r.sent << " received=" << r.received << " lost=" << r.lost
              << " p50=" << r.p50_ms << " ms p99=" << r.p99_ms << " ms max=" << r.max_ms << " ms");
}

void check_probe(const ProbeReport& r) {
  INFO("probe: " << r.problem);
  REQUIRE(r.started);
  CHECK(r.sent > 50);
  CHECK(r.lost == 0);
  CHECK(r.errors == 0);
  CHECK(r.max_ms < kLivenessMs);
}

std::string probe_bin() {
  return ROUTING_ID_PROBE_BIN;
}

}  // namespace

// ---------------------------------------------------------------- identity

TEST_CASE(
    "a dead session's routing id taken over by another key reaches nothing and closes "
    "the session",
    "[hostile][identity]") {
  HostileEnv env({}, "debug");
  REQUIRE(env.started);
  env.ops();  // watching presence
  auto bob = env.registered("bob");
  REQUIRE(bob->subscribe_wait({"robot/bob/cmd"}));

  // The victim: an admin whose DEALER chose an id that looks generated
  // (leading zero byte), so the broker cannot tell it from libzmq's own.
  const std::string stolen_id("\0VICT", 5);
  RawPeer::Options victim_options;
  victim_options.routing_id = stolen_id;
  auto victim = env.connect("dev", victim_options);
  auto reg = victim->register_wait(v1::ROLE_CLIENT, 10000, {}, 5000ms);  // timeout 30 s
  REQUIRE(reg);
  REQUIRE(reg->has_registered());
  auto status = victim->admin_wait(v1::ADMIN_STATUS);
  REQUIRE(status);
  REQUIRE(status->has_admin_reply());

  // The victim's connection drops; its session lives on until the broker's timeout.
  victim->close();
  std::this_thread::sleep_for(300ms);

  // alex reconnects with the same routing id and tries the admin's rights.
  RawPeer::Options attacker_options;
  attacker_options.routing_id = stolen_id;
  auto alex = env.connect("alex", attacker_options);
  std::vector<v1::Op> seen;
  for (int attempt = 0; attempt < 11 && !find_error(seen, v1::ERROR_IDENTITY); ++attempt) {
    alex->send_admin(v1::ADMIN_STATUS);
    alex->send_admin(v1::ADMIN_CLIENTS);
    alex->send_publish("robot/bob/cmd", "forward 100", true);
    for (auto& op : alex->collect(300ms)) seen.push_back(std::move(op));
  }
  INFO("attacker got " << seen.size() << " ops");
  CHECK_FALSE(has_op(seen, v1::Op::kAdminReply));
  CHECK_FALSE(has_op(seen, v1::Op::kPuback));
  CHECK(find_error(seen, v1::ERROR_IDENTITY) != nullptr);
  CHECK_FALSE(bob->wait_for(v1::Op::kDeliver, 1000ms));

  // The hijacked session is closed, counted and audited.
  auto gone = env.presence("dev", "offline");
  REQUIRE(gone);
  CHECK(gone->reason() == "identity");
  CHECK(env.counters().identity_mismatches() >= 1);
  auto line = env.wait_audit(audit_event("identity_mismatch", "dev"));
  REQUIRE(line);
  CHECK(field(*line, "sender_fp") == key_fingerprint(env.broker.keys_of("alex").public_key));
  CHECK(field(*line, "fp") == key_fingerprint(env.broker.keys_of("dev").public_key));
  CHECK(env.log().find("identity mismatch") != std::string::npos);

  check_dev_reaches_bob(env);
}

TEST_CASE("REGISTER from a peer that chose its own routing id is refused with ERROR IDENTITY",
          "[hostile][identity]") {
  HostileEnv env;
  REQUIRE(env.started);
  auto dev = env.registered("dev");
  REQUIRE(dev->subscribe_wait({"robot/#"}));

  RawPeer::Options o;
  o.routing_id = "alex-picked-this-id";
  auto alex = env.connect("alex", o);
  auto reply = alex->register_wait(v1::ROLE_AGENT, 10000, {}, 5000ms);
  REQUIRE(reply);
  REQUIRE(reply->has_error());
  CHECK(reply->error().code() == v1::ERROR_IDENTITY);
  // Nothing it sends afterwards is routed.
  alex->send_publish("robot/alex/telemetry", "spoof", false);
  CHECK_FALSE(dev->wait_for(v1::Op::kDeliver, 500ms));

  CHECK(env.counters().routing_ids_refused() >= 1);
  auto line = env.wait_audit(audit_event("routing_id_chosen", "alex"));
  REQUIRE(line);
  CHECK(field(*line, "fp") == key_fingerprint(env.broker.keys_of("alex").public_key));

  // The same key without a chosen id is served.
  auto legit = env.registered("alex");
  auto ack = legit->publish_wait("robot/alex/telemetry", "ok");
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  auto d = dev->wait_for(v1::Op::kDeliver, 3000ms);
  REQUIRE(d);
  CHECK(d->deliver().publisher() == "alex");
}

TEST_CASE("claiming the routing ids an unseeded ROUTER generates does not crash the broker",
          "[hostile][identity]") {
  TempDir scratch("curvebus-hostile-probe");
  // The ids an unseeded process hands out are the same in every run.  The
  // broker creates its ZAP handler (a REP socket, which libzmq builds on a
  // ROUTER: it draws a counter start too) before its ROUTER.
  auto first = test::run({probe_bin(), "--sockets-before", "1"}, scratch / "probe1");
  auto second = test::run({probe_bin(), "--sockets-before", "1"}, scratch / "probe2");
  REQUIRE(first.status == 0);
  REQUIRE(second.status == 0);
  const std::string id_hex = first.out.substr(0, first.out.find('\n'));
  CHECK(second.out.substr(0, second.out.find('\n')) == id_hex);
  auto id = from_hex(id_hex);
  REQUIRE(id);
  auto counter = routing_id_counter(*id);
  REQUIRE(counter);

  // The attack is real: on an unseeded ROUTER, claiming the next ids and
  // then connecting one ordinary peer makes libzmq abort.
  auto demo = test::run({probe_bin(), "--crash-demo", "--sockets-before", "1"}, scratch / "demo",
                        {}, 30000ms);
  INFO("crash demo stdout:\n" << demo.out << "stderr:\n" << demo.err);
  CHECK(demo.status == 128 + SIGABRT);
  CHECK(demo.err.find("Assertion failed") != std::string::npos);

  // Against the broker: alex claims that id and the next 40.
  HostileEnv env;
  REQUIRE(env.started);
  std::uint32_t claimed = 0;
  auto claims = claim_routing_ids(env.ctx, env.address(), env.broker.keys_of("alex"), *counter, 41,
                                  10000ms, &claimed);
  CHECK(claimed == 41);
  std::this_thread::sleep_for(200ms);

  // Twenty legitimate connections register, and the broker lives on.
  std::vector<std::unique_ptr<RawPeer>> legit;
  for (int i = 0; i < 20; ++i) {
    legit.push_back(env.connect("dev"));
    legit.back()->send_register(v1::ROLE_CLIENT, 10000);
  }
  int registered = 0;
  for (auto& peer : legit)
    if (auto r = peer->wait_for(v1::Op::kRegistered, 5000ms)) ++registered;
  CHECK(registered == 20);
  CHECK(env.broker.process().running());
  check_dev_reaches_bob(env);
  CHECK(env.broker.process().running());
}

// ---------------------------------------------------------------- keys

TEST_CASE(
    "reload cuts the session of a replaced key, and two keys under one name both work until "
    "one is removed",
    "[hostile][keys]") {
  const ClientSpec laptop{"laptop", {"laptop/#"}, {"laptop/#"}, false, "client"};
  HostileEnv env({}, "info", {laptop});
  REQUIRE(env.started);
  const KeyPair k1 = env.broker.keys_of("laptop");
  const KeyPair k2 = env.broker.stranger("laptop-2");
  const KeyPair k3 = env.broker.stranger("laptop-3");
  auto watcher = env.registered("dev");
  REQUIRE(watcher->subscribe_wait({"laptop/#"}));
  auto s1 = env.registered_key(k1, "laptop");

  // Replace k1 by k2 in the allow-list: the live k1 session is cut.
  env.write_acl(acl_block(laptop, k2.public_key), {"laptop"});
  CHECK(env.reload().find("1 sessions cut") != std::string::npos);
  auto cut = s1->wait_for(v1::Op::kError, 3000ms);
  REQUIRE(cut);
  CHECK(cut->error().code() == v1::ERROR_REVOKED);
  s1->send_publish("laptop/x", "after the cut", false);
  CHECK_FALSE(watcher->wait_for(v1::Op::kDeliver, 500ms));
  CHECK(env.refused(k1));
  CHECK(env.wait_audit(audit_event("session_cut", "laptop")));
  auto s2 = env.registered_key(k2, "laptop");

  // Rotation with overlap: a second block under the same name.
  env.write_acl(acl_block(laptop, k2.public_key) + acl_block(laptop, k3.public_key), {"laptop"});
  CHECK(env.reload().find("0 sessions cut") != std::string::npos);
  auto s3 = env.registered_key(k3, "laptop");
  for (auto* s : {s2.get(), s3.get()}) {
    auto ack = s->publish_wait("laptop/both", "hello");
    REQUIRE(ack);
    REQUIRE(ack->has_puback());
    auto d = watcher->wait_for(v1::Op::kDeliver, 3000ms);
    REQUIRE(d);
    CHECK(d->deliver().publisher() == "laptop");
  }

  // Removing k2's block cuts only k2's session.
  env.write_acl(acl_block(laptop, k3.public_key), {"laptop"});
  CHECK(env.reload().find("1 sessions cut") != std::string::npos);
  auto cut2 = s2->wait_for(v1::Op::kError, 3000ms);
  REQUIRE(cut2);
  CHECK(cut2->error().code() == v1::ERROR_REVOKED);
  auto ack = s3->publish_wait("laptop/k3", "still here");
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  CHECK(env.refused(k2));
}

TEST_CASE("a key revocation survives a restart and leaves the name's other key working",
          "[hostile][keys]") {
  const ClientSpec laptop{"laptop", {"laptop/#"}, {"laptop/#"}, false, "client"};
  HostileEnv env({}, "info", {laptop});
  REQUIRE(env.started);
  const KeyPair k1 = env.broker.keys_of("laptop");
  const KeyPair k2 = env.broker.stranger("laptop-2");
  const std::string both = acl_block(laptop, k1.public_key) + acl_block(laptop, k2.public_key);
  env.write_acl(both, {"laptop"});
  env.reload();
  auto s1 = env.registered_key(k1, "laptop");
  auto s2 = env.registered_key(k2, "laptop");

  const std::string fp1 = key_fingerprint(k1.public_key);
  auto r = env.ops().admin_wait(v1::ADMIN_REVOKE_KEY, fp1, "laptop stolen");
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  auto cut = s1->wait_for(v1::Op::kError, 3000ms);
  REQUIRE(cut);
  CHECK(cut->error().code() == v1::ERROR_REVOKED);
  auto ack = s2->publish_wait("laptop/ok", "k2 still works");
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  CHECK(test::read_file(env.broker.dir() + "/revoked.toml").find(k1.public_key) !=
        std::string::npos);
  auto line = env.wait_audit(audit_event("admin", "ops"));
  REQUIRE(line);

  // Restart: the allow-list still names k1, the revocation still holds.
  s1.reset();
  s2.reset();
  REQUIRE(env.restart());
  CHECK(env.refused(k1));
  env.write_acl(both, {"laptop"});
  env.reload();
  CHECK(env.refused(k1));
  auto again = env.registered_key(k2, "laptop");
  auto ack2 = again->publish_wait("laptop/ok", "k2 after restart");
  REQUIRE(ack2);
  REQUIRE(ack2->has_puback());
  auto list = env.ops().admin_wait(v1::ADMIN_REVOCATIONS);
  REQUIRE(list);
  REQUIRE(list->has_admin_reply());
  REQUIRE(list->admin_reply().revocations_size() == 1);
  CHECK(list->admin_reply().revocations(0).kind() == "key");
  CHECK(list->admin_reply().revocations(0).value() == fp1);
  CHECK(list->admin_reply().revocations(0).by() == "ops");
  CHECK(list->admin_reply().revocations(0).reason() == "laptop stolen");
}

TEST_CASE("revoking a name cuts every key of it, and unrevoke lets them back", "[hostile][keys]") {
  const ClientSpec laptop{"laptop", {"laptop/#"}, {"laptop/#"}, false, "client"};
  HostileEnv env({}, "info", {laptop});
  REQUIRE(env.started);
  const KeyPair k1 = env.broker.keys_of("laptop");
  const KeyPair k2 = env.broker.stranger("laptop-2");
  env.write_acl(acl_block(laptop, k1.public_key) + acl_block(laptop, k2.public_key), {"laptop"});
  env.reload();
  auto s1 = env.registered_key(k1, "laptop");
  auto s2 = env.registered_key(k2, "laptop");

  auto r = env.ops().admin_wait(v1::ADMIN_REVOKE, "laptop", "lost laptop");
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  for (auto* s : {s1.get(), s2.get()}) {
    auto cut = s->wait_for(v1::Op::kError, 3000ms);
    REQUIRE(cut);
    CHECK(cut->error().code() == v1::ERROR_REVOKED);
  }
  auto presence = env.presence("laptop", "offline");
  REQUIRE(presence);
  CHECK(presence->reason() == "revoked");
  CHECK(env.refused(k1));
  CHECK(env.refused(k2));

  auto lifted = env.ops().admin_wait(v1::ADMIN_UNREVOKE, "laptop");
  REQUIRE(lifted);
  REQUIRE(lifted->has_admin_reply());
  auto back1 = env.registered_key(k1, "laptop");
  auto back2 = env.registered_key(k2, "laptop");

  // The same by key: revoke k2 alone, lift it by its fingerprint.
  REQUIRE(env.ops().admin_wait(v1::ADMIN_REVOKE_KEY, k2.public_key));
  auto cut = back2->wait_for(v1::Op::kError, 3000ms);
  REQUIRE(cut);
  CHECK(cut->error().code() == v1::ERROR_REVOKED);
  CHECK(env.refused(k2));
  auto ack = back1->publish_wait("laptop/k1", "k1 unaffected");
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  auto unrevoke = env.ops().admin_wait(v1::ADMIN_UNREVOKE, key_fingerprint(k2.public_key));
  REQUIRE(unrevoke);
  REQUIRE(unrevoke->has_admin_reply());
  env.registered_key(k2, "laptop");
  CHECK(env.wait_audit([](const JsonObject& o) {
    return field(o, "event") == "admin" && field(o, "command") == "ADMIN_UNREVOKE";
  }));
}

TEST_CASE("expired and not-yet-valid keys are refused at the handshake", "[hostile][keys]") {
  const ClientSpec laptop{"laptop", {"laptop/#"}, {"laptop/#"}, false, "client"};
  HostileEnv env({}, "info", {laptop});
  REQUIRE(env.started);
  const KeyPair expired = env.broker.keys_of("laptop");
  const KeyPair future = env.broker.stranger("laptop-2");
  const KeyPair current = env.broker.stranger("laptop-3");
  env.write_acl(acl_block(laptop, expired.public_key, "not_after = 2021-01-01T00:00:00Z") +
                    acl_block(laptop, future.public_key, "not_before = 2099-01-01T00:00:00Z") +
                    acl_block(laptop, current.public_key, "not_after = 2099-01-01T00:00:00Z"),
                {"laptop"});
  env.reload();
  const auto before = env.counters().auth_denied();
  CHECK(env.refused(expired));
  CHECK(env.refused(future));
  CHECK(env.counters().auth_denied() >= before + 2);
  auto line1 = env.wait_audit([&](const JsonObject& o) {
    return field(o, "event") == "key_refused" && field(o, "reason") == "key expired";
  });
  CHECK(line1);
  auto line2 = env.wait_audit([&](const JsonObject& o) {
    return field(o, "event") == "key_refused" && field(o, "reason") == "key not yet valid";
  });
  CHECK(line2);
  auto ok = env.registered_key(current, "laptop");
  auto ack = ok->publish_wait("laptop/valid", "yes");
  REQUIRE(ack);
  CHECK(ack->has_puback());
}

TEST_CASE("a live session is cut when its key's not_after passes", "[hostile][keys]") {
  const ClientSpec laptop{"laptop", {"laptop/#"}, {"laptop/#"}, false, "client"};
  HostileEnv env({}, "info", {laptop});
  REQUIRE(env.started);
  const KeyPair k = env.broker.keys_of("laptop");
  const std::int64_t not_after_us = (wall_clock_us() / 1000000 + 3) * 1000000;  // 2-3 s ahead
  env.write_acl(acl_block(laptop, k.public_key, "not_after = " + toml_instant(not_after_us)),
                {"laptop"});
  env.reload();
  env.ops();  // watching presence
  auto s = env.registered_key(k, "laptop");
  auto ack = s->publish_wait("laptop/before", "valid");
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  REQUIRE(wall_clock_us() < not_after_us);

  auto cut = s->wait_for(v1::Op::kError, 8000ms);
  REQUIRE(cut);
  CHECK(cut->error().code() == v1::ERROR_KEY_EXPIRED);
  CHECK(wall_clock_us() >= not_after_us - 100000);
  auto presence = env.presence("laptop", "offline");
  REQUIRE(presence);
  CHECK(presence->reason() == "key_expired");
  CHECK(env.refused(k));
  check_dev_reaches_bob(env);
}

// ---------------------------------------------------------------- strings

TEST_CASE(
    "peer strings with newlines and ANSI escapes forge no log line and every audit line "
    "is JSON",
    "[hostile][strings]") {
  HostileEnv env({}, "debug");
  REQUIRE(env.started);
  // Each string tries to start a line that reads like the broker's own.
  const std::string forged = "1999-01-01T00:00:00.000 info session open name=dev fp=b2:FORGED";
  auto alex = env.connect("alex");
  alex->send_register(v1::ROLE_AGENT, 10000, {"robot/bob/cmd\n" + forged + " provides"},
                      "name\n" + forged + " client\x1b[2J\x1b[H",
                      "1.0\r\n" + forged + " version\x1b]0;owned\x07");
  REQUIRE(alex->wait_for(v1::Op::kRegistered, 5000ms));
  alex->send_publish("robot/bob/cmd\n" + forged + " topic", "x", true);
  alex->send_publish("robot/bob/cmd", "x\n" + forged + " payload", true);
  alex->send_publish(
      "robot/bob/\xe2\x80\xae"
      "dmc",
      "bidi", true);
  alex->subscribe_wait({"robot/bob/#\n" + forged + " pattern\x1b[31m", "robot/\x1b[0m#"});
  alex->topics_wait("robot/#\n" + forged + " topics");
  alex->send_bye("bye\n" + forged + " bye\x1b[0m\r");
  alex->collect(500ms);
  auto admin = env.registered("ops");
  auto kick = admin->admin_wait(v1::ADMIN_KICK, "nobody\n" + forged + " kick");
  REQUIRE(kick);
  std::this_thread::sleep_for(300ms);

  const std::string log = env.log();
  INFO("broker log:\n" << printable(log, 100000));
  // The strings reached the log (so this test can fail), escaped.
  CHECK(log.find("FORGED") != std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find('\x07') == std::string::npos);
  CHECK(log.find('\r') == std::string::npos);
  std::size_t at = 0;
  int lines = 0;
  while (at < log.size()) {
    std::size_t nl = log.find('\n', at);
    if (nl == std::string::npos) nl = log.size();
    const std::string line = log.substr(at, nl - at);
    at = nl + 1;
    if (line.empty()) continue;
    ++lines;
    INFO("line: " << printable(line, 400));
    CHECK(line.rfind("1999-", 0) != 0);
    // Every line is one of the broker's: "YYYY-MM-DDTHH:MM:SS.mmm level message".
    CHECK(line.size() > 24);
    CHECK(line.rfind("20", 0) == 0);
    CHECK(line[10] == 'T');
  }
  CHECK(lines > 5);

  // Every audit line is a JSON object with ts, event and who.
  const auto audit = env.audit();
  CHECK(audit.size() >= 3);
  for (const auto& obj : audit) {
    CHECK(!field(obj, "ts").empty());
    CHECK(!field(obj, "event").empty());
    CHECK(test::json_get(obj, "who") != nullptr);
  }
  CHECK(test::read_file(env.audit_path()).find('\x1b') == std::string::npos);
  check_dev_reaches_bob(env);
}

TEST_CASE(
    "provides outside the ACL are refused, the role is the ACL's, and the directory shows "
    "no false publisher",
    "[hostile][strings]") {
  HostileEnv env;
  REQUIRE(env.started);
  auto alex = env.connect("alex");
  const std::uint64_t id = alex->send_register(
      v1::ROLE_CLIENT, 10000, {"robot/bob/cmd", "robot/alex/telemetry", "$SYS/presence/dev"});
  auto reply = alex->wait_answer(id, v1::Op::kRegistered, 5000ms);
  REQUIRE(reply);
  REQUIRE(reply->has_registered());
  const auto& r = reply->registered();
  CHECK(r.role() == v1::ROLE_AGENT);  // the ACL's, not the requested CLIENT
  std::set<std::string> denied(r.denied_provides().begin(), r.denied_provides().end());
  CHECK(denied == std::set<std::string>{"robot/bob/cmd", "$SYS/presence/dev"});

  auto dev = env.registered("dev");
  auto listing = dev->topics_wait("robot/#");
  REQUIRE(listing);
  REQUIRE(listing->has_topics_reply());
  bool telemetry_listed = false;
  for (const auto& t : listing->topics_reply().topics()) {
    const std::vector<std::string> pubs(t.publishers().begin(), t.publishers().end());
    const bool by_alex = std::find(pubs.begin(), pubs.end(), "alex") != pubs.end();
    if (t.topic() == "robot/bob/cmd") CHECK_FALSE(by_alex);
    if (t.topic() == "robot/alex/telemetry") telemetry_listed = by_alex;
  }
  CHECK(telemetry_listed);
  auto clients = env.ops().admin_wait(v1::ADMIN_CLIENTS);
  REQUIRE(clients);
  REQUIRE(clients->has_admin_reply());
  int alex_listed = 0;
  for (const auto& c : clients->admin_reply().clients()) {
    if (c.name() != "alex") continue;
    ++alex_listed;
    CHECK(c.role() == v1::ROLE_AGENT);
  }
  CHECK(alex_listed == 1);
  check_dev_reaches_bob(env);
}

// ---------------------------------------------------------------- bounded cost

TEST_CASE("one 48 KB frame of 12,000 TOPICS ops does not stall a legitimate client",
          "[hostile][cost]") {
  HostileEnv env;
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  // 2,000 topics of its own, in one frame.
  alex->send_frame(publish_batch_frame(
      [](std::size_t i) { return "robot/alex/t/" + std::to_string(i); }, 0, 2000, "x"));
  REQUIRE(test::wait_until([&] { return env.status().topics() >= 2000; }, 10000ms));

  LatencyProbe probe(env.address(), env.broker.keys_of("probe"), "probe/rtt");
  REQUIRE(probe.start());
  std::this_thread::sleep_for(300ms);
  const std::string frame = topics_flood_frame(12000);
  REQUIRE(frame.size() == 48000);
  const auto before = env.counters();
  REQUIRE(alex->send_frame(frame));
  std::uint64_t replies = 0, busy = 0;
  // Until every request is answered or counted in a BUSY error (a loaded CI
  // machine may take far longer than a quiet one; the bound is liveness only).
  const auto until = Clock::now() + 30000ms;
  while (replies + busy < 12000 && Clock::now() < until) {
    for (const auto& op : alex->collect(100ms)) {
      if (op.has_topics_reply()) ++replies;
      if (op.has_error() && op.error().code() == v1::ERROR_BUSY)
        busy += std::max<std::uint64_t>(1, op.error().count());
    }
  }
  const auto report = probe.stop();
  print_probe("TOPICS frame", report);
  check_probe(report);
  const auto after = env.counters();
  const std::uint64_t refused = after.budget_refused() - before.budget_refused();
  std::uint64_t audited = 0;
  // The audit trail is written by the broker's writer thread: give it time.
  test::wait_until(
      [&] {
        audited = 0;
        for (const auto& o : env.audit())
          if (field(o, "event") == "work_budget")
            audited += number(o, "refused") + number(o, "count");
        return audited >= refused;
      },
      5000ms);
  INFO("replies=" << replies << " BUSY count=" << busy << " budget_refused=" << refused
                  << " audited=" << audited);
  CHECK(replies > 0);
  CHECK(replies < 12000);  // the work budget refused the rest...
  CHECK(refused > 0);
  // ...and said so: every request answered or counted in a BUSY error, and
  // every refusal accounted for in the audit trail.
  CHECK(replies + busy == 12000);
  CHECK(audited == refused);

  // Others' directory requests are served meanwhile and after.
  auto dev = env.registered("dev");
  auto listing = dev->topics_wait("robot/alex/#");
  REQUIRE(listing);
  CHECK(listing->has_topics_reply());
}

TEST_CASE("retained writes with a 2 s fsync do not stall routing", "[.][slow_fsync]") {
  // Only the broker child gets the shim (set before it starts, before any
  // other thread exists in this process).
  ::setenv("LD_PRELOAD", SLOW_FSYNC_LIB, 1);
  ::setenv("CURVEBUS_TEST_FSYNC_DELAY_MS", "2000", 1);
  HostileEnv env({"--retained-sync-ms", "200"});
  ::unsetenv("LD_PRELOAD");
  ::unsetenv("CURVEBUS_TEST_FSYNC_DELAY_MS");
  REQUIRE(env.started);
  const std::string child_env = test::read_file("/proc/" + std::to_string(env.pid()) + "/environ");
  REQUIRE(child_env.find(std::string("LD_PRELOAD=") + SLOW_FSYNC_LIB) != std::string::npos);
  auto alex = env.registered("alex");
  LatencyProbe probe(env.address(), env.broker.keys_of("probe"), "probe/rtt");
  REQUIRE(probe.start());
  const std::string value(16 * 1024, 'r');
  std::size_t next = 0;
  const auto until = Clock::now() + 3000ms;
  while (Clock::now() < until) {  // ~500 retained values a second, on new and old topics
    alex->send_frame(
        publish_batch_frame([](std::size_t i) { return "robot/alex/r/" + std::to_string(i % 300); },
                            next, 25, value, true));
    next += 25;
    alex->collect(50ms);
  }
  const auto report = probe.stop();
  print_probe("retained + 2 s fsync", report);
  check_probe(report);
  // The writer did get to the disk meanwhile, off the routing thread.
  CHECK(test::wait_until([&] { return env.counters().retained_saves() >= 1; }, 15000ms));
  auto dev = env.registered("dev");
  auto pulled = dev->pull_wait("robot/alex/r/7");
  REQUIRE(pulled);
  REQUIRE(pulled->has_pull_reply());
  REQUIRE(pulled->pull_reply().messages_size() == 1);
  CHECK(pulled->pull_reply().messages(0).payload() == value);
}

TEST_CASE(
    "1 MiB payloads on new topics end in ERROR QUOTA with the broker's memory bounded and "
    "other names still publishing",
    "[hostile][cost]") {
  const std::uint64_t budget = 64ull << 20, quota = 16ull << 20;
  HostileEnv env({"--memory-budget-bytes", std::to_string(budget), "--name-quota-bytes",
                  std::to_string(quota)});
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  const std::string blob(1000 * 1024, 'm');
  int accepted = 0;
  std::optional<v1::Error> refusal;
  for (int i = 0; i < 64 && !refusal; ++i) {
    auto r = alex->publish_wait("robot/alex/blob/" + std::to_string(i), blob, false, 5000ms);
    REQUIRE(r);
    if (r->has_puback())
      ++accepted;
    else
      refusal = r->error();
  }
  REQUIRE(refusal);
  CHECK(refusal->code() == v1::ERROR_QUOTA);
  CHECK(accepted >= 8);
  CHECK(static_cast<std::uint64_t>(accepted) * blob.size() <= quota);
  CHECK(env.counters().quota_refused() >= 1);
  CHECK(env.wait_audit(audit_event("quota", "alex")));
  const long hwm_kb = proc_status_kb(env.pid(), "VmHWM");
  WARN("broker VmHWM " << hwm_kb / 1024 << " MiB with a " << (budget >> 20) << " MiB budget");
  CHECK(hwm_kb > 0);
  CHECK(static_cast<std::uint64_t>(hwm_kb) * 1024 < budget + (64ull << 20));

  auto bob = env.registered("bob");
  auto ok = bob->publish_wait("robot/bob/telemetry", blob);
  REQUIRE(ok);
  CHECK(ok->has_puback());
  check_dev_reaches_bob(env);
}

TEST_CASE("sessions per name are capped at 32 by default", "[hostile][cost]") {
  HostileEnv env;
  REQUIRE(env.started);
  std::vector<std::unique_ptr<RawPeer>> sessions;
  for (int i = 0; i < 32; ++i) {
    sessions.push_back(env.connect("alex"));
    sessions.back()->send_register(v1::ROLE_AGENT, 10000);
  }
  int ok = 0;
  for (auto& s : sessions)
    if (auto r = s->wait_for(v1::Op::kRegistered, 5000ms)) ++ok;
  REQUIRE(ok == 32);
  auto extra = env.connect("alex");
  auto r = extra->register_wait(v1::ROLE_AGENT, 10000, {}, 5000ms);
  REQUIRE(r);
  REQUIRE(r->has_error());
  CHECK(r->error().code() == v1::ERROR_RESOURCE_EXHAUSTED);
  CHECK(env.counters().sessions_refused() >= 1);
  CHECK(env.wait_audit(audit_event("session_limit", "alex")));
  // Another name is not affected; a freed slot can be used again.
  check_dev_reaches_bob(env);
  sessions.back()->send_bye("making room");
  sessions.pop_back();
  CHECK(test::wait_until(
      [&] {
        auto again = env.connect("alex");
        auto reply = again->register_wait(v1::ROLE_AGENT, 10000, {}, 1000ms);
        if (reply && reply->has_registered()) {
          sessions.push_back(std::move(again));
          return true;
        }
        return false;
      },
      5000ms, 100ms));
}

TEST_CASE("a publish flood is rate-limited and a legitimate client is unaffected",
          "[hostile][cost]") {
  HostileEnv env;
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  LatencyProbe probe(env.address(), env.broker.keys_of("probe"), "probe/rtt");
  REQUIRE(probe.start());
  const auto before = env.counters();
  const std::string frame = publish_batch_frame(
      [](std::size_t) { return std::string("robot/alex/flood"); }, 0, 200, "flood-payload-64b");
  std::uint64_t frames = 0, rate_errors = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < 2500ms) {
    if (alex->send_frame(frame)) ++frames;
    if (frames % 20 == 0) {
      alex->read_available();
      for (const auto& op : alex->queued())
        if (op.has_error() && op.error().code() == v1::ERROR_RATE_LIMITED) ++rate_errors;
      alex->clear_queue();
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& op : alex->collect(500ms))
    if (op.has_error() && op.error().code() == v1::ERROR_RATE_LIMITED) ++rate_errors;
  const auto report = probe.stop();
  print_probe("publish flood", report);
  check_probe(report);
  const auto after = env.counters();
  const std::uint64_t routed = after.publications() - before.publications();
  INFO("sent " << frames * 200 << " publications in " << seconds << " s; routed " << routed);
  CHECK(rate_errors > 0);
  CHECK(after.rate_limited() > before.rate_limited());
  // 10,000/s per name plus one second's burst (and the probe's own).
  CHECK(routed <= static_cast<std::uint64_t>(10000 * (seconds + 1.5) + 1000));
  CHECK(frames * 200 > routed);
  check_dev_reaches_bob(env);
}

// ---------------------------------------------------------------- audit

namespace {

std::string loopback(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

// A handshake_failed audit line naming 127.0.0.1:port (and whose detail
// holds `detail`), within 5 s.
std::optional<JsonObject> handshake_failed_from(HostileEnv& env, int port,
                                                const std::string& detail = "") {
  return env.wait_audit([&](const JsonObject& o) {
    return field(o, "event") == "handshake_failed" && field(o, "address") == loopback(port) &&
           field(o, "detail").find(detail) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("a plaintext ZeroMQ peer's failed handshake is audited with its address and port",
          "[hostile][audit]") {
  HostileEnv env;
  REQUIRE(env.started);
  RawPeer::Options o;
  o.curve = false;
  o.source_port = free_local_port();
  auto peer = env.connect("alex", o);
  peer->send_register();
  // Seen by the broker as a mechanism mismatch, or (when the peer hung up
  // first on seeing CURVE in the broker's greeting) as a broken pipe.
  auto line = handshake_failed_from(env, o.source_port);
  REQUIRE(line);
  const std::string detail = field(*line, "detail");
  CHECK((detail.find("mechanism mismatch") != std::string::npos ||
         detail.find("no_detail") != std::string::npos));
  CHECK(env.counters().handshake_failures() >= 1);
  check_dev_reaches_bob(env);
}

TEST_CASE("a CURVE peer with the wrong server key is audited with its address and port",
          "[hostile][audit]") {
  HostileEnv env;
  REQUIRE(env.started);
  RawPeer::Options o;
  o.server_key = generate_keypair().public_key;
  o.source_port = free_local_port();
  auto peer = env.connect("alex", o);
  peer->send_register();
  CHECK(handshake_failed_from(env, o.source_port, "cryptographic"));
  CHECK(env.counters().handshake_failures() >= 1);
  check_dev_reaches_bob(env);
}

TEST_CASE("raw TCP garbage is cut, and named with its address and port", "[hostile][audit]") {
  HostileEnv env({}, "debug");  // connection opens and closes are logged at debug
  REQUIRE(env.started);
  std::string bytes;
  bool zmtp_like = false;
  SECTION("garbage that starts like a ZeroMQ greeting: an audited failed handshake") {
    bytes = std::string("\xff\0\0\0\0\0\0\0\x01\x7f\x03\x00GARBAGE", 19) + std::string(200, 'G');
    zmtp_like = true;
  }
  SECTION("an HTTP request: libzmq cuts it without a handshake event, the log names it") {
    bytes = "GET / HTTP/1.1\r\nHost: curvebus\r\n\r\n" + std::string(200, 'G');
  }
  GarbageConnection garbage(env.address().port(), bytes);
  REQUIRE(garbage.connected());
  const std::string who = loopback(garbage.local_port());
  INFO("garbage from " << who);
  CHECK(garbage.wait_closed_by_peer(5000ms));
  if (zmtp_like) {
    CHECK(handshake_failed_from(env, garbage.local_port()));
    CHECK(env.counters().handshake_failures() >= 1);
  } else {
    // A peer that is not ZMTP 3 at all gets no handshake event from libzmq
    // (docs/security.md); the broker's connection log still names it.
    bool named = false;
    for (int i = 0; i < 50 && !named; ++i) {
      named = env.log().find("connection closed address=" + who) != std::string::npos;
      if (!named) std::this_thread::sleep_for(100ms);
    }
    CHECK(named);
  }
  check_dev_reaches_bob(env);
}

TEST_CASE("an unknown key is audited with its fingerprint and the peer's address and port",
          "[hostile][audit]") {
  HostileEnv env;
  REQUIRE(env.started);
  RawPeer::Options o;
  o.source_port = free_local_port();
  auto mallory = env.connect_key(env.broker.stranger("mallory"), o);
  mallory->send_register();
  CHECK(handshake_failed_from(env, o.source_port, "auth"));
  auto unknown = env.wait_audit(audit_event("unknown_key"));
  REQUIRE(unknown);
  CHECK(field(*unknown, "fp") == key_fingerprint(env.broker.keys_of("mallory").public_key));
  CHECK(field(*unknown, "address").rfind("127.0.0.1", 0) == 0);
  CHECK(env.counters().auth_denied() >= 1);
  check_dev_reaches_bob(env);
}

TEST_CASE("concurrent handshake failures are each audited with their own peer's address",
          "[hostile][audit]") {
  HostileEnv env;
  REQUIRE(env.started);
  // Five bursts of ten plaintext and ten wrong-key peers connecting at once,
  // each from its own known port (libzmq retries each for a while): every
  // line naming a port must describe that port's own kind of failure.
  std::map<std::string, std::string> expected;  // address -> its kind of failure
  for (int burst = 0; burst < 5; ++burst) {
    std::vector<std::unique_ptr<RawPeer>> peers;
    for (int i = 0; i < 20; ++i) {
      RawPeer::Options o;
      o.source_port = free_local_port();
      const bool plaintext = i % 2 == 0;
      if (plaintext)
        o.curve = false;
      else
        o.server_key = generate_keypair().public_key;
      expected[loopback(o.source_port)] = plaintext ? "mechanism mismatch" : "cryptographic";
      peers.push_back(env.connect("alex", o));
      peers.back()->send_register();
    }
    std::this_thread::sleep_for(400ms);
  }
  std::this_thread::sleep_for(500ms);
  std::set<std::string> named;
  for (const auto& o : env.audit())
    if (field(o, "event") == "handshake_failed" && expected.count(field(o, "address")))
      named.insert(field(o, "address"));
  INFO(named.size() << " of " << expected.size() << " attackers named in the audit log");
  CHECK(named.size() * 2 >= expected.size());
  int lines = 0, wrong = 0, unknown = 0;
  std::string examples;
  for (const auto& o : env.audit()) {
    if (field(o, "event") != "handshake_failed" || test::json_get(o, "aggregated")) continue;
    ++lines;
    if (field(o, "address") == "unknown") {  // not named is honest; named wrongly is the defect
      ++unknown;
      continue;
    }
    const auto it = expected.find(field(o, "address"));
    // A port's line may say "no_detail" (its connection broke mid-way), never
    // the other kind of peer's failure.
    const std::string other = it != expected.end() && it->second == "cryptographic"
                                  ? "mechanism mismatch"
                                  : "cryptographic";
    if (it != expected.end() && field(o, "detail").find(other) == std::string::npos) continue;
    if (++wrong <= 5)
      examples += "\n  " + field(o, "address") + " (a " +
                  (it == expected.end()            ? std::string("peer not ours")
                   : it->second == "cryptographic" ? "wrong-key peer"
                                                   : "plaintext peer") +
                  ") shown with: " + field(o, "detail");
  }
  INFO(wrong << " of " << lines << " lines name another peer's failure:" << examples);
  INFO(unknown << " lines without an address");
  CHECK(wrong == 0);
  check_dev_reaches_bob(env);
}

TEST_CASE("a flood of denied publishes is aggregated in the audit log without losing who",
          "[hostile][audit]") {
  HostileEnv env;
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  auto bob = env.registered("bob");
  const int flood = 2000;
  for (int i = 0; i < flood / 500; ++i)
    alex->send_frame(publish_batch_frame([](std::size_t) { return std::string("robot/bob/cmd"); },
                                         0, 500, "go"));
  // bob's single denial in the middle of the flood is written in full.
  bob->send_publish("robot/alex/cmd", "nope", false);
  alex->collect(300ms);

  auto aggregate = env.wait_audit(
      [](const JsonObject& o) {
        return field(o, "event") == "acl_denied" && field(o, "who") == "alex" &&
               test::json_get(o, "aggregated") && number(o, "count") > 0;
      },
      6000ms);
  REQUIRE(aggregate);
  CHECK(env.wait_audit(audit_event("acl_denied", "bob")));
  // Every denial is accounted for: written in full or counted.
  std::uint64_t full = 0, counted = 0;
  CHECK(test::wait_until(
      [&] {
        full = counted = 0;
        for (const auto& o : env.audit()) {
          if (field(o, "event") != "acl_denied" || field(o, "who") != "alex") continue;
          if (test::json_get(o, "aggregated"))
            counted += number(o, "count");
          else
            ++full;
        }
        return full + counted >= static_cast<std::uint64_t>(flood);
      },
      6000ms));
  INFO("full=" << full << " counted=" << counted);
  CHECK(full + counted == static_cast<std::uint64_t>(flood));
  CHECK(full <= 5 * 3);  // at most 5 a second, and the flood lasted well under 3 s
  CHECK(env.counters().audit_aggregated() >= counted);
  check_dev_reaches_bob(env);
}

// ---------------------------------------------------------------- directory

TEST_CASE("idle topics without subscribers or retained values are freed", "[hostile][cost]") {
  HostileEnv env({"--topic-idle-s", "1"});
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  auto dev = env.registered("dev");
  REQUIRE(dev->subscribe_wait({"robot/alex/watched"}));
  alex->send_frame(publish_batch_frame(
      [](std::size_t i) { return "robot/alex/idle/" + std::to_string(i); }, 0, 50, "x"));
  REQUIRE(alex->publish_wait("robot/alex/kept", "retained", true));
  REQUIRE(alex->publish_wait("robot/alex/watched", "subscribed"));
  REQUIRE(test::wait_until([&] { return env.counters().topics_freed() >= 50; }, 15000ms));
  auto listing = env.ops().admin_wait(v1::ADMIN_TOPICS);
  REQUIRE(listing);
  REQUIRE(listing->has_admin_reply());
  std::set<std::string> topics;
  for (const auto& t : listing->admin_reply().topics()) topics.insert(t.topic());
  CHECK(topics.count("robot/alex/idle/0") == 0);
  CHECK(topics.count("robot/alex/kept") == 1);
  CHECK(topics.count("robot/alex/watched") == 1);
  auto pulled = dev->pull_wait("robot/alex/kept");
  REQUIRE(pulled);
  REQUIRE(pulled->has_pull_reply());
  REQUIRE(pulled->pull_reply().messages_size() == 1);
  CHECK(pulled->pull_reply().messages(0).payload() == "retained");
  auto again = alex->publish_wait("robot/alex/idle/0", "back");
  REQUIRE(again);
  CHECK(again->has_puback());
}

TEST_CASE("TOPICS listings are truncated and resumed with Topics.after", "[hostile][cost]") {
  HostileEnv env({"--max-topics-reply", "100"});
  REQUIRE(env.started);
  auto alex = env.registered("alex");
  auto name = [](std::size_t i) {
    std::string n = std::to_string(i);
    return "robot/alex/list/" + std::string(3 - n.size(), '0') + n;
  };
  alex->send_frame(publish_batch_frame(name, 0, 250, "x"));
  REQUIRE(test::wait_until([&] { return env.status().topics() >= 250; }, 10000ms));

  auto dev = env.registered("dev");
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (; pages < 10; ++pages) {
    auto reply = dev->topics_wait("robot/alex/list/#", after);
    REQUIRE(reply);
    REQUIRE(reply->has_topics_reply());
    const auto& r = reply->topics_reply();
    CHECK(r.topics_size() <= 100);
    for (const auto& t : r.topics()) seen.push_back(t.topic());
    if (!r.truncated()) break;
    REQUIRE(!r.resume_after().empty());
    after = r.resume_after();
  }
  CHECK(pages == 2);  // 100 + 100 + 50
  REQUIRE(seen.size() == 250);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 250);
  CHECK(seen.front() == name(0));
  CHECK(seen.back() == name(249));
}

TEST_CASE("the audit trail is published on $SYS/audit for admins only", "[hostile][audit]") {
  // "watcher" may subscribe to all of $SYS but is no admin.
  HostileEnv env({}, "info", {{"watcher", {}, {"$SYS/#"}, false, "client"}});
  REQUIRE(env.started);
  auto watcher = env.registered("watcher");
  auto peek = watcher->subscribe_wait({"$SYS/audit/#", "$SYS/audit/acl_denied"});
  REQUIRE(peek);
  REQUIRE(peek->has_suback());
  REQUIRE(peek->suback().answers_size() == 2);
  CHECK(peek->suback().answers(0).result() == v1::PATTERN_DENIED);
  CHECK(peek->suback().answers(1).result() == v1::PATTERN_DENIED);
  REQUIRE(watcher->subscribe_wait({"$SYS/presence/#"}));
  auto alex = env.registered("alex");
  auto ops = env.registered("ops");
  auto ack = ops->subscribe_wait({"$SYS/audit/#"});
  REQUIRE(ack);
  REQUIRE(ack->has_suback());
  REQUIRE(ack->suback().answers(0).result() == v1::PATTERN_GRANTED);

  alex->send_publish("robot/bob/cmd", "denied", false);
  auto d = ops->wait_for(
      [](const v1::Op& o) {
        return o.has_deliver() && o.deliver().topic() == "$SYS/audit/acl_denied";
      },
      3000ms);
  REQUIRE(d);
  auto line = test::JsonReader::flat_object(d->deliver().payload());
  REQUIRE(line);
  CHECK(field(*line, "who") == "alex");
  CHECK(field(*line, "topic") == "robot/bob/cmd");
  CHECK_FALSE(watcher->wait_for(
      [](const v1::Op& o) {
        return o.has_deliver() && o.deliver().topic().rfind("$SYS/audit/", 0) == 0;
      },
      300ms));
}
