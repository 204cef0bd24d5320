// Session and SessionTable: the broker's registered connections and
// everything it keeps per peer.
//
// A Session is one ROUTER routing id that REGISTERed: the identity its
// handshake proved (key, allow-list name and rights), its alive signal
// (LivenessTimers::Entry), its subscriptions and provided topics (mirrored
// in the TopicTable by whoever changes them), its outbound queue — an Outbox,
// the one queueing and batching implementation of curvebus — and input kept
// for later turns.
//
// The SessionTable owns:
//   * the sessions, by id and by peer (listener tag + routing id); at most one
//     session per peer;
//   * tombstones: why a peer's last session ended (SESSION_EXPIRED, REVOKED,
//     IDENTITY, KEY_EXPIRED), so that its next message gets that answer; the
//     newest 10,000 are kept;
//   * the rate limit of answers to unregistered peers (a few per second each);
//   * the liveness timers and the heap of key expiries;
//   * output.  Every byte to a peer leaves through write(): the PeerWriter,
//     counted in Counters (frames_out, messages_out, bytes_out) there and
//     only there.  Deliveries (deliver(), class kData) and replies (control(),
//     class kControl, with headroom) are pushed into the session's Outbox; a
//     refused push is counted (Counters::dropped, the Outbox's own counts) and
//     logged, rate-limited.  Once a session holds a full batch or 64 ops its
//     output is handed to the writer at once; the rest at flush_all(), the end
//     of a loop turn.  A session whose pipe is full (kWouldBlock) keeps its
//     output, in order, and is tried again every turn (backlogged()).
//
// What it does not do: closing a session concerns the topics (its
// subscriptions and provided topics) and presence too; the caller
// (Protocol::close_session) undoes those, then calls erase().  flush_all()
// reports sessions whose connection is gone instead of closing them.
//
// Ownership and lifetime: the table owns every Session; a Session's address
// is stable until erase().  A Session* is valid until that session is erased:
// code that may close sessions (drops, kicks, revocations) keeps ids or peers
// and looks them up again.  Config, PeerWriter and Counters must outlive it.
//
// Thread: the routing thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "counters.hpp"
#include "curvebus.pb.h"
#include "curvebus/acl.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/liveness.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/outbox.hpp"
#include "log_limiter.hpp"
#include "names.hpp"
#include "peer_writer.hpp"
#include "topic_table.hpp"

namespace curvebus::broker {

// What the handshake proved about the connection a message came on (ZeroMQ
// message metadata), kept with input served later.
struct PeerMeta {
  std::string user;               // ZAP User-Id: the peer's Z85 public key
  bool chose_routing_id = false;  // the peer set its own routing id (handshake "Identity")
  std::string address;            // Peer-Address
};

// Ops of one frame left for a later loop turn: work is served in slices so
// that no frame, however large, holds up other peers (protocol.hpp, input).
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

struct Session {
  std::uint64_t id = 0;               // internal key, also the subscriber id in the topic tree
  std::string peer;                   // listener tag + the ROUTER's routing id
  std::string session_id;             // the protocol's session id
  std::string name;                   // the allow-list name of `key`
  std::string key;                    // Z85 public key proven by the handshake: the identity
  std::int64_t key_not_after_us = 0;  // 0 = the key does not expire
  NameState* ns = nullptr;            // the name's shared state (never null once registered)
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

  Outbox outbox;       // encoded ops waiting for the writer, in batches
  bool dirty = false;  // SessionTable's: in its list of sessions to flush
  std::uint64_t messages_in = 0;

  // Refusals counted but not yet reported in a (coalesced) ERROR.
  std::uint64_t rate_refused_pending = 0;
  std::uint64_t busy_refused_pending = 0;
  std::string busy_answers;  // the op of the pending BUSY refusals
  std::int64_t rate_error_ms = -1000000;
  std::int64_t busy_error_ms = -1000000;

  // Input not yet served (a large frame being served in slices), in order.
  std::deque<PendingInput> input;
  std::size_t input_bytes = 0;

  bool has_output() const { return !outbox.empty(); }
};

class SessionTable final : public Subscribers {
 public:
  SessionTable(const Config& config, PeerWriter& writer, Counters& counters);
  ~SessionTable() override;
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // ---- sessions
  Session* find(const std::string& peer) {
    auto it = by_peer_.find(peer);
    return it == by_peer_.end() ? nullptr : it->second;
  }
  Session* find(std::uint64_t id);
  bool contains(const std::string& peer) const { return by_peer_.count(peer) != 0; }
  std::size_t size() const { return sessions_.size(); }
  // Every session, in no particular order (a snapshot: safe to close them).
  std::vector<Session*> all() const;

  // A new session for `peer` (which has none): a fresh id, the peer's
  // tombstone and unregistered-answer limit forgotten, its Outbox bounded by
  // the config's queue limits.  The caller fills in the identity.
  Session& open(const std::string& peer);
  // Forgets `s` (liveness, output, index) and destroys it.
  void erase(Session& s);

  // ---- output
  // A delivery to subscriber `id` (Subscribers): queued, dropped (queue full,
  // counted and logged) or absent (no such session).
  Delivery deliver(SubscriberId id, std::string_view encoded) override;
  // A reply or other control op for `s`; false when even the headroom is
  // used up (counted and logged).
  bool control(Session& s, std::string_view encoded, const char* what);
  // Hands the output of every session with output to the writer.  Sessions
  // whose connection is gone (kGone) keep their output and are appended to
  // `lost` for the caller to close.
  void flush_all(std::vector<std::uint64_t>& lost);
  // Writes all of `s`'s queued output at once if the pipe takes it (its
  // last words before erase(), e.g. ERROR KICKED); nothing is kept.
  void write_remaining(Session& s);
  // The one place output leaves (see above).
  PeerWriter::Result write(const std::string& peer, std::string_view message, std::size_t ops);
  // Sessions whose output waits for a full pipe (retried every turn).
  bool backlogged() const { return !backlogged_.empty(); }

  // ---- peers without a session
  // Whether an answer to unregistered `peer` may go out now (5 per second).
  bool may_answer_unregistered(const std::string& peer, std::int64_t now_ms);
  void tombstone(const std::string& peer, v1::ErrorCode code);
  // Why `peer`'s last session ended, or null.
  const v1::ErrorCode* tombstone_of(const std::string& peer) const;

  // ---- time
  LivenessTimers& liveness() { return liveness_; }
  // Schedules `s` to be reported by expire_keys() once its key's not_after
  // passes (again after each change of key_not_after_us).
  void watch_key_expiry(const Session& s);
  // Calls expired(session) for each session whose key validity ended by
  // `now_us` (not_after unchanged since it was watched); it may erase it.
  void expire_keys(std::int64_t now_us, const std::function<void(Session&)>& expired);
  std::int64_t now_ms() const { return now_ms_; }
  void set_now(std::int64_t now_ms) { now_ms_ = now_ms; }

 private:
  // Writes `s`'s batches until the queue is empty or the pipe is full.
  // false when the connection is gone (output kept).
  bool flush(Session& s);
  void mark_dirty(Session& s);
  void dropped(Session& s, std::string_view what);

  const Config& config_;
  PeerWriter& writer_;
  Counters& counters_;
  Outbox::Limits limits_;
  std::int64_t now_ms_ = 0;  // the turn's time, for last_sent

  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::string, Session*> by_peer_;

  std::vector<std::uint64_t> dirty_;              // sessions with output queued this turn
  std::unordered_set<std::uint64_t> backlogged_;  // output waiting for a full pipe

  std::unordered_map<std::string, v1::ErrorCode> tombstones_;
  std::deque<std::string> tombstone_order_;
  std::unordered_map<std::string, TokenBucket> unregistered_limit_;

  LivenessTimers liveness_;
  using Expiry = std::pair<std::int64_t, std::uint64_t>;  // not_after_us, session id
  std::priority_queue<Expiry, std::vector<Expiry>, std::greater<Expiry>> expiry_;

  LogLimiter log_drop_{5, 1000};
};

}  // namespace curvebus::broker
