// The public façade: Client's calls turned into outbox pushes and request
// waits.  The connection itself is the Link (link.hpp), run by the I/O
// thread; what both sides share is SharedState (shared_state.hpp).
#include "curvebus/client.hpp"

#include <zmq.hpp>

#include <algorithm>
#include <mutex>
#include <thread>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"
#include "link.hpp"
#include "shared_state.hpp"

namespace curvebus {

const char* connection_state_name(ConnectionState s) {
  switch (s) {
    case ConnectionState::Idle:
      return "idle";
    case ConnectionState::Connecting:
      return "connecting";
    case ConnectionState::Connected:
      return "connected";
    case ConnectionState::Reconnecting:
      return "reconnecting";
    case ConnectionState::Closed:
      return "closed";
  }
  return "?";
}

namespace {

Message message_of(const v1::Deliver& d) {
  Message m;
  m.topic = d.topic();
  m.payload = d.payload();
  m.publisher = d.publisher();
  m.seq = d.seq();
  m.retained = d.retained();
  m.published_us = d.timestamp_us();
  m.content_type = d.content_type();
  return m;
}

Status error_status(const v1::Error& e) {
  std::string msg = e.message();
  if (!e.topic().empty() && msg.find(e.topic()) == std::string::npos) msg += " (" + e.topic() + ")";
  return Status::Error(msg, error_code_name(e.code()));
}

// A publication's wire bytes, encoded outside the lock; the buffer is kept
// per calling thread so steady publishing allocates nothing.
std::string& publish_buffer() {
  thread_local std::string buffer;
  return buffer;
}

}  // namespace

// Members in construction order: the I/O thread (last) is joined before the
// Link closes its sockets, and those close before the context ends.
struct Client::Impl {
  explicit Impl(ClientOptions o) : shared(std::move(o)), link(context, shared) {}

  client_detail::SharedState shared;
  zmq::context_t context;
  client_detail::Link link;
  std::thread io;

  // With shared.mu held: why nothing can be sent now, or Ok.
  Status unavailable() const {
    if (!shared.fatal.ok()) return shared.fatal;
    const ConnectionState s = shared.state.load();
    if (shared.stop.load() || s == ConnectionState::Closed || s == ConnectionState::Idle)
      return Status::Error("not connected (call connect first)", StatusCode::kNoBroker);
    return Status::Ok();
  }

  // Queues an encoded request with id `id` and waits for its answer.
  Result<v1::Op> request(const std::string& wire, std::uint64_t id,
                         std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(shared.mu);
    if (Status s = unavailable(); !s.ok()) return s;
    shared.requests.add(id);
    if (!shared.outbox.push(wire, Outbox::Class::kControl, id)) {
      shared.requests.remove(id);
      return Status::Error("outgoing queue full, even for requests", StatusCode::kQueueFull);
    }
    if (shared.need_wake()) {
      lock.unlock();
      shared.wakeup.signal();
      lock.lock();
    }
    auto answer = shared.requests.wait(lock, id, timeout);
    if (!answer) {
      const bool connected = shared.state.load() == ConnectionState::Connected;
      return Status::Error(connected ? "no answer from the broker in time"
                                     : "broker not reachable: " + shared.last_problem,
                           connected ? StatusCode::kTimeout : StatusCode::kNoBroker);
    }
    if (!answer->ok()) return answer->status();
    if (answer->value().has_error()) return error_status(answer->value().error());
    return std::move(answer->value());
  }

  Result<v1::Op> request(const v1::Op& op, std::uint64_t id, std::chrono::milliseconds timeout) {
    return request(encode_op(op), id, timeout);
  }

  // With shared.mu held.
  Status check_size(std::size_t payload) const {
    if (shared.max_payload > 0 && payload > shared.max_payload)
      return Status::Error("payload of " + std::to_string(payload) +
                               " bytes is over the broker's " + std::to_string(shared.max_payload) +
                               "-byte limit",
                           StatusCode::kTooLarge);
    return Status::Ok();
  }
};

// ================================================================== Client

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() {
  close();
}

Status Client::connect(std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  auto& s = d.shared;
  const ClientOptions& o = s.options;
  if (!is_z85_key(o.server_public_key) || !is_z85_key(o.public_key) || !is_z85_key(o.secret_key))
    return Status::Error("client keys missing or not 40-character Z85", StatusCode::kUsage);
  if (!s.wakeup.ok())
    return Status::Error("cannot create the client's wakeup descriptor", StatusCode::kError);
  if (!d.io.joinable()) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.state.store(ConnectionState::Connecting);
    }
    d.io = std::thread([&d] { d.link.run(); });
  }
  std::unique_lock<std::mutex> lock(s.mu);
  const bool ok = s.state_cv.wait_for(lock, timeout, [&] {
    return s.state.load() == ConnectionState::Connected || s.auth_refused || s.stop.load() ||
           !s.fatal.ok();
  });
  const bool refused = s.auth_refused;
  const Status fatal = s.fatal;
  const std::string problem = s.last_problem;
  lock.unlock();
  if (ok && s.state.load() == ConnectionState::Connected) return Status::Ok();
  close();
  if (!fatal.ok()) return fatal;
  if (refused)
    return Status::Error(
        "the broker at " + o.endpoint + " refused this key (not in its allow-list)",
        StatusCode::kRefused);
  if (problem.rfind("registration refused", 0) == 0)
    return Status::Error(problem, StatusCode::kRefused);
  return Status::Error(
      "no answer from the broker at " + o.endpoint + " (not running, or this key is not allowed)",
      StatusCode::kNoBroker);
}

Status Client::subscribe(const std::vector<std::string>& patterns, MessageHandler handler,
                         bool want_retained, std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  auto& s = d.shared;
  if (patterns.empty()) return Status::Error("no pattern to subscribe", StatusCode::kUsage);
  std::shared_ptr<client_detail::Subscription> sub;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    sub = s.subscriptions.add(patterns, std::move(handler));
  }
  v1::Op op;
  auto* req = op.mutable_subscribe();
  const std::uint64_t id = s.requests.next_id();
  req->set_request_id(id);
  for (const auto& p : patterns) req->add_patterns(p);
  req->set_want_retained(want_retained);
  auto r = d.request(op, id, timeout);
  auto drop_sub = [&] {
    std::lock_guard<std::mutex> lock(s.mu);
    s.subscriptions.remove(sub);
  };
  if (!r) {
    drop_sub();
    return r.status();
  }
  std::vector<std::string> granted;
  std::string refusal, code;
  for (const auto& a : r->suback().answers()) {
    if (a.result() == v1::PATTERN_GRANTED) {
      granted.push_back(a.pattern());
      continue;
    }
    if (!refusal.empty()) continue;
    code = a.result() == v1::PATTERN_DENIED  ? "DENIED"
           : a.result() == v1::PATTERN_LIMIT ? "TOO_MANY_SUBSCRIPTIONS"
                                             : "INVALID_TOPIC";
    refusal = "subscribe " + a.pattern() + ": " + (a.reason().empty() ? code : a.reason());
  }
  if (refusal.empty()) return Status::Ok();
  drop_sub();
  if (!granted.empty()) unsubscribe(granted, timeout);
  return Status::Error(refusal, code);
}

Status Client::unsubscribe(const std::vector<std::string>& patterns,
                           std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.shared.mu);
    d.shared.subscriptions.remove_patterns(patterns);
  }
  v1::Op op;
  auto* u = op.mutable_unsubscribe();
  const std::uint64_t id = d.shared.requests.next_id();
  u->set_request_id(id);
  for (const auto& p : patterns) u->add_patterns(p);
  auto r = d.request(op, id, timeout);
  return r ? Status::Ok() : r.status();
}

Status Client::publish(const std::string& topic, const std::string& payload,
                       const PublishOptions& options) {
  Impl& d = *impl_;
  auto& s = d.shared;
  PublishView v;
  v.topic = topic;
  v.payload = payload;
  v.retain = options.retain;
  v.content_type = options.content_type;
  if (options.wait_ack) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      if (Status too_large = d.check_size(payload.size()); !too_large.ok()) return too_large;
    }
    v.request_id = s.requests.next_id();
    v.ack = true;
    std::string wire;
    encode_publish(v, wire);
    auto r = d.request(wire, v.request_id, options.ack_timeout);
    if (!r) return r.status();
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.published;
    return Status::Ok();
  }

  std::string& wire = publish_buffer();
  encode_publish(v, wire);
  std::unique_lock<std::mutex> lock(s.mu);
  if (Status too_large = d.check_size(payload.size()); !too_large.ok()) return too_large;
  if (Status down = d.unavailable(); !down.ok()) return down;
  if (!s.outbox.has_room(wire.size())) {
    // Connected: wait for room (back-pressure), except on the I/O thread,
    // which is the one that would make room.
    const bool on_io = std::this_thread::get_id() == s.io_thread;
    bool room = false;
    if (!on_io && s.state.load() == ConnectionState::Connected) {
      ++s.room_waiters;
      room = s.room_cv.wait_for(lock, options.ack_timeout,
                                [&] { return s.outbox.has_room(wire.size()) || s.stop.load(); });
      --s.room_waiters;
      room = room && s.outbox.has_room(wire.size());
    }
    if (!room) {
      ++s.queue_full;
      return Status::Error(
          "outgoing queue full (" + std::to_string(s.options.max_queued) + " publications)",
          StatusCode::kQueueFull);
    }
  }
  s.outbox.push(wire);
  ++s.published;
  const bool wake = s.need_wake();
  lock.unlock();
  if (wake) s.wakeup.signal();
  if (wire.capacity() > (256u << 10)) std::string().swap(wire);  // a one-off big payload
  return Status::Ok();
}

Result<std::vector<Message>> Client::pull(const std::string& topic, std::uint64_t since_seq,
                                          std::uint32_t max_count,
                                          std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  v1::Op op;
  auto* p = op.mutable_pull();
  const std::uint64_t id = d.shared.requests.next_id();
  p->set_request_id(id);
  p->set_topic(topic);
  p->set_since_seq(since_seq);
  p->set_max_count(max_count);
  auto r = d.request(op, id, timeout);
  if (!r) return r.status();
  std::vector<Message> out;
  for (const auto& m : r->pull_reply().messages()) out.push_back(message_of(m));
  if (out.empty() && since_seq == 0)
    return Status::Error("nothing published on " + topic, StatusCode::kNotFound);
  return out;
}

Result<v1::TopicsReply> Client::topics(const std::string& pattern,
                                       std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  v1::Op op;
  const std::uint64_t id = d.shared.requests.next_id();
  op.mutable_topics()->set_request_id(id);
  op.mutable_topics()->set_pattern(pattern);
  auto r = d.request(op, id, timeout);
  if (!r) return r.status();
  return r->topics_reply();
}

Result<v1::AdminReply> Client::admin(v1::AdminCommand command, const std::string& argument,
                                     std::chrono::milliseconds timeout, const std::string& reason) {
  Impl& d = *impl_;
  v1::Op op;
  const std::uint64_t id = d.shared.requests.next_id();
  op.mutable_admin()->set_request_id(id);
  op.mutable_admin()->set_command(command);
  op.mutable_admin()->set_argument(argument);
  op.mutable_admin()->set_reason(reason);
  auto r = d.request(op, id, timeout);
  if (!r) return r.status();
  return r->admin_reply();
}

ConnectionState Client::state() const {
  return impl_->shared.state.load();
}

std::int64_t Client::last_heard_ms() const {
  return impl_->shared.last_heard.load();
}

v1::Registered Client::registration() const {
  std::lock_guard<std::mutex> lock(impl_->shared.mu);
  return impl_->shared.registration;
}

ClientCounters Client::counters() const {
  const Impl& d = *impl_;
  ClientCounters c;
  c.delivered = d.link.dispatcher().delivered();
  c.sequence_gaps = d.link.dispatcher().sequence_gaps();
  c.frames_received = d.shared.frames_received.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(impl_->shared.mu);
  c.published = d.shared.published;
  c.errors = d.shared.errors;
  c.reconnects = d.shared.reconnects;
  c.queue_full = d.shared.queue_full;
  c.frames_sent = d.shared.outbox.batches_sent();
  return c;
}

void Client::close() {
  Impl& d = *impl_;
  auto& s = d.shared;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stop.store(true);
  }
  s.wakeup.signal();
  s.room_cv.notify_all();
  s.state_cv.notify_all();
  if (d.io.joinable()) {
    if (std::this_thread::get_id() == d.io.get_id())
      return;  // from a handler: the thread ends by itself
    d.io.join();
  }
  std::lock_guard<std::mutex> lock(s.mu);
  s.state.store(ConnectionState::Closed);
}

}  // namespace curvebus
