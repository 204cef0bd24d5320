// Internal: the broker's state and the functions that act on it.  One class,
// its member functions split by concern over the files of broker/src (one
// verb, one place): broker.cpp (event loop, sockets), zap.cpp, monitor.cpp,
// session.cpp (sessions, outbound queues, flushing), dispatch.cpp,
// handle_*.cpp (one per operation), liveness_timer.cpp, presence.cpp,
// stats.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "audit.hpp"
#include "clock.hpp"
#include "curvebus/acl.hpp"
#include "curvebus/broker/broker.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/history.hpp"
#include "curvebus/broker/liveness.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "curvebus/broker/topic_tree.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/revocations.hpp"
#include "curvebus/status.hpp"
#include "curvebus/text.hpp"
#include "curvebus/topic.hpp"
#include "log_limiter.hpp"
#include "peer_writer.hpp"
#include "retained_log.hpp"

namespace curvebus::broker {

using Bytes = std::shared_ptr<const std::string>;

// What every session of one name shares: the name's publish rate, its work
// budget, its storage quota and its session count.  Entries are never erased
// (bounded by the names the allow-list ever held), so pointers stay valid.
struct NameState {
  std::uint32_t owner = 0;  // index in Core::owners_ (storage accounting)
  std::string name;
  std::uint32_t sessions = 0;
  TokenBucket publish;                // publications per second, all sessions together
  TokenBucket work;                   // work units (about a microsecond each) per second
  std::uint64_t stored_bytes = 0;     // history + retained values charged to this name
  std::uint64_t refused_pending = 0;  // budget refusals not yet reported
};

// What the handshake proved about the connection a message came on (ZeroMQ
// message metadata), kept with input served later.
struct PeerMeta {
  std::string user;               // ZAP User-Id: the peer's Z85 public key
  bool chose_routing_id = false;  // the peer set its own routing id (handshake "Identity")
  std::string address;            // Peer-Address
};
PeerMeta meta_of(const zmq::message_t& body);

// Ops of one frame left for a later loop turn: work is served in slices so
// that no frame, however large, holds up other peers (see input.cpp).
struct PendingInput {
  std::unique_ptr<std::string> bytes;  // the frame, when `views` point into it
  std::vector<PublishView> views;      // a PUBLISH-only frame, read in place
  std::unique_ptr<v1::Frame> frame;    // a decoded frame
  std::vector<std::string> raw_ops;    // ops of a frame that did not decode as a whole
  bool undecoded = false;              // `bytes` is a whole message not looked at yet
  PeerMeta meta;
  std::size_t next = 0;  // first op not yet served
  std::size_t size() const {
    return views.size() + (frame ? static_cast<std::size_t>(frame->ops_size()) : 0) +
           raw_ops.size();
  }
};

// One registered connection (a ROUTER routing id that sent REGISTER).
struct Session {
  std::uint64_t id = 0;               // internal key, also the subscriber id in the topic tree
  std::string routing_id;             // listener tag + the ROUTER's routing id (see peer_id())
  std::string session_id;             // the protocol's session id
  std::string name;                   // the allow-list name of `key`
  std::string key;                    // Z85 public key proven by the handshake: the identity
  std::int64_t key_not_after_us = 0;  // 0 = the key does not expire
  NameState* ns = nullptr;
  std::string fingerprint;
  std::string address;
  std::string client_name;
  v1::Role role = v1::ROLE_CLIENT;
  AclEntry rights;
  std::uint32_t heartbeat_ms = 1000;
  std::int64_t connected_us = 0;
  LivenessTimers::Entry alive;  // last heard, last sent, pinged (liveness.hpp)
  std::uint64_t ping_nonce = 0;
  std::set<std::string> subscriptions;
  std::vector<std::string> provides;

  // Outbound: encoded single-op frames, and a built batch that met EAGAIN.
  std::deque<Bytes> queue;
  std::size_t queue_bytes = 0;
  std::string stalled;  // a batch refused with EAGAIN, sent first next time
  std::size_t stalled_ops = 0;
  bool dirty = false;

  std::uint64_t dropped = 0;
  std::uint64_t control_dropped = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;

  std::uint64_t rate_refused_pending = 0;
  std::uint64_t busy_refused_pending = 0;
  std::string busy_answers;  // the op of the pending BUSY refusals
  std::int64_t rate_error_ms = -1000000;
  std::int64_t busy_error_ms = -1000000;

  // Input not yet served (a large frame being served in slices), in order.
  std::deque<PendingInput> input;
  std::size_t input_bytes = 0;

  std::size_t pending_ops() const { return queue.size() + stalled_ops; }
  bool has_output() const { return !queue.empty() || !stalled.empty(); }
};

struct Topic {
  explicit Topic(std::size_t depth, std::size_t bytes) : history(depth, bytes) {}
  std::uint64_t seq = 0;
  TopicHistory history;
  Bytes retained;                    // encoded Deliver with retained=true, or null
  std::uint32_t retained_owner = 0;  // who is charged for `retained`
  std::uint32_t creator = 0;         // who is charged for the topic's own overhead
  std::int64_t last_active_ms = 0;   // last publication (steady clock), for freeing idle topics
  // The topic tree's answer for this topic, valid while the tree's
  // generation is `subscribers_generation` (routing without a tree walk).
  std::vector<SubscriberId> subscribers;
  std::uint64_t subscribers_generation = 0;
  std::vector<std::string> publishers;  // bounded
  std::uint64_t messages = 0;
  std::int64_t last_publish_us = 0;
  // publication rate: count in the current and previous 10 s windows
  std::int64_t window_start_ms = 0;
  std::uint64_t window_count = 0;
  double rate = 0;
};

struct Counters {
  std::uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  std::uint64_t publications = 0, deliveries = 0, dropped = 0, denials = 0, errors_sent = 0;
  std::uint64_t malformed = 0, oversized = 0, rate_limited = 0, handshake_failures = 0;
  std::uint64_t auth_denied = 0, sessions_opened = 0, sessions_timed_out = 0, frames_out = 0;
  std::uint64_t not_admin = 0;
  std::uint64_t retained_saves = 0, retained_save_failures = 0;
  std::uint64_t identity_mismatches = 0, routing_ids_refused = 0, budget_refused = 0;
  std::uint64_t quota_refused = 0, sessions_refused = 0, topics_freed = 0, input_deferred = 0;
};

// What a core gets from outside besides its Config.  The broker executable
// passes nothing (the system clock, the ROUTER sockets); the in-process
// harness passes its own (testing/harness.hpp).
struct Environment {
  Clock* clock = nullptr;        // null: system_clock()
  PeerWriter* writer = nullptr;  // null: the listeners' ROUTER sockets (RouterWriter)
  // RetainedLog::Options::sync: null is fdatasync/fsync.
  std::function<int(int fd)> retained_sync;
};

// What a topic costs besides its publications (map nodes, the Topic, its
// name twice, its subscriber cache), roughly; charged to its creator.
constexpr std::int64_t kTopicOverhead = 512;

// The part of a pattern before its first wildcard: every topic the pattern
// matches starts with it ("robot/alex/#" -> "robot/alex"), so an ordered scan
// can start there and stop when names stop starting with it.
std::string literal_prefix(std::string_view pattern);

// Directory entry: a topic the broker holds and/or names that declared they
// provide it.  Kept in an ordered map so TOPICS and retained delivery scan
// only the prefix a pattern can match, and can resume after a topic.
struct DirEntry {
  Topic* topic = nullptr;
  std::map<std::string, std::uint32_t> providers;  // name -> sessions declaring it
};

// The encoded single-op frame of a HEARTBEAT (what an idle peer sends, and
// what the broker sends), shared.
const Bytes& heartbeat_frame();

// Why a session ended; the presence reason.
enum class CloseReason { kClosed, kTimeout, kKicked, kRevoked, kIdentity, kKeyExpired };
const char* reason_name(CloseReason r);

// Writes `bytes` to `path` through a temporary file, fsync and rename, so a
// reader (or a restart after a crash) sees the old file or the new one, never
// half of one (retained_store.cpp).
bool write_file_atomically(const std::string& path, std::string_view bytes, int mode);

// Protobuf's JSON mapping with proto field names and defaults printed ($SYS payloads).
std::string to_json(const google::protobuf::Message& m);

class Core {
 public:
  explicit Core(Config config, Environment env = {});
  ~Core();
  // The broker: keys, open(), then the sockets.
  Status start();
  int run();
  void stop();
  std::string endpoint() const {
    return listeners_.empty() ? std::string() : listeners_[0].endpoint;
  }

  // ---- in process: the core without sockets (the seam tests use)
  // Reads the allow-list, revocations, audit trail and retained values; no
  // socket.  start() calls it.
  Status open();
  // One loop turn around input: begin_turn() sets the turn's work budget and
  // serves deferred input; input() is one incoming message from `peer` (as a
  // ROUTER hands it over, with what its handshake proved); end_turn() runs
  // what is due (liveness, key expiry, stats, sweeps, owed refusals, audit)
  // and flushes every session's output through the PeerWriter.
  void begin_turn();
  void input(const std::string& peer, const void* data, std::size_t size, const PeerMeta& meta);
  void end_turn();
  // When the next end_turn() has something to do (steady ms).
  std::int64_t next_wakeup_ms() const;
  // Input left for later turns (a large frame served in slices).
  bool has_deferred_input() const { return !backlog_.empty(); }
  // A session holds `peer`'s routing id.
  bool has_session(const std::string& peer) const { return by_routing_id_.count(peer) != 0; }
  // The clock's values, read once per turn and per incoming message.
  std::int64_t now_ms() const { return now_ms_; }
  std::int64_t now_us() const { return now_us_; }

  // ---- event loop (broker.cpp)
  void drain_listener(std::size_t index);
  long poll_timeout_ms(std::int64_t now) const;
  void refresh_clock();
  // The session-table key of a peer: one tag byte for the listener, then the
  // ROUTER's routing id.  Two listeners may hand out equal routing ids.
  static std::string peer_id(std::size_t listener, const void* rid, std::size_t size);
  // The endpoint of the listener a peer came through ("" in process).
  const std::string& listener_endpoint(const std::string& peer) const;
  // The one place output leaves: `message` (`ops` encoded ops) to `peer`
  // through the PeerWriter, counted (frames_out, messages_out, bytes_out)
  // when taken.
  PeerWriter::Result write(const std::string& peer, std::string_view message, std::size_t ops);

  // ---- authentication and audit (zap.cpp, monitor.cpp, audit_events.cpp)
  void handle_zap();
  void handle_monitor(std::size_t listener);
  // One security decision for the audit trail (file and $SYS/audit/<event>).
  void audit(std::string_view event, std::string_view who,
             std::initializer_list<AuditField> fields);
  void run_audit(std::int64_t now);

  // ---- input: identity check, slicing of large frames (input.cpp)
  void on_message(const std::string& peer, zmq::message_t& body);
  // The same for a message already taken apart: `user` is its ZAP User-Id
  // (null when none), `meta` reads the rest of its metadata when needed.
  // The seam in-process tests and the fuzz harness feed frames through.
  void on_input(const std::string& peer, const void* data, std::size_t size, const char* user,
                const std::function<PeerMeta()>& meta);
  // Splits a message into `in` (decoded frame or raw ops); false when it is
  // not a Frame at all (answered MALFORMED).
  bool decode_input(const std::string& peer, const void* data, std::size_t size, PendingInput& in);
  // Serves ops of `in` from in.next on while the turn's work allows (all of
  // them with `force`); true when every op was served.  The peer's session
  // may be created (REGISTER) or dropped while serving.
  bool serve(const std::string& peer, PendingInput& in, bool force);
  void defer(Session& s, PendingInput&& in);
  double op_work_ = 0;  // work units of the op being served
  void serve_backlogs();
  void identity_mismatch(Session& s, const char* user);
  // The session holding `peer`'s routing id on another listener of the same
  // endpoint (another I/O thread's share of the connections), or null.
  Session* sibling_session(const std::string& peer);
  std::int64_t turn_units_ = 0;         // work left in this loop turn
  std::vector<std::uint64_t> backlog_;  // sessions with deferred input, round robin

  // ---- dispatch (dispatch.cpp)
  void dispatch_op(const std::string& peer, const PeerMeta& meta, v1::Op& op);
  void diagnose_bad_op(const std::string& peer, const std::string& bytes);
  void malformed(const std::string& peer, std::size_t bytes, std::uint64_t request_id,
                 const char* answers, const std::string& message);
  void on_op_registered(Session& s, v1::Op& op);
  void on_op_unregistered(const std::string& peer, const PeerMeta& meta, v1::Op& op);
  void reply_unregistered(const std::string& peer, v1::ErrorCode code, const std::string& message,
                          const char* answers, std::uint64_t request_id);
  // Takes `units` of the name's work budget; false (ERROR BUSY sent, coalesced,
  // counted) when the budget is spent.
  bool charge_work(Session& s, double units, std::uint64_t request_id, const char* answers);
  // Sends the coalesced ERRORs (RATE_LIMITED, BUSY) still owed: refusals
  // counted after the last ERROR of a session get theirs within ~100 ms even
  // when no further refusal comes.
  void report_refusals(std::int64_t now);
  void report_refusals_of(Session& s, std::int64_t now, std::uint64_t request_id);
  std::unordered_set<std::uint64_t> refusals_owed_;

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
  // The one place that answers an ACL refusal: counted, audited, ERROR DENIED.
  void deny(Session& s, const char* op, const std::string& topic, std::uint64_t request_id,
            const std::string& message, v1::ErrorCode code = v1::ERROR_DENIED);

  // ---- routing and storage (handle_publish.cpp, storage.cpp)
  struct RouteResult {
    std::uint64_t seq = 0;
    std::uint32_t delivered = 0;
    std::uint32_t dropped = 0;
  };
  enum class RouteStatus { kOk, kTooManyTopics, kQuota, kBudget };
  // Accepts a publication already checked (topic valid, ACL allowed).
  RouteStatus route(const std::string& topic, std::string_view payload, NameState& publisher,
                    bool retain, std::string_view content_type, RouteResult& result);
  void publish_sys(const std::string& topic, const std::string& json, bool retain = true);
  NameState& name_state(const std::string& name);
  Topic* create_topic(const std::string& name, NameState& creator);
  void free_topic(const std::string& name);
  void charge(std::uint32_t owner, std::int64_t bytes);
  void sweep_topics(std::int64_t now);
  std::uint64_t stored_bytes_ = 0;
  std::vector<NameState*> owners_;
  std::string sweep_cursor_;
  std::int64_t next_sweep_ms_ = 0;

  // ---- sessions and output (session.cpp)
  Session* find_session(const std::string& peer);
  Session* find_session(std::uint64_t id);
  bool enqueue_delivery(Session& s, const Bytes& bytes);
  void send_control(Session& s, const v1::Op& op);
  // The same for an op already encoded (`what` names it in a log line).
  void send_control(Session& s, const Bytes& encoded, const char* what);
  void send_error(Session& s, v1::ErrorCode code, std::uint64_t request_id,
                  const std::string& message, const std::string& topic, const char* answers,
                  std::uint64_t count = 0);
  void mark_dirty(Session& s);
  bool flush_session(Session& s, bool may_drop = true);
  void flush_all();
  void drop_session(Session& s, CloseReason reason, const std::string& detail);
  void tombstone(const std::string& peer, v1::ErrorCode code);
  void add_provides(const Session& s);
  void remove_provides(const Session& s);

  // ---- alive signal and key validity (liveness_timer.cpp)
  void run_liveness(std::int64_t now);
  // A message from the peer of `s` at `now`: alive, answered with HEARTBEAT
  // when the broker owes it one (liveness.hpp).
  void heard(Session& s, std::int64_t now);
  void run_key_expiry(std::int64_t now);
  using ExpiryEntry = std::pair<std::int64_t, std::uint64_t>;  // not_after_us, session id
  std::priority_queue<ExpiryEntry, std::vector<ExpiryEntry>, std::greater<ExpiryEntry>> expiry_;

  // ---- presence and stats (presence.cpp, stats.cpp)
  void publish_presence(const Session& s, bool online, CloseReason reason);
  void fill_status(v1::BrokerStatus& st) const;
  void fill_counters(v1::Counters& c) const;
  void fill_topic_info(const std::string& name, const Topic* t, const DirEntry& dir,
                       v1::TopicInfo& info) const;
  void fill_client_info(const Session& s, v1::ClientInfo& info) const;
  void run_stats(std::int64_t now);

  // ---- retained values on disk (retained_store.cpp)
  void load_retained();
  void persist_retained(const std::string& topic, const Bytes& value);
  bool persisting() const { return retained_log_ != nullptr; }

  // ---- keys, revocation, admin actions (handle_admin.cpp, keys.cpp)
  // Why `key` (of `name`) may not hold a session now; empty when it may.
  std::string key_refusal(const std::string& key, const std::string& name, std::int64_t now_us,
                          v1::ErrorCode* code) const;
  std::size_t cut_sessions(const std::function<bool(const Session&)>& pred, v1::ErrorCode code,
                           CloseReason reason, const std::string& message);
  std::size_t kick_name(const std::string& name);
  Status reload_acl(std::string& summary);
  Status save_revocations();

  // ---- state
  Config config_;
  Environment env_;
  Clock* clock_;
  std::int64_t now_ms_ = 0, now_us_ = 0;
  TopicRules topic_rules_;
  std::string broker_id_;
  std::int64_t started_us_ = 0;

  zmq::context_t context_;
  std::vector<Listener> listeners_;
  RouterWriter router_writer_{listeners_};
  PeerWriter* writer_;
  zmq::socket_t zap_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  bool started_ = false;

  AllowList acl_;
  RevocationList revocations_;
  std::unordered_map<std::string, TokenBucket> handshake_limit_;  // per key

  std::uint64_t next_session_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::string, Session*> by_routing_id_;  // owned by sessions_
  std::unordered_map<std::string, NameState> names_;

  std::unordered_map<std::string, v1::ErrorCode> tombstones_;
  std::deque<std::string> tombstone_order_;
  std::unordered_map<std::string, TokenBucket> unregistered_limit_;

  std::unordered_map<std::string, std::unique_ptr<Topic>> topics_;
  std::map<std::string, DirEntry> directory_;
  TopicTree tree_;

  LivenessTimers liveness_;
  std::vector<std::uint64_t> dirty_;
  std::unordered_set<std::uint64_t> backlogged_;
  std::int64_t next_stats_ms_ = 0;

  std::unique_ptr<RetainedLog> retained_log_;
  std::unique_ptr<AuditLog> audit_;
  std::int64_t next_audit_tick_ms_ = 0;
  // Connections seen by the monitor: fd -> "address:port" (handshake audit).
  std::unordered_map<int, std::string> connections_by_fd_;
  // Handshake failures waiting for the DISCONNECTED event that names their fd.
  std::deque<std::pair<std::size_t, std::string>> pending_handshake_failures_;  // listener, kind

  Counters counters_;
  std::uint32_t connections_ = 0;
  v1::Frame frame_;                         // reused for decoding
  std::vector<PublishView> publish_views_;  // the fast path's scan of a PUBLISH-only frame
  std::string topic_scratch_;

  LogLimiter log_auth_{5, 1000};
  LogLimiter log_denied_{5, 1000};
  LogLimiter log_bad_input_{5, 1000};
  LogLimiter log_handshake_{5, 1000};
  LogLimiter log_drop_{5, 1000};
  LogLimiter log_rate_{5, 1000};
};

}  // namespace curvebus::broker
