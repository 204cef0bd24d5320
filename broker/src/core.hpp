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
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "curvebus/acl.hpp"
#include "curvebus/broker/broker.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/history.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "curvebus/broker/topic_tree.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/status.hpp"
#include "curvebus/topic.hpp"
#include "log_limiter.hpp"

namespace curvebus::broker {

using Bytes = std::shared_ptr<const std::string>;

// One registered connection (a ROUTER routing id that sent REGISTER).
struct Session {
  std::uint64_t id = 0;  // internal key, also the subscriber id in the topic tree
  std::string routing_id;
  std::string session_id;  // the protocol's session id
  std::string name;        // from the ZAP User-Id
  std::string fingerprint;
  std::string address;
  std::string client_name;
  v1::Role role = v1::ROLE_CLIENT;
  AclEntry rights;
  std::uint32_t heartbeat_ms = 1000;
  std::int64_t connected_us = 0;
  std::int64_t last_seen_ms = 0;
  std::int64_t last_sent_ms = 0;
  bool pinged = false;
  std::uint64_t ping_nonce = 0;
  std::int64_t next_check_ms = 0;
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

  TokenBucket publish_bucket;
  std::uint64_t rate_refused_pending = 0;
  std::int64_t rate_error_ms = -1000000;

  std::size_t pending_ops() const { return queue.size() + stalled_ops; }
  bool has_output() const { return !queue.empty() || !stalled.empty(); }
};

struct Topic {
  explicit Topic(std::size_t depth, std::size_t bytes) : history(depth, bytes) {}
  std::uint64_t seq = 0;
  TopicHistory history;
  Bytes retained;  // encoded Deliver with retained=true, or null
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
};

// Why a session ended; the presence reason.
enum class CloseReason { kClosed, kTimeout, kKicked, kRevoked };
const char* reason_name(CloseReason r);

// Writes `bytes` to `path` through a temporary file, fsync and rename, so a
// reader (or a restart after a crash) sees the old file or the new one, never
// half of one (retained_store.cpp).
bool write_file_atomically(const std::string& path, std::string_view bytes, int mode);

// Protobuf's JSON mapping with proto field names and defaults printed ($SYS payloads).
std::string to_json(const google::protobuf::Message& m);

class Core {
 public:
  explicit Core(Config config);
  ~Core();
  Status start();
  int run();
  void stop();
  std::string endpoint() const { return endpoint_; }

  // ---- event loop (broker.cpp)
  void drain_router();
  long poll_timeout_ms(std::int64_t now) const;

  // ---- authentication and audit (zap.cpp, monitor.cpp)
  void handle_zap();
  void handle_monitor();

  // ---- dispatch (dispatch.cpp)
  void on_message(const std::string& routing_id, const zmq::message_t& body);
  void dispatch_op(const std::string& routing_id, const zmq::message_t& body, v1::Op& op);
  void diagnose_bad_op(const std::string& routing_id, const std::string& bytes);
  void malformed(const std::string& routing_id, std::size_t bytes, std::uint64_t request_id,
                 const char* answers, const std::string& message);
  void on_op_registered(Session& s, v1::Op& op);
  void on_op_unregistered(const std::string& routing_id, const zmq::message_t& body, v1::Op& op);
  void reply_unregistered(const std::string& routing_id, v1::ErrorCode code,
                          const std::string& message, const char* answers,
                          std::uint64_t request_id);

  // ---- one handler per operation (handle_*.cpp)
  void handle_register(const std::string& routing_id, const zmq::message_t& body,
                       const v1::Register& req, Session* existing);
  void handle_subscribe(Session& s, const v1::Subscribe& req);
  void handle_unsubscribe(Session& s, const v1::Unsubscribe& req);
  void handle_publish(Session& s, const v1::Publish& req);
  void handle_publish(Session& s, const PublishView& req);
  void handle_pull(Session& s, const v1::Pull& req);
  void handle_topics(Session& s, const v1::Topics& req);
  void handle_admin(Session& s, const v1::Admin& req);

  // ---- routing (handle_publish.cpp)
  struct RouteResult {
    std::uint64_t seq = 0;
    std::uint32_t delivered = 0;
    std::uint32_t dropped = 0;
  };
  // Accepts a publication already checked; false when the topic bound is hit.
  bool route(const std::string& topic, std::string_view payload, const std::string& publisher,
             bool retain, std::string_view content_type, RouteResult& result);
  void publish_sys(const std::string& topic, const std::string& json);

  // ---- sessions and output (session.cpp)
  Session* find_session(const std::string& routing_id);
  Session* find_session(std::uint64_t id);
  // Queues a delivery; false (counted) when the session's queue is full.
  bool enqueue_delivery(Session& s, const Bytes& bytes);
  // Queues a control reply (acks, errors, pongs): never dropped silently.
  void send_control(Session& s, const v1::Op& op);
  void send_error(Session& s, v1::ErrorCode code, std::uint64_t request_id,
                  const std::string& message, const std::string& topic, const char* answers,
                  std::uint64_t count = 0);
  void mark_dirty(Session& s);
  // Sends what is queued; false when the peer is gone (session dropped).
  // With `may_drop` false a vanished peer is left for the next flush_all
  // (callers still holding the Session).
  bool flush_session(Session& s, bool may_drop = true);
  void flush_all();
  void drop_session(Session& s, CloseReason reason, const std::string& detail);
  void tombstone(const std::string& routing_id, v1::ErrorCode code);

  // ---- alive signal (liveness_timer.cpp)
  void schedule(Session& s, std::int64_t due_ms);
  void run_liveness(std::int64_t now);

  // ---- presence and stats (presence.cpp, stats.cpp)
  void publish_presence(const Session& s, bool online, CloseReason reason);
  void fill_status(v1::BrokerStatus& st) const;
  void fill_counters(v1::Counters& c) const;
  void fill_topic_info(const std::string& name, const Topic& t, v1::TopicInfo& info) const;
  void fill_client_info(const Session& s, v1::ClientInfo& info) const;
  void run_stats(std::int64_t now);

  // ---- retained values on disk (retained_store.cpp)
  void load_retained();
  void save_retained();
  bool persisting() const {
    return config_.retained_sync_ms != 0 && !config_.retained_file.empty();
  }

  // ---- admin actions (handle_admin.cpp)
  std::size_t revoke_name(const std::string& name);
  std::size_t kick_name(const std::string& name);
  Status reload_acl(std::string& summary);

  // ---- state
  Config config_;
  TopicRules topic_rules_;
  std::string broker_id_;
  std::int64_t started_us_ = 0;
  std::string endpoint_;

  zmq::context_t context_;
  zmq::socket_t router_;
  zmq::socket_t zap_;
  zmq::socket_t monitor_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  bool started_ = false;

  AllowList acl_;
  std::unordered_set<std::string> revoked_names_;  // stay revoked across reloads

  std::uint64_t next_session_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::string, std::uint64_t> by_routing_id_;
  std::unordered_map<std::string, std::uint32_t> sessions_per_name_;

  // Routing ids of ended sessions (revoked / expired), bounded FIFO.
  std::unordered_map<std::string, v1::ErrorCode> tombstones_;
  std::deque<std::string> tombstone_order_;
  // Replies to unregistered routing ids are rate-limited per id.
  std::unordered_map<std::string, TokenBucket> unregistered_limit_;

  std::unordered_map<std::string, std::unique_ptr<Topic>> topics_;
  TopicTree tree_;

  using TimerEntry = std::pair<std::int64_t, std::uint64_t>;  // due, session id
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  std::vector<std::uint64_t> dirty_;
  std::unordered_set<std::uint64_t> backlogged_;
  std::int64_t next_stats_ms_ = 0;
  bool retained_dirty_ = false;
  std::int64_t next_retained_save_ms_ = 0;

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
