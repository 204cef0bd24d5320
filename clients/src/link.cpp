#include "link.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace curvebus::client_detail {

namespace {

constexpr int kMaxReadsPerTurn = 256;          // ZeroMQ messages read before other work
constexpr std::int64_t kDrainMs = 2000;        // close(): time queued publications get
constexpr int kCloseLingerMs = 1000;           // close(): time the BYE gets
constexpr std::int64_t kMonitorEveryMs = 100;  // Ready: how often the handshake monitor is read
// A batch is one ZeroMQ message: 16 of them (up to 64 KiB each, 1 MiB) may
// wait in ZeroMQ's pipe before the socket pushes back on the outbox, so the
// outbox's bound paces publish() and close() drains what was accepted (at
// 1,000 the pipe held up to 64 MiB, which close() discarded after its linger).
constexpr int kSendHwm = 16;
constexpr int kRecvHwm = 100000;
constexpr int kMonitorEvents =
    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;

}  // namespace

// Records that the broker refused this client's CURVE handshake.  (Outside
// the anonymous namespace: Link::Session holds one.)
class HandshakeMonitor : public zmq::monitor_t {
 public:
  bool refused() const { return refused_; }
  void on_event_handshake_failed_auth(const zmq_event_t&, const char*) override { refused_ = true; }
  void on_event_handshake_failed_protocol(const zmq_event_t&, const char*) override {
    refused_ = true;
  }

 private:
  bool refused_ = false;
};

const char* link_state_name(LinkState s) {
  switch (s) {
    case LinkState::Idle:
      return "idle";
    case LinkState::Backoff:
      return "backoff";
    case LinkState::Registering:
      return "registering";
    case LinkState::Ready:
      return "ready";
    case LinkState::Rekeying:
      return "rekeying";
    case LinkState::Draining:
      return "draining";
    case LinkState::Closed:
      return "closed";
  }
  return "?";
}

struct Link::Session {
  zmq::socket_t socket;
  std::unique_ptr<HandshakeMonitor> monitor;  // after `socket`: destroyed first
  std::uint64_t register_id = 0;
  std::int64_t register_sent = 0;
  bool registered = false;
};

Link::Link(zmq::context_t& context, SharedState& shared)
    : context_(context),
      shared_(shared),
      dispatcher_(shared.mu, shared.subscriptions),
      hb_ms_(static_cast<int>(std::max<std::int64_t>(10, shared.options.heartbeat.count()))) {}

Link::~Link() = default;

// ---------------------------------------------------------------- the loop

void Link::run() {
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.io_thread = std::this_thread::get_id();
  }
  next_connect_ = 0;
  enter(LinkState::Backoff);
  while (!shared_.stop.load(std::memory_order_acquire) && state_ != LinkState::Closed) {
    const std::int64_t now = steady_ms();
    on_timers(now);
    if (state_ == LinkState::Closed) break;
    if (current_ && current_->monitor &&
        (state_ != LinkState::Ready || now - monitor_checked_ >= kMonitorEveryMs))
      check_monitor(now);
    poll(std::max(1, std::min(hb_ms_ / 2, 50)));
    const std::int64_t t = steady_ms();
    if (old_) read(*old_, t);
    if (current_) read(*current_, t);
    if (state_ == LinkState::Ready) flush(t);
  }
  drain_and_close();
}

void Link::poll(long timeout_ms) {
  items_.clear();
  items_.push_back(zmq::pollitem_t{nullptr, shared_.wakeup.fd(), ZMQ_POLLIN, 0});
  if (current_) {
    // POLLOUT only while the socket pushed back: otherwise the outbox is
    // flushed every turn anyway and a writable socket would spin the loop.
    const short events = static_cast<short>(ZMQ_POLLIN | (blocked_ ? ZMQ_POLLOUT : 0));
    items_.push_back(zmq::pollitem_t{current_->socket.handle(), 0, events, 0});
  }
  if (old_) items_.push_back(zmq::pollitem_t{old_->socket.handle(), 0, ZMQ_POLLIN, 0});
  try {
    zmq::poll(items_, std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t&) {
    return;  // EINTR; a closed context ends the loop through stop
  }
  if (items_[0].revents & ZMQ_POLLIN) shared_.wakeup.clear();
}

// ---------------------------------------------------------------- events

void Link::on_timers(std::int64_t now) {
  switch (state_) {
    case LinkState::Backoff:
      if (now >= next_connect_) open(now);
      return;
    case LinkState::Registering:
    case LinkState::Rekeying: {
      const std::int64_t patience = std::max<std::int64_t>(3000, 3 * std::int64_t{hb_ms_});
      if (now - current_->register_sent > patience) lose("no answer to REGISTER", now);
      return;
    }
    case LinkState::Ready: {
      const std::int64_t silent = now - shared_.last_heard.load(std::memory_order_relaxed);
      if (silent > 3 * std::int64_t{hb_ms_}) {
        lose("broker silent for " + std::to_string(silent) + " ms", now);
        return;
      }
      if (now - last_sent_ >= hb_ms_) {
        v1::Op hb;
        hb.mutable_heartbeat();
        send_op(*current_, hb);
      }
      const auto rekey =
          std::chrono::duration_cast<std::chrono::milliseconds>(shared_.options.rekey_after)
              .count();
      if (rekey > 0 && now - connected_at_ >= rekey) start_rekey(now);
      return;
    }
    default:
      return;
  }
}

void Link::on_registered(const v1::Registered& r, std::int64_t now) {
  current_->registered = true;
  hb_ms_ = static_cast<int>(std::max<std::uint32_t>(10, r.heartbeat_ms()));
  connected_at_ = now;
  backoff_ms_ = 0;
  first_attempt_ = false;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.registration = r;
    shared_.max_payload = r.limits().max_message_bytes();
  }
  resubscribe(*current_);
  if (old_) {
    v1::Op bye;
    bye.mutable_bye()->set_reason("rekey");
    send_op(*old_, bye);
    old_.reset();
  }
  enter(LinkState::Ready);
}

void Link::on_op(Session& from, const v1::Op& op, std::int64_t now) {
  switch (op.body_case()) {
    case v1::Op::kPing: {
      v1::Op pong;
      pong.mutable_pong()->set_nonce(op.ping().nonce());
      send_op(from, pong);
      return;
    }
    case v1::Op::kDeliver: {
      const v1::Deliver& d = op.deliver();
      DeliverView v;
      v.topic = d.topic();
      v.payload = d.payload();
      v.seq = d.seq();
      v.publisher = d.publisher();
      v.timestamp_us = d.timestamp_us();
      v.retained = d.retained();
      v.content_type = d.content_type();
      dispatcher_.deliver(v);
      return;
    }
    case v1::Op::kHeartbeat:
    case v1::Op::kPong:
      return;
    default:
      break;
  }
  const std::uint64_t id = answered_request_id(op);
  if (&from != current_.get()) {
    // The old session of a rekey: its replies still answer their requests.
    if (id != 0 && !op.has_registered()) {
      std::lock_guard<std::mutex> lock(shared_.mu);
      shared_.requests.complete(id, op);
    }
    return;
  }
  if (op.has_registered()) {
    if (id == from.register_id) on_registered(op.registered(), now);
    return;
  }
  if (op.has_error()) {
    const v1::Error& e = op.error();
    {
      std::lock_guard<std::mutex> lock(shared_.mu);
      ++shared_.errors;
      shared_.last_problem = error_code_name(e.code()) + ": " + e.message();
    }
    if (id != 0 && id == from.register_id) {
      lose("registration refused: " + e.message(), now);
      return;
    }
    switch (e.code()) {
      case v1::ERROR_NOT_REGISTERED:
      case v1::ERROR_SESSION_EXPIRED:
        // The broker restarted or forgot this session: register again on
        // the same socket.
        if (from.registered) {
          from.registered = false;
          send_register(from, now);
          enter(LinkState::Registering);
        }
        break;
      case v1::ERROR_KICKED:
      case v1::ERROR_REVOKED:
      case v1::ERROR_KEY_EXPIRED:
      case v1::ERROR_IDENTITY:
        lose(e.message(), now);
        return;
      default:
        break;
    }
  }
  if (id == 0) return;
  std::lock_guard<std::mutex> lock(shared_.mu);
  shared_.requests.complete(id, op);
}

void Link::lose(const std::string& why, std::int64_t now) {
  old_.reset();
  current_.reset();
  ++epoch_;
  blocked_ = false;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.last_problem = why;
    shared_.requests.fail_sent(
        Status::Error("connection to the broker lost: " + why, StatusCode::kNoBroker));
    ++shared_.reconnects;
  }
  const int min_ms = static_cast<int>(shared_.options.reconnect_min.count());
  const int max_ms = static_cast<int>(shared_.options.reconnect_max.count());
  backoff_ms_ = backoff_ms_ == 0 ? min_ms : std::min(backoff_ms_ * 2, max_ms);
  next_connect_ = now + backoff_ms_;
  first_attempt_ = false;
  enter(LinkState::Backoff);
}

void Link::fail(const Status& why) {
  old_.reset();
  current_.reset();
  ++epoch_;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.fatal = why;
    shared_.last_problem = why.message();
  }
  enter(LinkState::Closed);
}

// ---------------------------------------------------------------- actions

void Link::enter(LinkState s) {
  state_ = s;
  ConnectionState public_state;
  switch (s) {
    case LinkState::Idle:
      public_state = ConnectionState::Idle;
      break;
    case LinkState::Backoff:
    case LinkState::Registering:
      public_state = first_attempt_ ? ConnectionState::Connecting : ConnectionState::Reconnecting;
      break;
    case LinkState::Ready:
    case LinkState::Rekeying:
    case LinkState::Draining:
      public_state = ConnectionState::Connected;
      break;
    case LinkState::Closed:
    default:
      public_state = ConnectionState::Closed;
      break;
  }
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.state.store(public_state);
  }
  shared_.state_cv.notify_all();
}

Result<std::unique_ptr<Link::Session>> Link::open_session() {
  const ClientOptions& o = shared_.options;
  auto s = std::make_unique<Session>();
  const char* step = "socket";
  try {
    s->socket = zmq::socket_t(context_, zmq::socket_type::dealer);
    step = "ZMQ_LINGER";
    s->socket.set(zmq::sockopt::linger, 0);
    step = "ZMQ_SNDHWM";
    s->socket.set(zmq::sockopt::sndhwm, kSendHwm);
    step = "ZMQ_RCVHWM";
    s->socket.set(zmq::sockopt::rcvhwm, kRecvHwm);
    step = "ZMQ_CURVE_SERVERKEY";
    s->socket.set(zmq::sockopt::curve_serverkey, o.server_public_key);
    step = "ZMQ_CURVE_PUBLICKEY";
    s->socket.set(zmq::sockopt::curve_publickey, o.public_key);
    step = "ZMQ_CURVE_SECRETKEY";
    s->socket.set(zmq::sockopt::curve_secretkey, o.secret_key);
    step = "ZMQ_RECONNECT_IVL";
    s->socket.set(zmq::sockopt::reconnect_ivl, static_cast<int>(o.reconnect_min.count()));
    step = "ZMQ_RECONNECT_IVL_MAX";
    s->socket.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(o.reconnect_max.count()));
    step = "socket monitor";
    const std::string addr = "inproc://curvebus-client-monitor-" +
                             std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" +
                             std::to_string(++monitor_seq_);
    s->monitor = std::make_unique<HandshakeMonitor>();
    s->monitor->init(s->socket, addr, kMonitorEvents);
    step = "connect";
    s->socket.connect(o.endpoint);
  } catch (const zmq::error_t& e) {
    // EINVAL: a value this client was given (key, endpoint) is wrong, and
    // will be wrong at every retry.
    return Status::Error(std::string("client socket, ") + step + ": " + e.what(),
                         e.num() == EINVAL ? StatusCode::kUsage : StatusCode::kError);
  }
  return s;
}

void Link::open(std::int64_t now) {
  auto s = open_session();
  if (!s) {
    if (s.status().is(StatusCode::kUsage))
      fail(s.status());
    else
      lose(s.status().message(), now);
    return;
  }
  current_ = std::move(s.value());
  shared_.last_heard.store(now, std::memory_order_relaxed);
  send_register(*current_, now);
  enter(LinkState::Registering);
}

void Link::start_rekey(std::int64_t now) {
  // Make before break: register a fresh session, then BYE the old one.
  auto s = open_session();
  if (!s) {
    // The old session still works: try again one rekey period later.
    if (s.status().is(StatusCode::kUsage)) fail(s.status());
    connected_at_ = now;
    return;
  }
  old_ = std::move(current_);
  old_->monitor.reset();
  current_ = std::move(s.value());
  send_register(*current_, now);
  enter(LinkState::Rekeying);
}

void Link::send_register(Session& s, std::int64_t now) {
  const ClientOptions& o = shared_.options;
  v1::Op op;
  auto* r = op.mutable_register_();
  s.register_id = shared_.requests.next_id();
  r->set_request_id(s.register_id);
  r->set_role(o.role);
  for (const auto& p : o.provides) r->add_provides(p);
  r->set_heartbeat_ms(static_cast<std::uint32_t>(o.heartbeat.count()));
  r->set_client_name(o.client_name);
  r->set_client_version(CURVEBUS_VERSION);
  s.registered = false;
  s.register_sent = now;
  send_op(s, op);
}

void Link::resubscribe(Session& s) {
  std::vector<std::string> patterns;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    patterns = shared_.subscriptions.patterns();
  }
  if (patterns.empty()) return;
  v1::Op op;
  auto* sub = op.mutable_subscribe();
  sub->set_request_id(0);  // nobody waits: the SUBACK is dropped
  for (const auto& p : patterns) sub->add_patterns(p);
  send_op(s, op);
}

void Link::check_monitor(std::int64_t now) {
  monitor_checked_ = now;
  try {
    while (current_->monitor->check_event(0)) {
    }
  } catch (const zmq::error_t&) {
    return;
  }
  if (!current_->monitor->refused()) return;
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.auth_refused = true;
  }
  lose("the broker refused this key in the CURVE handshake", now);
}

void Link::read(Session& s, std::int64_t now) {
  const std::uint64_t epoch = epoch_;
  const bool current = &s == current_.get();
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    zmq::recv_result_t got;
    try {
      got = s.socket.recv(in_, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      lose(std::string("receive: ") + e.what(), now);
      return;
    }
    if (!got) return;
    shared_.frames_received.store(shared_.frames_received.load(std::memory_order_relaxed) + 1,
                                  std::memory_order_relaxed);
    if (current) shared_.last_heard.store(now, std::memory_order_relaxed);
    if (scan_deliver_frame(in_.data(), in_.size(), views_)) {
      for (const auto& v : views_) dispatcher_.deliver(v);
    } else if (decode_frame(in_.data(), in_.size(), frame_)) {
      for (const auto& op : frame_.ops()) {
        on_op(s, op, now);
        if (epoch_ != epoch) return;  // lose(): `s` is gone
      }
    }
    // A long run of input must not starve heartbeats and the outbox.
    if (steady_ms() - now > hb_ms_ / 4) return;
  }
}

void Link::flush(std::int64_t now) {
  Session& s = *current_;
  std::string error;
  bool sent_any = false;
  {
    std::unique_lock<std::mutex> lock(shared_.mu);
    shared_.wake_pending = false;
    blocked_ = false;
    while (shared_.outbox.take(batch_)) {
      const std::string* bytes = &batch_.bytes;
      const bool cancelled = shared_.requests.has_cancelled();
      if (cancelled && shared_.requests.strip_cancelled(batch_, stripped_)) bytes = &stripped_;
      lock.unlock();
      bool ok = true;
      if (!bytes->empty()) {
        try {
          ok = s.socket.send(zmq::buffer(*bytes), zmq::send_flags::dontwait).has_value();
        } catch (const zmq::error_t& e) {
          ok = false;
          error = e.what();
        }
      }
      lock.lock();
      if (!ok) {
        shared_.outbox.restore(std::move(batch_));
        blocked_ = error.empty();  // the socket's pipe is full: wait for POLLOUT
        break;
      }
      shared_.requests.mark_sent(batch_.tags);
      if (cancelled) shared_.requests.forget_cancelled(batch_.tags);
      shared_.outbox.sent(std::move(batch_));
      sent_any = true;
    }
    if (sent_any && shared_.room_waiters > 0) shared_.room_cv.notify_all();
  }
  if (sent_any) last_sent_ = now;
  if (!error.empty()) lose("send: " + error, now);
}

void Link::drain_and_close() {
  if (state_ == LinkState::Ready) {
    enter(LinkState::Draining);
    const std::int64_t deadline = steady_ms() + kDrainMs;
    while (current_ && steady_ms() < deadline) {
      flush(steady_ms());
      if (!current_) break;
      {
        std::lock_guard<std::mutex> lock(shared_.mu);
        if (shared_.outbox.empty()) break;
      }
      zmq::pollitem_t item{current_->socket.handle(), 0, ZMQ_POLLIN | ZMQ_POLLOUT, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(10));
      } catch (const zmq::error_t&) {
      }
      read(*current_, steady_ms());
    }
    if (current_ && current_->registered) {
      v1::Op bye;
      bye.mutable_bye()->set_reason("closed");
      send_op(*current_, bye);
      try {
        current_->socket.set(zmq::sockopt::linger, kCloseLingerMs);
      } catch (const zmq::error_t& e) {
        // Without the linger the BYE may not leave: the broker then sees a
        // timeout instead of a close.  Nobody is left to tell but the record.
        std::lock_guard<std::mutex> lock(shared_.mu);
        shared_.last_problem = std::string("client socket, ZMQ_LINGER: ") + e.what();
      }
    }
  }
  old_.reset();
  current_.reset();
  {
    std::lock_guard<std::mutex> lock(shared_.mu);
    shared_.requests.fail_all(Status::Error("client closed", StatusCode::kClosed));
  }
  enter(LinkState::Closed);
}

bool Link::send_now(Session& s, const std::string& bytes) {
  try {
    if (!s.socket.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t&) {
    return false;  // the next read or flush on this socket reports it
  }
  if (&s == current_.get()) last_sent_ = steady_ms();
  return true;
}

bool Link::send_op(Session& s, const v1::Op& op) {
  return send_now(s, encode_op(op));
}

}  // namespace curvebus::client_detail
