// Protocol: the broker's side of curvebus v1 (docs/protocol.md) — every
// message a peer sends, checked and answered, in order, using the tables.
//
// One verb, one place: the files of broker/src that define its members are
//   input.cpp       identity of every message, input served in slices
//   dispatch.cpp    ops to their handler, refusals (deny(), budgets, rate),
//                   answers to unregistered peers
//   handle_<op>.cpp one per operation (register, subscribe, publish, pull,
//                   topics, admin): validate, check the ACL (deny() is the one
//                   refusal path), call the tables
//   liveness_timer.cpp, presence.cpp, stats.cpp, audit_events.cpp
//   protocol.cpp    the turn (what runs after input), closing sessions
//
// State it owns is only what spans ops: input deferred across turns, owed
// refusals, the housekeeping schedule, rate-limited log lines.  Everything
// else lives in the tables it holds references to: SessionTable (peers,
// output), TopicTable (topics, the one publish()), NameTable (per-name
// rates and storage), Admission (allow-list, revocations).
//
// Time: the Core sets now() before each turn and each incoming message;
// handlers read it, never the system clock.
//
// Ownership: owns nothing it is handed; everything passed to the
// constructor must outlive it.  Thread: the routing thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "admission.hpp"
#include "audit.hpp"
#include "counters.hpp"
#include "curvebus/broker/broker.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/text.hpp"
#include "curvebus/topic.hpp"
#include "federation_port.hpp"
#include "log_limiter.hpp"
#include "names.hpp"
#include "peer_writer.hpp"
#include "session_table.hpp"
#include "topic_table.hpp"

namespace curvebus::broker {

// Why a session ended; the presence reason.
enum class CloseReason { kClosed, kTimeout, kKicked, kRevoked, kIdentity, kKeyExpired };
const char* reason_name(CloseReason r);

// The encoded single-op frame of a HEARTBEAT (what an idle peer sends, and
// what the broker sends), shared.
const Bytes& heartbeat_frame();

// Protobuf's JSON mapping with proto field names and defaults printed ($SYS payloads).
std::string to_json(const google::protobuf::Message& m);

// The broker-wide facts the protocol reports (REGISTERED, ADMIN STATUS).
struct BrokerFacts {
  std::string broker_id;  // random per start
  std::int64_t started_us = 0;
  // The listeners (endpoint, shards of one endpoint), empty in process.
  const std::vector<Listener>* listeners = nullptr;
};

class Protocol {
 public:
  Protocol(const Config& config, const BrokerFacts& facts, SessionTable& sessions,
           TopicTable& topics, NameTable& names, Admission& admission, AuditLog& audit,
           Counters& counters);
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;

  // ---- time (set by the Core)
  void set_now(std::int64_t now_ms, std::int64_t now_us);
  std::int64_t now_ms() const { return now_ms_; }
  std::int64_t now_us() const { return now_us_; }

  // ---- the turn (protocol.cpp)
  // Starts the housekeeping schedule (stats, sweeps, audit) from now().
  void start_housekeeping();
  // Sets the turn's work budget and serves input deferred from earlier turns.
  void begin_turn();
  // One incoming message from `peer`: `user` is its ZAP User-Id (null when
  // none); `meta` reads the rest of its metadata when needed.
  void input(const std::string& peer, const void* data, std::size_t size, const char* user,
             const std::function<PeerMeta()>& meta);
  // What is due (liveness, key expiry, stats, sweeps, owed refusals, audit),
  // then every session's output to the writer.
  void end_turn();
  // When end_turn() next has something to do (steady ms).
  std::int64_t next_wakeup_ms() const;
  bool has_deferred_input() const { return !backlog_.empty(); }
  // How much of the turn's work budget is left (drain no more input at 0).
  bool turn_has_room() const { return turn_units_ > 0; }
  // Answers a message that was not one part (the protocol's frames are).
  void malformed(const std::string& peer, std::size_t bytes, std::uint64_t request_id,
                 const char* answers, const std::string& message);

  // ---- audit (audit_events.cpp): one security decision, to the audit file
  // and, written in full or aggregated, to $SYS/audit/<event>.
  void audit(std::string_view event, std::string_view who,
             std::initializer_list<AuditField> fields);

  // ---- views (stats.cpp)
  void fill_status(v1::BrokerStatus& st) const;

  // ---- federation (federation_hooks.cpp; docs/federation.md)
  // Every accepted local publication goes to `port`'s exported() (null: no
  // federation).  `port` must outlive the Protocol.
  void set_federation(FederationPort* port, std::function<void(v1::AdminReply&)> describe) {
    federation_ = port;
    describe_federation_ = std::move(describe);
  }
  // The one import entry point: publishes `m` here as its publisher
  // ("<site>/<name>") with no export; a command is then reported to
  // import_done().  Returns the local subscribers it was queued for.
  std::uint32_t import_publication(const ImportedPublication& m);
  // The store of the command exported with `token` ended: its publisher gets
  // the PUBACK it asked for, or ERROR FEDERATION_UNAVAILABLE with `why`.
  void federation_stored(std::uint64_t token, bool stored, const std::string& why);
  // Commands whose PUBACK waits for their store.
  std::size_t stores_pending() const { return awaiting_store_.size(); }

 private:
  // ---- input (input.cpp)
  bool decode_input(const std::string& peer, const void* data, std::size_t size, PendingInput& in);
  bool serve(const std::string& peer, PendingInput& in, bool force);
  void defer(Session& s, PendingInput&& in);
  void serve_backlogs();
  void identity_mismatch(Session& s, const char* user);
  Session* sibling_session(const std::string& peer);

  // ---- dispatch (dispatch.cpp)
  void dispatch_op(const std::string& peer, const PeerMeta& meta, v1::Op& op);
  void diagnose_bad_op(const std::string& peer, const std::string& bytes);
  void on_op_registered(Session& s, v1::Op& op);
  void on_op_unregistered(const std::string& peer, const PeerMeta& meta, v1::Op& op);
  void reply_unregistered(const std::string& peer, v1::ErrorCode code, const std::string& message,
                          const char* answers, std::uint64_t request_id);
  bool charge_work(Session& s, double units, std::uint64_t request_id, const char* answers);
  void spend_work(Session& s, double units);
  void report_refusals(std::int64_t now);
  void report_refusals_of(Session& s, std::int64_t now, std::uint64_t request_id);
  // The one path of an ACL refusal: deny() counts, logs (rate-limited),
  // audits and answers ERROR `code`; denied() is the same without the ERROR,
  // for a refusal answered inside a reply (SUBACK's PATTERN_DENIED).
  void deny(Session& s, const char* op, const std::string& topic, std::uint64_t request_id,
            const std::string& message, v1::ErrorCode code = v1::ERROR_DENIED);
  void denied(Session& s, const char* op, const std::string& topic);
  void send_control(Session& s, const v1::Op& op);
  void send_error(Session& s, v1::ErrorCode code, std::uint64_t request_id,
                  const std::string& message, const std::string& topic, const char* answers,
                  std::uint64_t count = 0);

  // ---- one handler per operation (handle_*.cpp)
  void handle_register(const std::string& peer, const PeerMeta& meta, const v1::Register& req,
                       Session* existing);
  void handle_subscribe(Session& s, const v1::Subscribe& req);
  void handle_unsubscribe(Session& s, const v1::Unsubscribe& req);
  void handle_publish(Session& s, const v1::Publish& req);
  void handle_publish(Session& s, const PublishView& req);
  void handle_pull(Session& s, const v1::Pull& req);
  void handle_topics(Session& s, const v1::Topics& req);
  void handle_admin(Session& s, const v1::Admin& req);

  // ---- sessions (protocol.cpp)
  // Closes `s`: last words when the connection still holds (not on timeout
  // or identity), its subscriptions and provided topics undone, presence
  // published, the session erased.
  void close_session(Session& s, CloseReason reason, const std::string& detail);
  std::size_t cut_sessions(const std::function<bool(const Session&)>& pred, v1::ErrorCode code,
                           CloseReason reason, const std::string& message);
  std::string reload_acl(Status& status);
  void flush();

  // ---- alive signal and key validity (liveness_timer.cpp)
  void heard(Session& s);
  void run_liveness(std::int64_t now);
  void run_key_expiry();

  // ---- federation (federation_hooks.cpp): the export hook after a
  // publication was accepted; false when its publisher was already answered.
  bool export_publication(Session* s, std::uint64_t request_id, bool ack,
                          const ExportedPublication& p, std::uint32_t delivered,
                          std::uint32_t dropped);
  // A session of role agent subscribes to `topic` here (a command for a
  // robot served by this broker is local, whatever the backbone does).
  bool has_local_agent(std::string_view topic);

  // ---- presence and stats (presence.cpp, stats.cpp)
  void publish_presence(const Session& s, bool online, CloseReason reason);
  void publish_sys(const std::string& topic, const std::string& json, bool retain = true);
  void fill_counters(v1::Counters& c) const;
  void fill_client_info(const Session& s, v1::ClientInfo& info) const;
  const std::string& listener_endpoint(const std::string& peer) const;
  void run_audit(std::int64_t now);

  const Config& config_;
  const BrokerFacts& facts_;
  SessionTable& sessions_;
  TopicTable& topics_;
  NameTable& names_;
  Admission& admission_;
  AuditLog& audit_;
  Counters& counters_;
  TopicRules topic_rules_;

  std::int64_t now_ms_ = 0, now_us_ = 0;

  // Input served in slices (input.cpp).
  std::int64_t turn_units_ = 0;             // work left in this loop turn
  double op_work_ = 0;                      // work units of the op being served
  std::vector<std::uint64_t> backlog_;      // sessions with deferred input, round robin
  v1::Frame frame_;                         // reused for decoding
  std::vector<PublishView> publish_views_;  // the fast path's scan of a PUBLISH-only frame
  std::string topic_scratch_;

  std::unordered_set<std::uint64_t> refusals_owed_;  // sessions owed a coalesced ERROR
  std::int64_t next_stats_ms_ = 0, next_sweep_ms_ = 0, next_audit_tick_ms_ = 0;
  std::vector<std::uint64_t> lost_;  // scratch for flush()

  // Federation: the port (null: none) and the commands whose PUBACK waits.
  FederationPort* federation_ = nullptr;
  std::function<void(v1::AdminReply&)> describe_federation_;
  struct AwaitingStore {
    std::uint64_t session = 0;
    std::uint64_t request_id = 0;
    bool ack = false;
    std::string topic;
    std::uint64_t seq = 0;
    std::uint32_t delivered = 0, dropped = 0;
  };
  std::unordered_map<std::uint64_t, AwaitingStore> awaiting_store_;
  std::uint64_t next_store_token_ = 1;

  LogLimiter log_denied_{5, 1000};
  LogLimiter log_bad_input_{5, 1000};
  LogLimiter log_rate_{5, 1000};
};

}  // namespace curvebus::broker
