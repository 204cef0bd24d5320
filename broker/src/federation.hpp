// Federation: this broker's link to other curvebus brokers over a NATS
// backbone (docs/federation.md), the implementation of FederationPort.
//
// What leaves (exported(), from the routing thread): a publication whose
// topic matches an `export` pattern becomes an Envelope signed with this
// broker's Ed25519 key and sealed with the federation key, on subject
// <prefix>.<class>.<name>.<topic levels> (curvebus/federation.hpp):
//   * streams (class s): core NATS, at most once; past `export_queue`
//     waiting, or while the backbone is down, dropped and counted;
//   * retained values (class r): JetStream publishes into the stream
//     <stream_prefix>_KV (one message per subject), so a broker starting later
//     still gets the latest value.  Each is resent (same Nats-Msg-Id) until
//     JetStream acknowledges it: a core NATS publish into a stream is lost
//     while the stream changes leader, which a loaded cluster does at any
//     time.  Only the newest value of a topic waits (a newer one replaces it,
//     latest wins), also while the backbone is down, at most `export_queue`
//     topics;
//   * commands (class c, topics matching `commands`): JetStream stream
//     <stream_prefix>_CMD with Nats-Msg-Id de-duplication; the publisher's
//     PUBACK waits until JetStream acknowledged the store (kAwaitStore, then
//     Protocol::federation_stored()); refused at once while the backbone is
//     down (kUnavailable).
// What comes in (libnats threads): each envelope is opened and checked — a
// known key, a sound box, a configured peer as origin, its signature, the
// subject it came on, the peer's `publish` patterns, this broker's `import`
// patterns, the replay window of its origin and its age — and every refusal
// is counted by cause.  Accepted ones wait in a bounded queue for the routing
// thread (drain()), which publishes them through Protocol::import_publication()
// as "<origin>/<publisher>" ($SYS/... of a peer as $SYS/federation/<origin>/...).
// Commands come from a durable JetStream consumer named after this broker,
// one at a time (MaxAckPending 1, so order holds); one is acknowledged after
// it was delivered here and its origin's replay window, which remembers it,
// was saved to the state file; with no local subscriber yet it is asked for
// again later, until command_max_age_s.  A redelivered command already
// delivered is acknowledged and not delivered again.
//
// Threads: the routing thread calls exported(), import_done(), drain() and
// describe(); one exporter thread seals and publishes streams; one retained
// thread stores retained values; one command
// thread stores commands, acknowledges imports, sets the backbone up (streams,
// consumers) after every (re)connection and saves the state; libnats's own
// threads run the subscription callbacks.  The state they share is under
// mutex_ or atomic.
//
// Ownership: owns the NATS connection and its threads; stop() (or the
// destructor) joins them.  The Protocol given to drain() is the caller's.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "curvebus.pb.h"
#include "curvebus/broker/federation_config.hpp"
#include "curvebus/federation.hpp"
#include "curvebus/status.hpp"
#include "federation_port.hpp"

struct __natsConnection;
struct __natsMsg;
struct __natsSubscription;
struct __jsCtx;

namespace curvebus::broker {

class Protocol;
struct FederationCallbacks;

class Federation final : public FederationPort {
 public:
  // `home` holds the state file when config.state_file is empty.
  Federation(const FederationConfig& config, std::string home);
  ~Federation() override;
  Federation(const Federation&) = delete;
  Federation& operator=(const Federation&) = delete;

  // Reads the keys and the state file and starts connecting (in the
  // background: an unreachable backbone is not an error).
  Status start();
  void stop();

  // Readable when drain() has work (poll it with the broker's sockets).
  int wake_fd() const { return wake_[0]; }
  // Routing thread: imported publications and ended stores into `protocol`.
  void drain(Protocol& protocol);
  // ADMIN FEDERATION.
  void describe(v1::AdminReply& reply) const;

  // FederationPort (routing thread).
  Export exported(const ExportedPublication& p, std::uint64_t token) override;
  void import_done(std::uint64_t handle, std::uint32_t delivered) override;

 private:
  friend struct FederationCallbacks;
  struct Outgoing {
    char klass = 's';
    std::string topic, publisher, payload, content_type;
    bool retain = false;
    std::int64_t publish_time_us = 0;
    std::uint64_t token = 0;
  };
  struct Event {  // for the routing thread
    bool stored_result = false;
    std::uint64_t token = 0;
    bool ok = false;
    std::string why;
    ImportedPublication imported;
  };
  struct CommandJob {  // for the command thread
    enum Kind { kStore, kDone } kind = kStore;
    Outgoing out;
    std::uint64_t handle = 0;
    std::uint32_t delivered = 0;
  };
  struct RetainedJob {  // for the retained thread: the newest value of one topic
    Outgoing out;
    std::string subject, sealed, id;  // sealed once, resent as it is
  };
  struct HeldCommand {
    __natsMsg* msg = nullptr;
    std::string origin;
    std::uint64_t epoch = 0, seq = 0;
    std::int64_t publish_time_us = 0;
  };
  struct PeerState {
    std::array<std::uint8_t, 32> key{};
    std::vector<std::string> publish;
    std::map<char, fed::ReplayWindow> windows;  // by class
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>>
        latest;  // retained: topic -> (epoch, seq)
    std::uint64_t accepted = 0, refused = 0;
    std::int64_t last_seen_us = 0, lag_us = 0;
  };

  // libnats callbacks (static trampolines in federation.cpp).
  void on_published(__natsMsg* msg, char klass);  // streams ('s') and retained values ('r')
  void on_command(__natsMsg* msg);
  void on_connection(bool connected);
  bool own(const char* subject) const;  // an envelope of this broker's

  // Opens and checks an envelope; counts a refusal by cause.  A stream's
  // (epoch, seq) goes into its origin's replay window here; a command's only
  // once it was delivered (finish_command()).
  bool accept(const char* subject, const char* data, int size, char klass, fed::Envelope& env);
  void refuse(const std::string& cause, const std::string& origin, const std::string& detail);
  // The same with mutex_ held (`peer` may be null: an origin not configured).
  void refuse_locked(const std::string& cause, PeerState* peer, const std::string& origin,
                     const std::string& detail);
  ImportedPublication local_form(const fed::Envelope& env) const;
  bool post(Event&& e, bool droppable);
  void wake();  // makes wake_fd() readable

  void exporter_loop();
  void command_loop();
  void retained_loop();
  // The Nats-Msg-Id of this broker's envelope number `seq`: JetStream stores
  // a resent envelope once.
  std::string msg_id(std::uint64_t seq) const;
  // One JetStream publish of a sealed envelope: true once stored, else false
  // and why.
  bool store(const std::string& subject, const std::string& sealed, const std::string& id,
             std::int64_t max_wait_ms, std::string& why);
  // Subscribes the stream subjects still pending; false (and why) on the first refusal.
  bool subscribe_streams(std::string& why);
  bool set_up_backbone(std::string& why);
  void store_command(const Outgoing& out);
  void finish_command(std::uint64_t handle, std::uint32_t delivered);
  // Signs and seals `out` for `subject`; *seq (when given) is the sequence
  // number it took.
  std::string seal(const Outgoing& out, const std::string& subject, std::uint64_t* seq = nullptr);
  Status load_state();
  void save_state();
  std::string state_path() const;

  const FederationConfig config_;
  const std::string home_;
  fed::SigningKeys signing_{};
  std::vector<fed::FederationKey> keys_;
  std::uint64_t epoch_ = 0;
  std::atomic<std::uint64_t> next_seq_{1};

  __natsConnection* nc_ = nullptr;
  __jsCtx* js_ = nullptr;
  std::vector<__natsSubscription*> subs_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> backbone_ready_{false};
  bool consumers_ready_ = false;  // the command thread's
  // Stream subjects not subscribed yet: start()'s, then the command thread's.
  std::vector<std::string> stream_subjects_pending_;
  std::mutex state_mutex_;  // one writer of the state file at a time
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> reconnects_{0};

  mutable std::mutex mutex_;  // everything below
  std::condition_variable export_cv_, command_cv_, retained_cv_;
  std::deque<Outgoing> export_queue_;
  // Retained values waiting for JetStream: topics in arrival order, the
  // newest value of each.
  std::deque<std::string> retained_order_;
  std::unordered_map<std::string, RetainedJob> retained_pending_;
  std::deque<CommandJob> command_queue_;
  std::deque<Event> events_;
  std::unordered_map<std::uint64_t, HeldCommand> held_;
  std::uint64_t next_handle_ = 1;
  std::map<std::string, PeerState> peers_;
  std::map<std::string, std::uint64_t> refused_;  // by cause
  bool setup_needed_ = true;

  // Counters (ADMIN FEDERATION).
  std::atomic<std::uint64_t> exported_{0}, export_dropped_{0}, commands_stored_{0},
      commands_unavailable_{0}, imported_{0}, import_dropped_{0}, commands_delivered_{0},
      commands_duplicate_{0}, commands_held_{0}, commands_expired_{0};

  int wake_[2] = {-1, -1};
  std::thread exporter_, commander_, retainer_;
};

}  // namespace curvebus::broker
