// Harness: the broker core in process, without sockets, processes or
// threads of its own — the seam every in-process test (broker/src/test_*.cpp)
// and the dispatch fuzzer feed frames through.
//
// What it is.  A real Core (the same handlers, tables, ACL checks, limits and
// audit as curvebus-broker) built from a Config, with an allow-list the
// harness writes into a temporary home from NameSpecs (each name gets a
// fresh CURVE key pair), a ManualClock instead of the system's, and a
// RecordingWriter where the ROUTER sockets would be.  Nothing is bound; the
// handshake's part (ZAP: which key a connection proved) is played by the
// Peer: every message a test sends carries the Peer's key as libzmq's
// User-Id would.
//
// How it runs.  Each send*() is one incoming ZeroMQ message followed by the
// broker's loop turn (Core::begin_turn / input / end_turn): the ops are
// served, what is due runs (liveness, key expiry, stats, audit, owed
// refusals) and every session's output is flushed through the writer.  When a
// large frame was left for later turns (input slicing), send() runs more
// turns at the same time until none is left; send_one_turn() does not.  Time
// moves only in advance(), which runs a turn at every deadline the core has
// on the way (exactly as the event loop wakes), so timeouts fire in order.
//
// What a test reads.  take(peer) decodes what the broker wrote to that peer
// since the last take (each written message is one Frame: a batch of ops) and
// returns the ops in order; request() sends one request and returns its
// answer, keeping the other ops for the next take().  status() is ADMIN
// STATUS's BrokerStatus (counters included) without going through a session.
// core() is there for what no op shows; prefer ops and status().
//
// Failures of the harness itself (a name not declared, REGISTER refused in
// open(), no answer in request()) throw std::runtime_error with the broker's
// reply in the message, which the test framework reports.
//
// Logging: the harness sets spdlog's level to "error" (the broker's log would
// drown a test's output); CURVEBUS_TEST_LOG=debug (or info, ...) shows it.
//
// Ownership and thread: a Harness owns its Core, clock, writer and temporary
// home (removed in the destructor).  One thread; not copyable.  The retained
// log, when persist_retained is set, runs its own writer thread as in the
// broker (Options::retained_sync reaches its syncs).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "clock.hpp"
#include "curvebus.pb.h"
#include "curvebus/broker/config.hpp"
#include "peer_writer.hpp"

namespace curvebus::broker {
class Core;
}

namespace curvebus::broker::testing {

// A clock that moves only when told.  Starts at steady 1,000,000 ms and wall
// 2026-01-01T00:00:00Z; both move together.
class ManualClock final : public Clock {
 public:
  std::int64_t steady_ms() override { return steady_ms_; }
  std::int64_t wall_us() override { return wall_us_; }
  void advance(std::chrono::milliseconds d) {
    steady_ms_ += d.count();
    wall_us_ += d.count() * 1000;
  }
  // Sets the wall clock only (key validity, timestamps); steady is unchanged.
  void set_wall_us(std::int64_t us) { wall_us_ = us; }

 private:
  std::int64_t steady_ms_ = 1000000;
  std::int64_t wall_us_ = 1767225600000000;  // 2026-01-01T00:00:00Z
};

// Records every message the core writes, per peer.  A peer can be blocked
// (writes are kWouldBlock: its pipe is full) or gone (kGone: disconnected).
class RecordingWriter final : public PeerWriter {
 public:
  Result write(const std::string& peer, std::string_view message) override;
  void set_blocked(const std::string& peer, bool blocked);
  void set_gone(const std::string& peer) { gone_.insert(peer); }
  // The messages written to `peer` since the last take, oldest first.
  std::vector<std::string> take(const std::string& peer);
  std::size_t waiting(const std::string& peer) const;
  std::vector<std::string> peers() const;             // with messages waiting
  std::uint64_t refused() const { return refused_; }  // kWouldBlock/kGone answers given

 private:
  std::map<std::string, std::vector<std::string>> messages_;
  std::set<std::string> blocked_, gone_;
  std::uint64_t refused_ = 0;
};

// One allow-list entry the harness declares (see curvebus/acl.hpp).
struct NameSpec {
  std::string name;
  std::string role = "client";  // client | provider | agent
  bool admin = false;
  std::vector<std::string> publish;    // patterns ({name} allowed)
  std::vector<std::string> subscribe;  // patterns
  std::string not_before, not_after;   // the key's validity, RFC 3339 ("" = unbounded)
};

// One connection: a routing id and the key its handshake proved.
struct Peer {
  std::string id;    // the session-table key (listener tag + routing id)
  std::string name;  // the allow-list name whose key it uses
  std::string key;   // Z85 public key: the ZAP User-Id of its messages ("" = none)
  std::string address = "127.0.0.1:40000";
  bool chose_routing_id = false;  // as if the DEALER had set ZMQ_ROUTING_ID
  v1::Registered registered;      // what open() got back
};

// What open() sends in REGISTER.
struct RegisterSpec {
  std::uint32_t heartbeat_ms = 0;  // 0 = the broker's default
  std::string client_name = "harness";
  std::vector<std::string> provides;
};

class Harness {
 public:
  struct Options {
    // Limits and behaviour; the paths (acl, revocations, audit, retained
    // file, home) are the harness's own and are overwritten.
    Config config;
    // The allow-list.  Empty: "dev" (admin; publish #; subscribe # and
    // $SYS/#) and "alex" (agent; publish robot/{name}/#; subscribe
    // robot/{name}/cmd, robot/{name}/cmd/clear-estop, $SYS/presence/#), as
    // the broker's embedded default.
    std::vector<NameSpec> names;
    bool persist_retained = false;             // keep retained values in <home>/retained.pb
    bool keep_revocations = true;              // false: no revocations_file (revocations in memory)
    bool keep_audit = true;                    // false: no audit_file (events counted, not written)
    std::function<int(int fd)> retained_sync;  // the retained log's sync (null: fsync)
  };

  Harness();
  explicit Harness(Options options);
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // A new connection speaking with `name`'s key, not registered.
  Peer connect(const std::string& name);
  // connect() and REGISTER; the REGISTERED reply is in the result's
  // `registered`.  Throws when the broker answers anything else.
  Peer open(const std::string& name, const RegisterSpec& spec = {});
  // open() asking for the alive-signal interval `heartbeat_ms`.
  Peer open(const std::string& name, std::uint32_t heartbeat_ms);

  // One incoming message from `peer` and the loop turn(s) after it.
  void send(const Peer& peer, const v1::Op& op);                   // one op, one frame
  void send(const Peer& peer, const std::vector<v1::Op>& ops);     // ops in one frame
  void send_bytes(const Peer& peer, std::string_view message);     // any bytes
  void send_one_turn(const Peer& peer, std::string_view message);  // no extra turns

  // The ops written to `peer` since the last take, in order.
  std::vector<v1::Op> take(const Peer& peer);
  // The ZeroMQ messages (batches) written to `peer` since the last take.
  std::vector<std::string> take_messages(const Peer& peer);
  // take() for every peer anything was written to, by peer id.
  std::map<std::string, std::vector<v1::Op>> take_all();
  // True while `peer` has a session (REGISTER accepted, not closed since).
  bool registered(const Peer& peer) const;
  // Sends `op` (a request: its request_id is set when 0) and returns the op
  // that answers it (answered_request_id); other ops written meanwhile stay
  // for the next take().  Throws when nothing answers.
  v1::Op request(const Peer& peer, v1::Op op);

  // Moves the clock forward, running a loop turn at every deadline on the way.
  void advance(std::chrono::milliseconds d);
  // One loop turn now (deferred input, timers, flush).
  void turn();

  // The peer's pipe is full (writes would block) / the peer disconnected.
  void set_blocked(const Peer& peer, bool blocked);
  void disconnect(const Peer& peer);

  // ADMIN STATUS's answer, counters included.
  v1::BrokerStatus status();

  Core& core() { return *core_; }
  const Config& config() const { return config_; }
  const std::string& home() const { return home_; }
  ManualClock& clock() { return clock_; }
  RecordingWriter& writer() { return writer_; }
  // The Z85 public key of a declared name.
  const std::string& key_of(const std::string& name) const;

 private:
  void settle();
  std::vector<v1::Op>& inbox(const Peer& peer);

  Config config_;
  std::string home_;
  std::map<std::string, std::string> keys_;  // name -> public key
  ManualClock clock_;
  RecordingWriter writer_;
  std::unique_ptr<Core> core_;
  std::map<std::string, std::vector<v1::Op>> inboxes_;  // decoded, not yet taken
  std::uint64_t next_peer_ = 1;
  std::uint64_t next_request_ = 1000000;
};

// Ops a test sends (request ids 0 unless given; request() fills them in).
namespace ops {
v1::Op subscribe(const std::vector<std::string>& patterns, bool want_retained = false);
v1::Op unsubscribe(const std::vector<std::string>& patterns);
v1::Op publish(const std::string& topic, const std::string& payload, bool ack = false,
               bool retain = false);
v1::Op pull(const std::string& topic, std::uint64_t since_seq = 0, std::uint32_t max_count = 0);
v1::Op topics(const std::string& pattern = "", const std::string& after = "");
v1::Op admin(v1::AdminCommand command, const std::string& argument = "");
v1::Op heartbeat();
v1::Op ping(std::uint64_t nonce);
v1::Op bye(const std::string& reason = "");
}  // namespace ops

// The ops of one kind in `ops` (body_case), in order.
std::vector<v1::Op> of_kind(const std::vector<v1::Op>& ops, v1::Op::BodyCase kind);
// The DELIVER bodies in `ops`, in order.
std::vector<v1::Deliver> deliveries(const std::vector<v1::Op>& ops);
// The first ERROR in `ops` with `code`, or null (points into `ops`).
const v1::Error* find_error(const std::vector<v1::Op>& ops, v1::ErrorCode code);
// The presence records delivered on $SYS/presence/<name>, in order; throws
// when one is not the JSON of a v1::Presence.
std::vector<v1::Presence> presences(const std::vector<v1::Op>& ops, const std::string& name);

}  // namespace curvebus::broker::testing
