// Link: the client's connection to the broker, a state machine run by the
// client's I/O thread (DESIGN.md "Alive signal"; docs/protocol.md).
//
//   Idle ──run()──► Backoff ──open time──► Registering ──REGISTERED──► Ready
//                     ▲                        │  ▲                    │   ▲
//                     │                        │  └── NOT_REGISTERED ──┤   │ REGISTERED on the new
//                     │                        │      SESSION_EXPIRED  │   │ session: BYE the old
//                     │                        │                  rekey age│
//                     │                        │                       ▼   │
//                     └──────── lose(why) ◄────┴───────────────── Rekeying ┘
//   Ready ──close()──► Draining ──queue empty or 2 s──► Closed
//   any other state ──close()──► Closed;  a bad socket option (fatal) ──► Closed
//
// lose(why) is any of: the CURVE handshake refused (socket monitor); an ERROR
// answering REGISTER; no REGISTERED within max(3 s, 3 intervals); the broker
// silent for 3 intervals (Ready); ERROR KICKED, REVOKED, KEY_EXPIRED or
// IDENTITY; a socket error.  It closes every socket, fails the requests
// already sent ("NO_BROKER"), and waits reconnect_min, doubling up to
// reconnect_max, before opening a fresh socket (new CURVE session).
//
// What each state does:
//   Backoff      no socket.  At the open time: a new DEALER socket (every
//                option checked), REGISTER sent on it ──► Registering.
//   Registering  REGISTER sent, waiting for REGISTERED; the socket monitor is
//                read every turn (handshake refused).  PINGs are answered;
//                the outbox is held.
//   Ready        the session is registered.  First, the re-subscription of
//                every pattern goes out (ahead of the queue); then every turn
//                reads what arrived (deliveries to the Dispatcher, replies to
//                the RequestTable), sends the queued batches, a HEARTBEAT
//                after one interval of its own silence, and declares the
//                broker lost after 3 intervals without a word.
//   Rekeying     (the session is older than rekey_after) a second socket
//                registers a new session while the old one still delivers
//                and answers PINGs; replies arriving on the old one complete
//                their requests.  The outbox is held for that round trip.
//   Draining     close() in Ready: queued publications get up to 2 s to
//                leave, then BYE ("closed") with a 1 s linger.
//   Closed       sockets closed, every waiting request failed ("CLOSED").
//
// Invariants:
//   * the outbox is sent only on a registered session (Ready, Draining), in
//     push order, each batch one ZeroMQ message (one CURVE box);
//   * link-level ops (REGISTER, re-subscription, PONG, HEARTBEAT, BYE) are
//     sent directly, never queued behind data;
//   * at most two sockets exist, two only in Rekeying;
//   * publications and unsent requests survive lose(); sent requests fail.
//
// Public state (ConnectionState, Client::state()): Idle; Connecting in
// Backoff/Registering until the first loss or registration, Reconnecting
// there afterwards; Connected in Ready and Rekeying (and Draining); Closed.
//
// Thread: everything here runs on the I/O thread (run()); other threads
// reach the link only through SharedState (outbox, requests, stop, wakeup).
// Ownership: the Link owns its sockets; the ZeroMQ context and SharedState
// belong to the client and outlive it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "curvebus/codec.hpp"
#include "curvebus/outbox.hpp"
#include "shared_state.hpp"
#include "subscriptions.hpp"

namespace curvebus::client_detail {

enum class LinkState { Idle, Backoff, Registering, Ready, Rekeying, Draining, Closed };
const char* link_state_name(LinkState s);

class Link {
 public:
  Link(zmq::context_t& context, SharedState& shared);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // The I/O thread's body: runs the machine until shared.stop, then drains
  // and closes.  Returns in Closed.
  void run();

  LinkState state() const { return state_; }  // I/O thread
  const Dispatcher& dispatcher() const { return dispatcher_; }

 private:
  struct Session;  // one socket, its handshake monitor, its registration

  // Events.
  void on_timers(std::int64_t now);
  void on_registered(const v1::Registered& r, std::int64_t now);
  void on_op(Session& from, const v1::Op& op, std::int64_t now);
  void lose(const std::string& why, std::int64_t now);
  void fail(const Status& why);  // a setup error: ──► Closed

  // Transitions and actions.
  void enter(LinkState s);
  void open(std::int64_t now);
  void start_rekey(std::int64_t now);
  Result<std::unique_ptr<Session>> open_session();
  void send_register(Session& s, std::int64_t now);
  void resubscribe(Session& s);
  void check_monitor(std::int64_t now);
  void poll(long timeout_ms);
  void read(Session& s, std::int64_t now);
  void flush(std::int64_t now);
  void drain_and_close();
  bool send_now(Session& s, const std::string& bytes);
  bool send_op(Session& s, const v1::Op& op);

  zmq::context_t& context_;
  SharedState& shared_;
  Dispatcher dispatcher_;
  LinkState state_ = LinkState::Idle;

  std::unique_ptr<Session> current_;  // the session in use (or registering)
  std::unique_ptr<Session> old_;      // Rekeying: the session being replaced
  std::uint64_t epoch_ = 0;           // bumped when sessions close (lose)
  bool first_attempt_ = true;         // no registration and no loss yet
  bool blocked_ = false;              // the last flush met a full socket pipe
  int monitor_seq_ = 0;

  std::int64_t last_sent_ = 0, connected_at_ = 0, next_connect_ = 0, monitor_checked_ = 0;
  int backoff_ms_ = 0;
  int hb_ms_ = 1000;  // the agreed interval

  // Reused buffers of the hot paths.
  zmq::message_t in_;
  std::vector<DeliverView> views_;
  v1::Frame frame_;
  Outbox::Batch batch_;
  std::string stripped_;
  std::vector<zmq::pollitem_t> items_;
};

}  // namespace curvebus::client_detail
