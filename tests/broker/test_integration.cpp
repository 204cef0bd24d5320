// Integration tests: the real curvebus-broker process on 127.0.0.1, talked to
// by raw protocol peers.  Timing is only ever a generous liveness bound.
#include <algorithm>
#include <csignal>
#include <fstream>
#include <thread>

#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include "broker_env.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

v1::Error expect_error(TestPeer& peer, v1::ErrorCode code,
                       std::chrono::milliseconds timeout = 3000ms) {
  auto op = peer.wait_for(v1::Op::kError, timeout);
  REQUIRE(op);
  INFO("error: " << op->error().message());
  REQUIRE(error_code_name(op->error().code()) == error_code_name(code));
  return op->error();
}

std::optional<v1::Presence> wait_presence(TestPeer& peer, const std::string& name,
                                          const std::string& state,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto d = peer.wait_deliver("$SYS/presence/" + name, 200ms);
    if (!d) continue;
    v1::Presence p;
    REQUIRE(google::protobuf::util::JsonStringToMessage(d->payload(), &p).ok());
    if (p.state() == state) return p;
  }
  return std::nullopt;
}

long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST_CASE("register answers REGISTERED with the name bound to the key", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto peer = env.connect("pub");
  auto reply = peer->register_peer(v1::ROLE_PROVIDER, 500, 10s);
  REQUIRE(reply);
  REQUIRE(reply->has_registered());
  const auto& r = reply->registered();
  CHECK(r.name() == "pub");
  CHECK(r.heartbeat_ms() == 500);
  CHECK(r.timeout_ms() == 1500);
  CHECK(!r.session_id().empty());
  CHECK(r.broker_id().size() == 16);
  CHECK(r.limits().max_message_bytes() == 1u << 20);
  CHECK(r.limits().max_subscriptions() == 100);
  CHECK(r.limits().history_depth() == 32);
}

TEST_CASE("publish reaches a wildcard subscriber with seq 1,2,3", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto sub = env.registered("sub");
  auto pub = env.registered("pub");
  auto ack = sub->subscribe({"sensors/+/temp", "sensors/#"});  // overlapping: delivered once
  REQUIRE(ack);
  REQUIRE(ack->has_suback());
  REQUIRE(ack->suback().answers_size() == 2);
  CHECK(ack->suback().answers(0).result() == v1::PATTERN_GRANTED);
  CHECK(ack->suback().answers(1).result() == v1::PATTERN_GRANTED);
  for (int i = 1; i <= 3; ++i) {
    auto r = pub->publish("sensors/kitchen/temp", "t" + std::to_string(i));
    REQUIRE(r);
    REQUIRE(r->has_puback());
    CHECK(r->puback().seq() == static_cast<std::uint64_t>(i));
    CHECK(r->puback().delivered() == 1);
  }
  for (int i = 1; i <= 3; ++i) {
    auto d = sub->wait_deliver("sensors/kitchen/temp");
    REQUIRE(d);
    CHECK(d->seq() == static_cast<std::uint64_t>(i));
    CHECK(d->payload() == "t" + std::to_string(i));
    CHECK(d->publisher() == "pub");
    CHECK(d->timestamp_us() > 0);
    CHECK_FALSE(d->retained());
  }
  // Exactly once despite two matching patterns.
  CHECK_FALSE(sub->wait_deliver("sensors/kitchen/temp", 300ms));
}

TEST_CASE("fire-and-forget publishes in one batched frame are all routed",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto sub = env.registered("sub");
  auto pub = env.registered("pub");
  REQUIRE(sub->subscribe({"sensors/#"}));
  std::vector<v1::Op> ops;
  for (int i = 0; i < 50; ++i) {
    v1::Op op;
    op.mutable_publish()->set_topic("sensors/batch");
    op.mutable_publish()->set_payload(std::to_string(i));
    ops.push_back(op);
  }
  pub->send_ops(ops);
  for (int i = 0; i < 50; ++i) {
    auto d = sub->wait_deliver("sensors/batch");
    REQUIRE(d);
    CHECK(d->payload() == std::to_string(i));
  }
}

TEST_CASE("unknown key gets no REGISTERED and is counted as an auth denial",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto stranger_keys = env.broker.stranger("mallory");
  TestPeer mallory(env.ctx, env.broker.endpoint(), env.broker.server_public_key(), stranger_keys);
  CHECK_FALSE(mallory.register_peer(v1::ROLE_CLIENT, 0, 1500ms));
  auto admin = env.registered("admin");
  CHECK(wait_until([&] { return env.counters(*admin).auth_denied() >= 1; }, 5000ms));
  CHECK(env.counters(*admin).handshake_failures() >= 1);
  CHECK(env.log().find("auth denied fp=b2:") != std::string::npos);
  CHECK(env.log().find(stranger_keys.public_key) == std::string::npos);
}

TEST_CASE("plaintext peer gets nothing and is counted as a handshake failure",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  TestPeer plain(env.ctx, env.broker.endpoint());
  CHECK_FALSE(plain.register_peer(v1::ROLE_CLIENT, 0, 1500ms));
  auto admin = env.registered("admin");
  CHECK(wait_until([&] { return env.counters(*admin).handshake_failures() >= 1; }, 5000ms));
}

TEST_CASE("ACL denial on publish answers DENIED and delivers nothing", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto sub = env.registered("sub");
  auto pub = env.registered("pub");
  REQUIRE(sub->subscribe({"robot/#"}));
  auto r = pub->publish("robot/alex/cmd", "forward");
  REQUIRE(r);
  REQUIRE(r->has_error());
  CHECK(r->error().code() == v1::ERROR_DENIED);
  CHECK(r->error().topic() == "robot/alex/cmd");
  CHECK(r->error().answers() == "publish");
  // Fire-and-forget is refused explicitly too.
  pub->publish_nowait("robot/alex/cmd", "again");
  expect_error(*pub, v1::ERROR_DENIED);
  CHECK_FALSE(sub->wait_for(v1::Op::kDeliver, 500ms));
  // $SYS is the broker's own even for a '#' publisher.
  auto admin = env.registered("admin");
  auto sys = admin->publish("$SYS/presence/pub", "{\"state\":\"offline\"}");
  REQUIRE(sys);
  REQUIRE(sys->has_error());
  CHECK(sys->error().code() == v1::ERROR_DENIED);
  CHECK(env.counters(*admin).denials() >= 3);
}

TEST_CASE("denied, invalid and over-limit subscribe patterns are answered per pattern",
          "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--max-subscriptions", "2"});
  REQUIRE(env.started);
  auto sub = env.registered("sub");
  auto r = sub->subscribe(
      {"sensors/#", "robot/+/cmd", "secret/#", "bad/#/x", "$SYS/presence/#", "sensors/a"});
  REQUIRE(r);
  REQUIRE(r->has_suback());
  const auto& a = r->suback().answers();
  REQUIRE(a.size() == 6);
  CHECK(a[0].result() == v1::PATTERN_GRANTED);
  CHECK(a[1].result() == v1::PATTERN_GRANTED);
  CHECK(a[2].result() == v1::PATTERN_DENIED);
  CHECK(a[3].result() == v1::PATTERN_INVALID);
  CHECK(a[4].result() == v1::PATTERN_LIMIT);
  CHECK(a[5].result() == v1::PATTERN_LIMIT);
}

TEST_CASE("malformed bytes get ERROR MALFORMED and the broker serves others",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto bad = env.registered("pub");
  bad->send_raw(std::string("\xff\xff\xff\xff garbage", 13));
  expect_error(*bad, v1::ERROR_MALFORMED);
  bad->send_raw("");
  expect_error(*bad, v1::ERROR_MALFORMED);
  // Still served, and others too.
  auto r = bad->publish("sensors/x", "ok");
  REQUIRE(r);
  CHECK(r->has_puback());
  auto admin = env.registered("admin");
  CHECK(env.counters(*admin).malformed() >= 2);
}

TEST_CASE("oversized payload gets ERROR TOO_LARGE", "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--max-message-bytes", "1000"});
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  auto r = pub->publish("sensors/big", std::string(1001, 'x'));
  REQUIRE(r);
  REQUIRE(r->has_error());
  CHECK(r->error().code() == v1::ERROR_TOO_LARGE);
  auto ok = pub->publish("sensors/big", std::string(1000, 'x'));
  REQUIRE(ok);
  CHECK(ok->has_puback());
  auto admin = env.registered("admin");
  CHECK(env.counters(*admin).oversized() == 1);
}

TEST_CASE("wildcard or invalid UTF-8 topic gets INVALID_TOPIC", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  for (std::string topic :
       {std::string("sensors/+"), std::string("sensors/#"), std::string("sensors/\xc3\x28"),
        std::string(""), std::string(300, 'a')}) {
    auto r = pub->publish(topic, "x");
    REQUIRE(r);
    REQUIRE(r->has_error());
    CHECK(r->error().code() == v1::ERROR_INVALID_TOPIC);
  }
}

TEST_CASE("ops before REGISTER get NOT_REGISTERED", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto peer = env.connect("pub");
  peer->publish_nowait("sensors/x", "early");
  expect_error(*peer, v1::ERROR_NOT_REGISTERED, 10s);
  // REGISTER + SUBSCRIBE in one frame works.
  v1::Op reg, sub;
  reg.mutable_register_()->set_request_id(1);
  sub.mutable_subscribe()->set_request_id(2);
  sub.mutable_subscribe()->add_patterns("sensors/#");
  peer->send_ops({reg, sub});
  CHECK(peer->wait_for(v1::Op::kRegistered));
  auto ack = peer->wait_for(v1::Op::kSuback);
  REQUIRE(ack);
  CHECK(ack->suback().answers(0).result() == v1::PATTERN_GRANTED);
}

TEST_CASE("the broker pings a silent peer and sends heartbeats", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto peer = env.registered("sub", 200);
  // Silent (but answering PING automatically): gets HEARTBEATs and PINGs, stays registered.
  CHECK(peer->wait_for(v1::Op::kHeartbeat, 2000ms));
  CHECK(wait_until(
      [&] {
        peer->recv(50ms);
        return peer->pings_seen > 0;
      },
      3000ms));
  peer->recv(1000ms);
  auto r = peer->subscribe({"sensors/#"});
  REQUIRE(r);
  CHECK(r->has_suback());
}

TEST_CASE("a SIGKILLed peer is declared offline with reason timeout", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto watcher = env.registered("sub", 200);
  REQUIRE(watcher->subscribe({"$SYS/presence/#"}));
  Process silent({BROKER_SILENT_PEER_BIN, env.broker.endpoint(), env.broker.server_public_key(),
                  env.broker.secret_file("robot")},
                 env.tmp / "silent");
  REQUIRE(silent.wait_for_output("registered", 10s));
  auto online = wait_presence(*watcher, "robot", "online", 5s);
  REQUIRE(online);
  CHECK(online->role() == v1::ROLE_AGENT);
  silent.signal(SIGKILL);
  silent.wait(5s);
  auto offline = wait_presence(*watcher, "robot", "offline", 5s);
  REQUIRE(offline);
  CHECK(offline->reason() == "timeout");
  CHECK(offline->sessions() == 0);
}

TEST_CASE("a peer that stops answering (still connected) times out", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto watcher = env.registered("sub", 200);
  REQUIRE(watcher->subscribe({"$SYS/presence/#"}));
  auto mute = env.registered("robot", 200);
  mute->auto_pong = false;
  auto offline = wait_presence(*watcher, "robot", "offline", 5s);
  REQUIRE(offline);
  CHECK(offline->reason() == "timeout");
  // Its next request is told the session expired.
  mute->publish_nowait("robot/robot/status", "late");
  expect_error(*mute, v1::ERROR_SESSION_EXPIRED);
  auto admin = env.registered("admin");
  CHECK(env.counters(*admin).sessions_timed_out() >= 1);
}

TEST_CASE("BYE is published as presence offline closed", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto watcher = env.registered("sub");
  REQUIRE(watcher->subscribe({"$SYS/presence/#"}));
  auto robot = env.registered("robot");
  REQUIRE(wait_presence(*watcher, "robot", "online", 5s));
  robot->bye("test done");
  auto offline = wait_presence(*watcher, "robot", "offline", 5s);
  REQUIRE(offline);
  CHECK(offline->reason() == "closed");
}

TEST_CASE("late joiner pulls the latest value and history since a seq", "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--history-depth", "4"});
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  for (int i = 1; i <= 3; ++i) REQUIRE(pub->publish("sensors/lidar", "scan" + std::to_string(i)));
  auto late = env.registered("sub");
  auto latest = late->pull("sensors/lidar");
  REQUIRE(latest);
  REQUIRE(latest->has_pull_reply());
  REQUIRE(latest->pull_reply().messages_size() == 1);
  CHECK(latest->pull_reply().messages(0).payload() == "scan3");
  CHECK(latest->pull_reply().messages(0).seq() == 3);
  CHECK(latest->pull_reply().last_seq() == 3);

  auto since = late->pull("sensors/lidar", 1);
  REQUIRE(since);
  REQUIRE(since->pull_reply().messages_size() == 2);
  CHECK(since->pull_reply().messages(0).seq() == 2);
  CHECK(since->pull_reply().messages(1).seq() == 3);
  CHECK_FALSE(since->pull_reply().gap());

  // Evict: depth 4, publish 3 more (seq 4..6, kept 3..6).
  for (int i = 4; i <= 6; ++i) REQUIRE(pub->publish("sensors/lidar", "scan" + std::to_string(i)));
  auto gap = late->pull("sensors/lidar", 1);
  REQUIRE(gap);
  CHECK(gap->pull_reply().gap());
  CHECK(gap->pull_reply().first_kept_seq() == 3);
  REQUIRE(gap->pull_reply().messages_size() == 4);
  CHECK(gap->pull_reply().messages(0).seq() == 3);

  auto limited = late->pull("sensors/lidar", 2, 2);
  REQUIRE(limited);
  REQUIRE(limited->pull_reply().messages_size() == 2);
  CHECK(limited->pull_reply().messages(1).seq() == 4);

  auto none = late->pull("sensors/never");
  REQUIRE(none);
  REQUIRE(none->has_error());
  CHECK(none->error().code() == v1::ERROR_NOT_FOUND);
  auto denied = late->pull("robot/alex/telemetry/x");
  REQUIRE(denied);
  REQUIRE(denied->has_error());
}

TEST_CASE("want_retained delivers the retained value marked retained", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  REQUIRE(pub->publish("sensors/door", "open", true, true));
  REQUIRE(pub->publish("sensors/door", "closed", true, true));
  REQUIRE(pub->publish("sensors/plain", "not retained", true, false));
  auto sub = env.registered("sub");
  REQUIRE(sub->subscribe({"sensors/#"}, true));
  auto d = sub->wait_deliver("sensors/door");
  REQUIRE(d);
  CHECK(d->payload() == "closed");
  CHECK(d->retained());
  CHECK(d->seq() == 2);
  CHECK_FALSE(sub->wait_deliver("sensors/plain", 300ms));
}

TEST_CASE("retained values survive a clean restart with their seq, and cleared ones stay cleared",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  {
    auto pub = env.registered("pub");
    REQUIRE(pub->publish("sensors/door", "open", true, true));
    REQUIRE(pub->publish("sensors/door", "closed", true, true));
    REQUIRE(pub->publish("sensors/window", "open", true, true));
    REQUIRE(pub->publish("sensors/window", "", true, true));  // clears it
    REQUIRE(pub->publish("sensors/plain", "not retained", true, false));
  }
  REQUIRE(env.broker.stop() == 0);  // a clean stop writes what changed last
  REQUIRE(env.broker.restart());
  auto sub = env.registered("sub");
  REQUIRE(sub->subscribe({"sensors/#"}, true));
  auto d = sub->wait_deliver("sensors/door");
  REQUIRE(d);
  CHECK(d->payload() == "closed");
  CHECK(d->retained());
  CHECK(d->seq() == 2);
  CHECK(d->publisher() == "pub");
  CHECK_FALSE(sub->wait_deliver("sensors/window", 300ms));
  CHECK_FALSE(sub->wait_deliver("sensors/plain", 100ms));
  // PULL sees it too, and new publications continue the topic's seq.
  auto latest = sub->pull("sensors/door");
  REQUIRE(latest);
  REQUIRE(latest->pull_reply().messages_size() == 1);
  CHECK(latest->pull_reply().messages(0).payload() == "closed");
  auto pub = env.registered("pub");
  auto ack = pub->publish("sensors/door", "ajar", true, true);
  REQUIRE(ack);
  REQUIRE(ack->has_puback());
  CHECK(ack->puback().seq() == 3);
}

TEST_CASE("an unreadable retained file is set aside and the broker starts empty",
          "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  REQUIRE(env.broker.stop() == 0);
  const std::string file = env.broker.dir() + "/retained.pb";
  {
    std::ofstream out(file, std::ios::binary);
    out << "\xff\xff\xff garbage, not a RetainedStore";
  }
  REQUIRE(env.broker.restart());
  auto sub = env.registered("sub");
  REQUIRE(sub->subscribe({"sensors/#"}, true));
  CHECK_FALSE(sub->wait_deliver("sensors/door", 300ms));
  CHECK(read_file(file + ".bad").find("garbage") != std::string::npos);
  CHECK(env.log().find("unreadable") != std::string::npos);
}

TEST_CASE("retained_sync_ms 0 keeps retained values in memory only", "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--retained-sync-ms", "0"});
  REQUIRE(env.started);
  {
    auto pub = env.registered("pub");
    REQUIRE(pub->publish("sensors/door", "open", true, true));
  }
  REQUIRE(env.broker.stop() == 0);
  REQUIRE(env.broker.restart({"--retained-sync-ms", "0"}));
  auto sub = env.registered("sub");
  REQUIRE(sub->subscribe({"sensors/#"}, true));
  CHECK_FALSE(sub->wait_deliver("sensors/door", 300ms));
  CHECK(read_file(env.broker.dir() + "/retained.pb").empty());
}

TEST_CASE("a slow subscriber loses deliveries, counted, while others get everything",
          "[broker][integration]") {
  // Unlimited publish rate: the publisher must outrun the slow reader.
  BrokerEnv env(standard_clients(), {"--queue-limit", "1000", "--publish-rate", "0"});
  REQUIRE(env.started);
  // The slow peer lets libzmq buffer next to nothing and never reads.
  TestPeer slow(env.ctx, env.broker.endpoint(), env.broker.server_public_key(),
                env.broker.keys_of("sub"), 1);
  REQUIRE(slow.register_peer(v1::ROLE_CLIENT, 60000));
  REQUIRE(slow.subscribe({"sensors/#"}));
  auto fast = env.registered("admin", 60000);
  REQUIRE(fast->subscribe({"sensors/#"}));
  auto pub = env.registered("pub", 60000);
  const long rss_before = rss_kb(env.broker.process().pid());
  const int total = 20000;
  const std::string payload(1000, 'p');
  int received = 0;
  auto drain_fast = [&](std::chrono::milliseconds wait) {
    while (auto op = fast->wait_for(v1::Op::kDeliver, wait)) {
      ++received;
      wait = 0ms;
    }
  };
  for (int i = 0; i < total; ++i) {
    // Every 100th publish waits for its PUBACK: the publisher is paced by the
    // broker, as a real client with acks would be; the slow one never reads.
    if (i % 100 == 99) {
      REQUIRE(pub->publish("sensors/flood", payload));
      // Keep the fast reader caught up (its backlog stays far below the
      // queue bound even on a loaded machine), so only the slow one drops.
      while (received < i + 1) {
        const int before = received;
        drain_fast(2000ms);
        if (received == before) break;
      }
    } else {
      pub->publish_nowait("sensors/flood", payload);
    }
  }
  while (received < total) {
    const int before = received;
    drain_fast(2000ms);
    if (received == before) break;
  }
  CHECK(received == total);
  CHECK(env.broker.process().running());
  auto status = fast->admin(v1::ADMIN_CLIENTS);
  REQUIRE(status);
  REQUIRE(status->has_admin_reply());
  std::uint64_t slow_dropped = 0;
  for (const auto& c : status->admin_reply().clients())
    if (c.name() == "sub") slow_dropped = c.dropped();
  CHECK(slow_dropped > 0);
  CHECK(env.counters(*fast).dropped() > 0);
  const long rss_after = rss_kb(env.broker.process().pid());
  INFO("rss before " << rss_before << " kB, after " << rss_after << " kB");
  CHECK(rss_after < rss_before + 200 * 1024);  // generous: 20k x 1 KB would be 20 MB anyway
}

TEST_CASE("publishing over the rate limit gets coalesced RATE_LIMITED errors",
          "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--publish-rate", "10", "--publish-burst", "5"});
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  for (int i = 0; i < 100; ++i) pub->publish_nowait("sensors/fast", "x");
  auto e = expect_error(*pub, v1::ERROR_RATE_LIMITED);
  CHECK(e.count() >= 1);
  int errors = 1;
  while (auto op = pub->wait_for(v1::Op::kError, 300ms)) ++errors;
  CHECK(errors < 20);  // coalesced, not one per refused publish
  auto admin = env.registered("admin");
  CHECK(env.counters(*admin).rate_limited() >= 90);
}

TEST_CASE("admin from a non-admin gets NOT_ADMIN", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto pub = env.registered("pub");
  auto r = pub->admin(v1::ADMIN_STATUS);
  REQUIRE(r);
  REQUIRE(r->has_error());
  CHECK(r->error().code() == v1::ERROR_NOT_ADMIN);
  auto admin = env.registered("admin");
  auto ok = admin->admin(v1::ADMIN_CLIENTS);
  REQUIRE(ok);
  REQUIRE(ok->has_admin_reply());
  CHECK(ok->admin_reply().clients_size() == 2);
}

TEST_CASE("admin kick ends the session with KICKED and presence kicked", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin");
  REQUIRE(admin->subscribe({"$SYS/presence/#"}));
  auto robot = env.registered("robot");
  auto r = admin->admin(v1::ADMIN_KICK, "robot");
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  expect_error(*robot, v1::ERROR_KICKED);
  auto off = wait_presence(*admin, "robot", "offline", 5s);
  REQUIRE(off);
  CHECK(off->reason() == "kicked");
  // A kicked peer may register again (revoke is what keeps it out).
  robot->publish_nowait("robot/robot/x", "y");
  expect_error(*robot, v1::ERROR_NOT_REGISTERED);
  auto unknown = admin->admin(v1::ADMIN_KICK, "nobody");
  REQUIRE(unknown);
  CHECK(unknown->has_error());
}

TEST_CASE("admin revoke cuts the session and refuses the key", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin");
  REQUIRE(admin->subscribe({"$SYS/presence/#", "robot/#"}));
  auto robot = env.registered("robot");
  auto r = admin->admin(v1::ADMIN_REVOKE, "robot");
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  expect_error(*robot, v1::ERROR_REVOKED);
  auto off = wait_presence(*admin, "robot", "offline", 5s);
  REQUIRE(off);
  CHECK(off->reason() == "revoked");
  // Further messages on the live connection: REVOKED, nothing routed.
  robot->publish_nowait("robot/robot/telemetry", "after revoke");
  expect_error(*robot, v1::ERROR_REVOKED);
  robot->register_peer();
  CHECK_FALSE(admin->wait_deliver("robot/robot/telemetry", 500ms));
  // A new connection with the key is refused by ZAP.
  auto again = env.connect("robot");
  CHECK_FALSE(again->register_peer(v1::ROLE_AGENT, 0, 1500ms));
}

TEST_CASE("admin reload applies the edited allow-list", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin");
  auto sub = env.registered("sub");
  REQUIRE(sub->subscribe({"sensors/#", "robot/#"}));
  // Rewrite the ACL: "sub" keeps sensors only, "robot" disappears.
  std::string acl = test::read_file(env.broker.acl_path());
  std::ofstream out(env.broker.acl_path());
  std::string::size_type at = acl.find("name = \"robot\"");
  REQUIRE(at != std::string::npos);
  acl = acl.substr(0, acl.rfind("[[client]]", at));
  const std::string old_sub = "subscribe = [\"sensors/#\", \"$SYS/presence/#\", \"robot/#\"]";
  at = acl.find(old_sub);
  REQUIRE(at != std::string::npos);
  acl.replace(at, old_sub.size(), "subscribe = [\"sensors/#\"]");
  out << acl;
  out.close();
  auto r = admin->admin(v1::ADMIN_RELOAD);
  REQUIRE(r);
  REQUIRE(r->has_admin_reply());
  CHECK(r->admin_reply().message().find("1 subscriptions removed") != std::string::npos);
  auto clients = admin->admin(v1::ADMIN_CLIENTS);
  REQUIRE(clients);
  int sub_listed = 0;
  for (const auto& c : clients->admin_reply().clients()) {
    if (c.name() != "sub") continue;
    ++sub_listed;
    CHECK(c.subscriptions_size() == 1);
  }
  CHECK(sub_listed == 1);
  auto robot = env.connect("robot");
  CHECK_FALSE(robot->register_peer(v1::ROLE_AGENT, 0, 1500ms));
}

TEST_CASE("topics lists only what the peer may subscribe to", "[broker][integration]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto admin = env.registered("admin");
  REQUIRE(admin->publish("sensors/a", "1"));
  REQUIRE(admin->publish("secret/b", "2"));
  auto sub = env.registered("sub");
  v1::Op op;
  op.mutable_topics()->set_request_id(77);
  op.mutable_topics()->set_pattern("#");
  sub->send(op);
  auto reply = sub->wait_for(v1::Op::kTopicsReply);
  REQUIRE(reply);
  std::vector<std::string> names;
  for (const auto& t : reply->topics_reply().topics()) names.push_back(t.topic());
  CHECK(std::find(names.begin(), names.end(), "sensors/a") != names.end());
  CHECK(std::find(names.begin(), names.end(), "secret/b") == names.end());
}

TEST_CASE("$SYS/broker/stats and retained presence reach $SYS subscribers",
          "[broker][integration]") {
  BrokerEnv env(standard_clients(), {"--stats-interval-s", "1"});
  REQUIRE(env.started);
  auto robot = env.registered("robot", 60000);  // it never reads: a long interval
  auto admin = env.registered("admin");
  REQUIRE(admin->subscribe({"$SYS/#"}, true));
  // Retained presence of the peer that registered before us.
  auto presence = admin->wait_deliver("$SYS/presence/robot");
  REQUIRE(presence);
  CHECK(presence->retained());
  CHECK(presence->publisher() == "$SYS");
  CHECK(presence->payload().find("\"state\":\"online\"") != std::string::npos);
  auto stats = admin->wait_deliver("$SYS/broker/stats", 5s);
  REQUIRE(stats);
  v1::BrokerStatus st;
  REQUIRE(google::protobuf::util::JsonStringToMessage(stats->payload(), &st).ok());
  CHECK(st.peers() == 2);
  CHECK(st.counters().sessions_opened() == 2);
  CHECK(st.endpoint() == env.broker.endpoint());
}
