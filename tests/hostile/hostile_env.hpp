// Set-up shared by the hostile-peer tests: a real curvebus-broker
// (BrokerHarness, 127.0.0.1, ephemeral port) with the cast of issue 10 —
// "ops" (admin, watches everything), "dev" (admin), "alex" and "bob" (robot
// agents on robot/{name}/#), "probe" (a legitimate client on probe/#) — raw
// peers for each, the audit log as parsed JSON lines, and allow-list rewrites
// for the key-rotation tests (several keys per name, validity bounds).
//
// Everything is on 127.0.0.1 and every wait is bounded.
#pragma once

#include <catch2/catch.hpp>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "attacker.hpp"
#include "curvebus/acl.hpp"
#include "fixture.hpp"
#include "json_check.hpp"

namespace curvebus::hostile::testing {

using namespace std::chrono_literals;
using test::BrokerHarness;
using test::ClientSpec;
using test::JsonObject;
using test::TempDir;

// The broker under test: CURVEBUS_HOSTILE_BROKER_BIN when set (to replay
// the suite against another build, e.g. one from before a fix), else the one
// built with the tests.
inline std::string broker_bin() {
  const char* other = std::getenv("CURVEBUS_HOSTILE_BROKER_BIN");
  return other && *other ? other : CURVEBUS_BROKER_BIN;
}

inline std::vector<ClientSpec> cast() {
  return {
      {"ops", {"#"}, {"#", "$SYS/#"}, true, "client"},
      {"dev", {"#"}, {"#"}, true, "client"},
      {"alex", {"robot/{name}/#"}, {"robot/{name}/cmd"}, false, "agent"},
      {"bob", {"robot/{name}/#"}, {"robot/{name}/cmd"}, false, "agent"},
      {"probe", {"probe/#"}, {"probe/#"}, false, "client"},
  };
}

// One [[client]] block of an allow-list: `spec`'s rights, one key, optional
// validity lines (e.g. "not_after = 2027-01-01T00:00:00Z").
inline std::string acl_block(const ClientSpec& spec, const std::string& public_key,
                             const std::string& validity = "") {
  auto list = [](const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + items[i] + "\"";
    return out + "]";
  };
  std::string out = "[[client]]\nname = \"" + spec.name + "\"\npublic_key = \"" + public_key +
                    "\"\nrole = \"" + spec.role + "\"\nadmin = " + (spec.admin ? "true" : "false") +
                    "\npublish = " + list(spec.publish) + "\nsubscribe = " + list(spec.subscribe) +
                    "\n";
  if (!validity.empty()) out += validity + "\n";
  return out + "\n";
}

// An instant as a TOML offset date-time, whole seconds, UTC.
inline std::string toml_instant(std::int64_t us) {
  return format_utc(us - us % 1000000);
}

struct HostileEnv {
  explicit HostileEnv(const std::vector<std::string>& extra_args = {},
                      const std::string& log_level = "info",
                      std::vector<ClientSpec> extra_clients = {})
      : tmp("curvebus-hostile"), broker(broker_bin(), tmp.path()) {
    broker.default_args = {"--heartbeat-ms", "200", "--log-level", log_level};
    specs = cast();
    specs.insert(specs.end(), extra_clients.begin(), extra_clients.end());
    for (const auto& c : specs) broker.add_client(c);
    started = broker.start(extra_args);
  }
  ~HostileEnv() {
    ops_.reset();
    broker.stop();
  }

  // Restarts the broker on the same endpoint (the harness rewrites its own
  // allow-list first); peers of the previous run are stale.
  bool restart(const std::vector<std::string>& extra_args = {}) {
    ops_.reset();
    return broker.restart(extra_args);
  }

  BrokerAddress address() const { return {broker.endpoint(), broker.server_public_key()}; }
  const ClientSpec& spec(const std::string& name) const {
    for (const auto& s : specs)
      if (s.name == name) return s;
    throw std::invalid_argument("no client " + name);
  }

  // A connected raw peer holding `name`'s key (no REGISTER yet).
  std::unique_ptr<RawPeer> connect(const std::string& name, RawPeer::Options o = {}) {
    return std::make_unique<RawPeer>(ctx, address(), broker.keys_of(name), std::move(o));
  }
  std::unique_ptr<RawPeer> connect_key(const KeyPair& keys, RawPeer::Options o = {}) {
    return std::make_unique<RawPeer>(ctx, address(), keys, std::move(o));
  }
  // A registered raw peer (fails the test otherwise).
  std::unique_ptr<RawPeer> registered(const std::string& name) {
    return registered_key(broker.keys_of(name), name);
  }
  std::unique_ptr<RawPeer> registered_key(const KeyPair& keys, const std::string& name) {
    auto peer = connect_key(keys);
    auto reply = peer->register_wait(v1::ROLE_CLIENT, 10000, {}, 10s);
    INFO("registering as " << name);
    REQUIRE(reply);
    INFO("error: " << (reply->has_error() ? reply->error().message() : ""));
    REQUIRE(reply->has_registered());
    REQUIRE(reply->registered().name() == name);
    return peer;
  }
  // True when a connection with `keys` gets no REGISTERED within `timeout`
  // (the handshake is refused, or REGISTER is answered with an ERROR).
  bool refused(const KeyPair& keys, std::chrono::milliseconds timeout = 1500ms) {
    auto peer = connect_key(keys);
    auto reply = peer->register_wait(v1::ROLE_CLIENT, 10000, {}, timeout);
    return !reply || !reply->has_registered();
  }

  // The admin "ops", registered on first use and watching presence.
  RawPeer& ops() {
    if (!ops_) {
      ops_ = registered("ops");
      auto ack = ops_->subscribe_wait({"$SYS/presence/#"});
      REQUIRE(ack);
      REQUIRE(ack->has_suback());
    }
    return *ops_;
  }
  v1::Counters counters() {
    auto r = ops().admin_wait(v1::ADMIN_STATUS);
    REQUIRE(r);
    REQUIRE(r->has_admin_reply());
    return r->admin_reply().status().counters();
  }
  v1::BrokerStatus status() {
    auto r = ops().admin_wait(v1::ADMIN_STATUS);
    REQUIRE(r);
    REQUIRE(r->has_admin_reply());
    return r->admin_reply().status();
  }
  // Reloads the allow-list as ops; returns the reply's message.
  std::string reload() {
    auto r = ops().admin_wait(v1::ADMIN_RELOAD);
    REQUIRE(r);
    INFO("reload: " << (r->has_error() ? r->error().message() : ""));
    REQUIRE(r->has_admin_reply());
    return r->admin_reply().message();
  }
  // Rewrites the allow-list: every client with its harness key, except the
  // names in `except`, then `more` (blocks written by the test).
  void write_acl(const std::string& more, const std::vector<std::string>& except = {}) {
    std::string text;
    for (const auto& s : specs)
      if (std::find(except.begin(), except.end(), s.name) == except.end())
        text += acl_block(s, broker.keys_of(s.name).public_key);
    text += more;
    std::ofstream(broker.acl_path()) << text;
  }

  // The next presence message of `name` with `state`, within `timeout`.
  std::optional<v1::Presence> presence(const std::string& name, const std::string& state,
                                       std::chrono::milliseconds timeout = 5000ms) {
    auto op = ops().wait_for(
        [&](const v1::Op& o) {
          if (!o.has_deliver() || o.deliver().topic() != "$SYS/presence/" + name) return false;
          v1::Presence p;
          return google::protobuf::util::JsonStringToMessage(o.deliver().payload(), &p).ok() &&
                 p.state() == state;
        },
        timeout);
    if (!op) return std::nullopt;
    v1::Presence p;
    (void)google::protobuf::util::JsonStringToMessage(op->deliver().payload(), &p);
    return p;
  }

  std::string audit_path() const { return broker.dir() + "/audit.log"; }
  // Every complete line of the audit log; each must be a flat JSON object.
  std::vector<JsonObject> audit() {
    const std::string all = test::read_file(audit_path());
    std::vector<JsonObject> out;
    std::size_t at = 0;
    while (at < all.size()) {
      const std::size_t nl = all.find('\n', at);
      if (nl == std::string::npos) break;  // a line being written
      const std::string line = all.substr(at, nl - at);
      at = nl + 1;
      auto obj = test::JsonReader::flat_object(line);
      INFO("audit line: " << line);
      REQUIRE(obj);
      out.push_back(std::move(*obj));
    }
    return out;
  }
  // Waits until an audit line satisfies `pred`.
  std::optional<JsonObject> wait_audit(const std::function<bool(const JsonObject&)>& pred,
                                       std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (auto& obj : audit())
        if (pred(obj)) return obj;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(50ms);
    }
  }
  std::string log() { return broker.process().err() + broker.process().out(); }
  int pid() { return broker.process().pid(); }

  TempDir tmp;
  BrokerHarness broker;
  std::vector<ClientSpec> specs;
  zmq::context_t ctx;
  bool started = false;

 private:
  std::unique_ptr<RawPeer> ops_;
};

// String value of `key` in an audit line ("" when absent or not a string).
inline std::string field(const JsonObject& obj, const char* key) {
  const test::JsonValue* v = test::json_get(obj, key);
  return v && v->kind == test::JsonValue::kString ? v->text : "";
}
// Number value of `key` (0 when absent or not a number).
inline std::uint64_t number(const JsonObject& obj, const char* key) {
  const test::JsonValue* v = test::json_get(obj, key);
  return v && v->kind == test::JsonValue::kNumber ? std::stoull(v->text) : 0;
}
// An audit line predicate: event == `event` and who == `who` (any who when empty).
inline std::function<bool(const JsonObject&)> audit_event(const std::string& event,
                                                          const std::string& who = "") {
  return [event, who](const JsonObject& o) {
    return field(o, "event") == event && (who.empty() || field(o, "who") == who);
  };
}

// The first ERROR with `code` among `ops`, or nullptr.
inline const v1::Error* find_error(const std::vector<v1::Op>& ops, v1::ErrorCode code) {
  for (const auto& op : ops)
    if (op.has_error() && op.error().code() == code) return &op.error();
  return nullptr;
}

}  // namespace curvebus::hostile::testing
