// Federation's seam in the routing core, in process (federation_port.hpp):
// the one export hook, the deferred PUBACK of a command, the import entry
// point.  No NATS here: a recording port stands for Federation, whose own
// behaviour the cluster tests (tests/federation) prove over real nats-server.
#include <catch2/catch.hpp>

#include <map>

#include "core.hpp"
#include "federation_port.hpp"
#include "testing/harness.hpp"

using namespace curvebus;
using namespace curvebus::broker;
using namespace curvebus::broker::testing;

namespace {

struct Exported {
  std::string topic, payload, publisher;
  bool retain = false;
  std::uint64_t seq = 0, token = 0;
};

// Answers exported() with `answer` for topics matching `commands`, kSent otherwise.
class RecordingPort : public FederationPort {
 public:
  Export exported(const ExportedPublication& p, std::uint64_t token) override {
    Exported e{std::string(p.topic),
               std::string(p.payload),
               std::string(p.publisher),
               p.retain,
               p.seq,
               token};
    seen.push_back(e);
    return topic_matches("robot/+/cmd/#", p.topic) ? command_answer : Export::kSent;
  }
  void import_done(std::uint64_t handle, std::uint32_t delivered) override {
    done[handle] = delivered;
  }
  std::vector<Exported> of(const std::string& topic) const {
    std::vector<Exported> out;
    for (const auto& e : seen)
      if (e.topic == topic) out.push_back(e);
    return out;
  }
  Export command_answer = Export::kAwaitStore;
  std::vector<Exported> seen;
  std::map<std::uint64_t, std::uint32_t> done;
};

const v1::Op* find(const std::vector<v1::Op>& ops, v1::Op::BodyCase kind) {
  for (const auto& op : ops)
    if (op.body_case() == kind) return &op;
  return nullptr;
}

void import(Harness& h, const ImportedPublication& m) {
  h.core().begin_turn();
  h.core().import_publication(m);
  h.core().end_turn();
}

}  // namespace

TEST_CASE(
    "federation hook: every accepted publication is handed to the port once, with its "
    "publisher and seq, and a refused one never is",
    "[inproc][federation]") {
  Harness::Options o;
  o.names = {{"dev", "client", true, {"#"}, {"#"}, "", ""},
             {"cam", "client", false, {"cam/#"}, {"cam/#"}, "", ""}};
  Harness h(std::move(o));
  RecordingPort port;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  auto cam = h.open("cam");
  h.send(dev, ops::publish("robot/alex/telemetry", "t1"));
  h.send(dev, ops::publish("robot/alex/status", "up", false, true));
  h.send(cam, ops::publish("robot/alex/telemetry", "forged"));  // outside cam's ACL
  const auto tel = port.of("robot/alex/telemetry");
  REQUIRE(tel.size() == 1);
  CHECK(tel[0].payload == "t1");
  CHECK(tel[0].publisher == "dev");
  CHECK(tel[0].seq == 1);
  CHECK_FALSE(tel[0].retain);
  const auto st = port.of("robot/alex/status");
  REQUIRE(st.size() == 1);
  CHECK(st[0].retain);
  // The broker's own $SYS publications (presence here) go through the same hook.
  CHECK(port.of("$SYS/presence/cam").size() == 1);
}

TEST_CASE(
    "federation hook: a command's PUBACK waits for its store, and a failed store answers "
    "FEDERATION_UNAVAILABLE with the reason, and the local subscriber got it either way",
    "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  auto agent = h.open("dev");  // a local subscriber that is not the robot's agent
  REQUIRE(h.request(agent, ops::subscribe({"robot/alex/cmd"})).has_suback());
  h.take(dev);

  auto cmd = ops::publish("robot/alex/cmd", "forward", true);
  cmd.mutable_publish()->set_request_id(41);
  h.send(dev, cmd);
  CHECK(find(h.take(dev), v1::Op::kPuback) == nullptr);  // not yet: the store is pending
  CHECK(find(h.take(agent), v1::Op::kDeliver) != nullptr);
  const auto sent = port.of("robot/alex/cmd");
  REQUIRE(sent.size() == 1);
  h.core().begin_turn();
  h.core().federation_stored(sent[0].token, true, "");
  h.core().end_turn();
  auto got = h.take(dev);
  const v1::Op* ack = find(got, v1::Op::kPuback);
  REQUIRE(ack != nullptr);
  CHECK(ack->puback().request_id() == 41);
  CHECK(ack->puback().delivered() == 1);
  CHECK(ack->puback().seq() == 1);

  auto cmd2 = ops::publish("robot/alex/cmd", "back", true);
  cmd2.mutable_publish()->set_request_id(42);
  h.send(dev, cmd2);
  const auto sent2 = port.of("robot/alex/cmd");
  REQUIRE(sent2.size() == 2);
  h.core().begin_turn();
  h.core().federation_stored(sent2[1].token, false, "JetStream did not acknowledge it");
  h.core().end_turn();
  got = h.take(dev);
  CHECK(find(got, v1::Op::kPuback) == nullptr);
  const v1::Op* err = find(got, v1::Op::kError);
  REQUIRE(err != nullptr);
  CHECK(err->error().code() == v1::ERROR_FEDERATION_UNAVAILABLE);
  CHECK(err->error().request_id() == 42);
  CHECK(err->error().message().find("JetStream did not acknowledge it") != std::string::npos);
  CHECK(find(h.take(agent), v1::Op::kDeliver) != nullptr);
}

TEST_CASE("federation hook: a command that cannot be stored now is refused at once",
          "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  port.command_answer = FederationPort::Export::kUnavailable;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  h.take(dev);
  auto cmd = ops::publish("robot/alex/cmd/stop", "", true);
  cmd.mutable_publish()->set_request_id(7);
  h.send(dev, cmd);
  const auto got = h.take(dev);
  const v1::Op* err = find(got, v1::Op::kError);
  REQUIRE(err != nullptr);
  CHECK(err->error().code() == v1::ERROR_FEDERATION_UNAVAILABLE);
  CHECK(err->error().request_id() == 7);
  CHECK(find(got, v1::Op::kPuback) == nullptr);
}

TEST_CASE(
    "federation hook: a publisher that left before its store ended is not answered, and "
    "nothing breaks",
    "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  h.send(dev, ops::publish("robot/alex/cmd", "x", true));
  REQUIRE(port.of("robot/alex/cmd").size() == 1);
  h.disconnect(dev);
  h.send(dev, ops::bye("gone"));
  h.core().begin_turn();
  h.core().federation_stored(port.of("robot/alex/cmd")[0].token, true, "");
  h.core().end_turn();
  auto other = h.open("dev");
  CHECK(h.registered(other));
}

TEST_CASE(
    "federation import: delivered to local subscribers as <site>/<name>, never exported "
    "again, and a command reports how many took it",
    "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  REQUIRE(h.request(dev, ops::subscribe({"robot/#"})).has_suback());
  port.seen.clear();

  ImportedPublication m;
  m.topic = "robot/alex/telemetry";
  m.publisher = "lab-b/alex";
  m.payload = "from far away";
  import(h, m);
  auto got = h.take(dev);
  const v1::Op* d = find(got, v1::Op::kDeliver);
  REQUIRE(d != nullptr);
  CHECK(d->deliver().publisher() == "lab-b/alex");
  CHECK(d->deliver().payload() == "from far away");
  CHECK(port.seen.empty());  // loop-free: an import is never handed to the port

  ImportedPublication c;
  c.topic = "robot/alex/cmd";
  c.publisher = "lab-b/dev";
  c.payload = "forward";
  c.command = true;
  c.handle = 99;
  import(h, c);
  REQUIRE(port.done.count(99) == 1);
  CHECK(port.done[99] == 1);
  c.topic = "robot/nobody/cmd/move";
  c.handle = 100;
  REQUIRE(h.request(dev, ops::unsubscribe({"robot/#"})).has_unsuback());
  import(h, c);
  REQUIRE(port.done.count(100) == 1);
  CHECK(port.done[100] == 0);  // no subscriber: Federation asks for it again later
  CHECK(port.seen.empty());
}

TEST_CASE("federation import: a retained import is what pull returns", "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  ImportedPublication m;
  m.topic = "$SYS/federation/lab-a/presence/alex";
  m.publisher = "lab-a/$SYS";
  m.payload = "{\"online\":true}";
  m.retain = true;
  import(h, m);
  const v1::Op reply = h.request(dev, ops::pull("$SYS/federation/lab-a/presence/alex", 0, 1));
  REQUIRE(reply.has_pull_reply());
  REQUIRE(reply.pull_reply().messages_size() >= 1);
  CHECK(reply.pull_reply().messages(0).payload() == "{\"online\":true}");
  CHECK(reply.pull_reply().messages(0).publisher() == "lab-a/$SYS");
}

TEST_CASE(
    "federation hook: a command for a robot whose agent is on this broker is answered as a "
    "local one, even with the backbone down",
    "[inproc][federation]") {
  Harness h;
  RecordingPort port;
  port.command_answer = FederationPort::Export::kUnavailable;
  h.core().set_federation_port(&port);
  auto dev = h.open("dev");
  auto agent = h.open("alex");  // role agent
  REQUIRE(h.request(agent, ops::subscribe({"robot/alex/cmd"})).has_suback());
  h.take(dev);
  auto cmd = ops::publish("robot/alex/cmd", "forward", true);
  cmd.mutable_publish()->set_request_id(9);
  h.send(dev, cmd);
  const auto got = h.take(dev);
  CHECK(find(got, v1::Op::kError) == nullptr);
  const v1::Op* ack = find(got, v1::Op::kPuback);
  REQUIRE(ack != nullptr);
  CHECK(ack->puback().delivered() == 1);
  CHECK(port.of("robot/alex/cmd").size() == 1);  // still handed over for the other sites
}
