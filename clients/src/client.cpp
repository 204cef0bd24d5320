#include "curvebus/client.hpp"

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "curvebus/codec.hpp"
#include "curvebus/topic.hpp"

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

constexpr std::size_t kBatchBytes = 64 * 1024;
constexpr int kMonitorEvents = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED;

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

}  // namespace

struct Waiter {
  std::uint64_t id = 0;
  bool sent = false;
  bool done = false;
  v1::Op reply;
  Status failure;
};

struct Outgoing {
  std::string bytes;
  std::uint64_t request_id = 0;
};

struct Sub {
  std::vector<std::string> patterns;
  MessageHandler handler;
};

struct Client::Impl {
  explicit Impl(ClientOptions o) : opts(std::move(o)) {}

  ClientOptions opts;
  void* ctx = nullptr;
  void* sock = nullptr;
  void* monitor = nullptr;
  void* old_sock = nullptr;  // during a rekey: the session being replaced
  int monitor_seq = 0;
  std::thread io;
  int wake_fd = -1;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Outgoing> outq;
  std::map<std::uint64_t, std::shared_ptr<Waiter>> waiters;
  std::vector<std::shared_ptr<Sub>> subs;
  v1::Registered reg;
  ClientCounters counters;
  bool stop = false;
  bool auth_refused = false;
  std::string last_problem;

  std::atomic<ConnectionState> state{ConnectionState::Idle};
  std::atomic<std::int64_t> last_heard{0};
  std::atomic<std::uint64_t> next_id{1};

  // I/O thread only.
  bool registered = false;
  std::uint64_t register_id = 0;
  std::int64_t last_sent = 0, register_sent = 0, connected_at = 0, next_connect = 0;
  int backoff_ms = 0;
  int hb_ms = 1000;
  std::map<std::string, std::uint64_t> last_seq;

  void wake() {
    std::uint64_t one = 1;
    ssize_t n = ::write(wake_fd, &one, sizeof one);
    (void)n;
  }

  // ------------------------------------------------------------ socket setup
  void open_socket(std::int64_t now) {
    sock = zmq_socket(ctx, ZMQ_DEALER);
    const int linger = 0, hwm = 100000, curve = 1;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    (void)curve;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, opts.server_public_key.data(),
                   opts.server_public_key.size());
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, opts.public_key.data(), opts.public_key.size());
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, opts.secret_key.data(), opts.secret_key.size());
    const int ivl = static_cast<int>(opts.reconnect_min.count()),
              ivl_max = static_cast<int>(opts.reconnect_max.count());
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    const std::string addr = "inproc://curvebus-client-monitor-" +
                             std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" +
                             std::to_string(++monitor_seq);
    zmq_socket_monitor(sock, addr.c_str(), kMonitorEvents);
    monitor = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(monitor, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(monitor, addr.c_str());
    zmq_connect(sock, opts.endpoint.c_str());
    registered = false;
    send_register(now);
  }

  void close_socket(void*& s) {
    if (!s) return;
    if (s == sock && monitor) {
      zmq_socket_monitor(sock, nullptr, 0);
      zmq_close(monitor);
      monitor = nullptr;
    }
    zmq_close(s);
    s = nullptr;
  }

  bool send_raw(void* s, const std::string& bytes) {
    if (!s) return false;
    if (zmq_send(s, bytes.data(), bytes.size(), ZMQ_DONTWAIT) < 0) return false;
    if (s == sock) last_sent = steady_ms();
    return true;
  }

  void send_op(void* s, const v1::Op& op) { send_raw(s, encode_op(op)); }

  void send_register(std::int64_t now) {
    v1::Op op;
    auto* r = op.mutable_register_();
    register_id = next_id++;
    r->set_request_id(register_id);
    r->set_role(opts.role);
    for (const auto& p : opts.provides) r->add_provides(p);
    r->set_heartbeat_ms(static_cast<std::uint32_t>(opts.heartbeat.count()));
    r->set_client_name(opts.client_name);
    r->set_client_version(CURVEBUS_VERSION);
    send_op(sock, op);
    register_sent = now;
  }

  void resubscribe() {
    std::vector<std::string> patterns;
    {
      std::lock_guard<std::mutex> lock(mu);
      std::set<std::string> all;
      for (const auto& s : subs) all.insert(s->patterns.begin(), s->patterns.end());
      patterns.assign(all.begin(), all.end());
    }
    if (patterns.empty()) return;
    v1::Op op;
    auto* s = op.mutable_subscribe();
    s->set_request_id(0);
    for (const auto& p : patterns) s->add_patterns(p);
    send_op(sock, op);
  }

  // The link is gone: fail what was sent, keep what was not, retry later.
  void lose(const std::string& why, std::int64_t now) {
    close_socket(old_sock);
    close_socket(sock);
    registered = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      last_problem = why;
      for (auto& [id, w] : waiters)
        if (w->sent && !w->done) {
          w->done = true;
          w->failure = Status::Error("connection to the broker lost: " + why, "NO_BROKER");
        }
      ++counters.reconnects;
    }
    cv.notify_all();
    state = ConnectionState::Reconnecting;
    backoff_ms = backoff_ms == 0
                     ? static_cast<int>(opts.reconnect_min.count())
                     : std::min(backoff_ms * 2, static_cast<int>(opts.reconnect_max.count()));
    next_connect = now + backoff_ms;
  }

  // ------------------------------------------------------------ incoming
  void handle(void* from, const v1::Op& op, std::int64_t now) {
    switch (op.body_case()) {
      case v1::Op::kPing: {
        v1::Op pong;
        pong.mutable_pong()->set_nonce(op.ping().nonce());
        send_op(from, pong);
        return;
      }
      case v1::Op::kDeliver:
        deliver(op.deliver());
        return;
      case v1::Op::kHeartbeat:
      case v1::Op::kPong:
        return;
      default:
        break;
    }
    if (from != sock) return;  // the old session of a rekey: only deliveries matter
    if (op.has_registered() && op.registered().request_id() == register_id) {
      registered = true;
      hb_ms = static_cast<int>(std::max<std::uint32_t>(10, op.registered().heartbeat_ms()));
      connected_at = now;
      backoff_ms = 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        reg = op.registered();
      }
      resubscribe();
      if (old_sock) {
        v1::Op bye;
        bye.mutable_bye()->set_reason("rekey");
        send_op(old_sock, bye);
        close_socket(old_sock);
      }
      state = ConnectionState::Connected;
      cv.notify_all();
      return;
    }
    const std::uint64_t id = answered_request_id(op);
    if (op.has_error()) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++counters.errors;
        last_problem = error_code_name(op.error().code()) + ": " + op.error().message();
      }
      const auto code = op.error().code();
      if (id == register_id && id != 0) {
        lose("registration refused: " + op.error().message(), now);
        return;
      }
      if (code == v1::ERROR_NOT_REGISTERED || code == v1::ERROR_SESSION_EXPIRED) {
        // The broker restarted or forgot us: register again on this socket.
        if (registered) {
          registered = false;
          state = ConnectionState::Reconnecting;
          send_register(now);
        }
      } else if (code == v1::ERROR_KICKED || code == v1::ERROR_REVOKED ||
                 code == v1::ERROR_KEY_EXPIRED || code == v1::ERROR_IDENTITY) {
        lose(op.error().message(), now);
        return;
      }
    }
    if (id == 0) return;
    std::lock_guard<std::mutex> lock(mu);
    auto it = waiters.find(id);
    if (it == waiters.end()) return;
    it->second->reply = op;
    it->second->done = true;
    cv.notify_all();
  }

  void deliver(const v1::Deliver& d) {
    Message m = message_of(d);
    std::vector<std::shared_ptr<Sub>> targets;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++counters.delivered;
      if (!m.retained) {
        auto& last = last_seq[m.topic];
        if (last != 0 && m.seq > last + 1) ++counters.sequence_gaps;
        if (m.seq > last) last = m.seq;
      }
      for (const auto& s : subs)
        for (const auto& p : s->patterns)
          if (topic_matches(p, m.topic)) {
            targets.push_back(s);
            break;
          }
    }
    for (const auto& s : targets)
      if (s->handler) s->handler(m);
  }

  void read_socket(void* s, std::int64_t now) {
    while (s) {
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, s, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
      }
      if (s == sock) last_heard = steady_ms();
      v1::Frame frame;
      const bool ok = decode_frame(zmq_msg_data(&msg), zmq_msg_size(&msg), frame);
      zmq_msg_close(&msg);
      if (!ok) continue;
      for (const auto& op : frame.ops()) {
        handle(s, op, now);
        if (s != sock && s != old_sock) return;  // the socket was closed by handle()
      }
    }
  }

  void read_monitor(std::int64_t now) {
    while (monitor) {
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&msg);
        return;
      }
      std::uint16_t event = 0;
      if (zmq_msg_size(&msg) >= 2) std::memcpy(&event, zmq_msg_data(&msg), 2);
      const bool more = zmq_msg_more(&msg);
      zmq_msg_close(&msg);
      if (more) {  // the address part
        zmq_msg_t addr;
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, monitor, 0);
        zmq_msg_close(&addr);
      }
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
          event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        {
          std::lock_guard<std::mutex> lock(mu);
          auth_refused = true;
        }
        cv.notify_all();
        lose("the broker refused this key in the CURVE handshake", now);
        return;
      }
    }
  }

  // ------------------------------------------------------------ outgoing
  void flush() {
    if (!registered || !sock) return;
    while (true) {
      std::string batch;
      std::vector<std::uint64_t> ids;
      std::size_t taken = 0;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& o : outq) {
          if (!batch.empty() && batch.size() + o.bytes.size() > kBatchBytes) break;
          batch += o.bytes;
          if (o.request_id) ids.push_back(o.request_id);
          ++taken;
        }
      }
      if (taken == 0) return;
      if (!send_raw(sock, batch)) return;  // HWM: try again when writable
      std::lock_guard<std::mutex> lock(mu);
      outq.erase(outq.begin(), outq.begin() + static_cast<std::ptrdiff_t>(taken));
      for (auto id : ids) {
        auto it = waiters.find(id);
        if (it != waiters.end()) it->second->sent = true;
      }
      cv.notify_all();
    }
  }

  void liveness(std::int64_t now) {
    if (!sock) {
      if (now >= next_connect) {
        state = state == ConnectionState::Connecting ? ConnectionState::Connecting
                                                     : ConnectionState::Reconnecting;
        open_socket(now);
        last_heard = now;
      }
      return;
    }
    if (!registered) {
      const std::int64_t patience =
          std::max<std::int64_t>(3000, 3 * static_cast<std::int64_t>(hb_ms));
      if (now - register_sent > patience) lose("no answer to REGISTER", now);
      return;
    }
    if (now - last_heard.load() > 3 * static_cast<std::int64_t>(hb_ms)) {
      lose("broker silent for " + std::to_string(now - last_heard.load()) + " ms", now);
      return;
    }
    if (now - last_sent >= hb_ms) {
      v1::Op hb;
      hb.mutable_heartbeat();
      send_op(sock, hb);
    }
    if (opts.rekey_after.count() > 0 && !old_sock &&
        now - connected_at >=
            std::chrono::duration_cast<std::chrono::milliseconds>(opts.rekey_after).count()) {
      // Make before break: register a fresh session, then BYE the old one.
      close_socket_monitor_only();
      old_sock = sock;
      sock = nullptr;
      open_socket(now);
    }
  }

  void close_socket_monitor_only() {
    if (sock && monitor) {
      zmq_socket_monitor(sock, nullptr, 0);
      zmq_close(monitor);
      monitor = nullptr;
    }
  }

  void run() {
    state = ConnectionState::Connecting;
    next_connect = 0;
    while (true) {
      const std::int64_t now = steady_ms();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) break;
      }
      liveness(now);
      zmq_pollitem_t items[4];
      int n = 0;
      items[n++] = zmq_pollitem_t{nullptr, wake_fd, ZMQ_POLLIN, 0};
      const int sock_i = sock ? n : -1;
      if (sock) {
        bool pending;
        {
          std::lock_guard<std::mutex> lock(mu);
          pending = registered && !outq.empty();
        }
        items[n++] = zmq_pollitem_t{
            sock, 0, static_cast<short>(ZMQ_POLLIN | (pending ? ZMQ_POLLOUT : 0)), 0};
      }
      const int mon_i = monitor ? n : -1;
      if (monitor) items[n++] = zmq_pollitem_t{monitor, 0, ZMQ_POLLIN, 0};
      const int old_i = old_sock ? n : -1;
      if (old_sock) items[n++] = zmq_pollitem_t{old_sock, 0, ZMQ_POLLIN, 0};
      const long timeout = std::max(1, std::min(hb_ms / 2, 50));
      zmq_poll(items, n, timeout);
      const std::int64_t t = steady_ms();
      if (items[0].revents & ZMQ_POLLIN) {
        std::uint64_t v;
        ssize_t r = ::read(wake_fd, &v, sizeof v);
        (void)r;
      }
      if (old_i >= 0 && (items[old_i].revents & ZMQ_POLLIN)) read_socket(old_sock, t);
      if (mon_i >= 0 && monitor && (items[mon_i].revents & ZMQ_POLLIN)) read_monitor(t);
      if (sock_i >= 0 && sock) read_socket(sock, t);
      flush();
    }
    // Closing: give queued publications a moment to leave, then say BYE.
    const std::int64_t deadline = steady_ms() + 2000;
    while (registered && sock && steady_ms() < deadline) {
      flush();
      {
        std::lock_guard<std::mutex> lock(mu);
        if (outq.empty()) break;
      }
      zmq_pollitem_t item{sock, 0, ZMQ_POLLOUT | ZMQ_POLLIN, 0};
      zmq_poll(&item, 1, 10);
      read_socket(sock, steady_ms());
    }
    if (registered && sock) {
      v1::Op bye;
      bye.mutable_bye()->set_reason("closed");
      send_op(sock, bye);
      const int linger = 1000;
      zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    close_socket(old_sock);
    close_socket(sock);
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& [id, w] : waiters)
        if (!w->done) {
          w->done = true;
          w->failure = Status::Error("client closed", "CLOSED");
        }
    }
    state = ConnectionState::Closed;
    cv.notify_all();
  }

  // ------------------------------------------------------------ requests
  Result<v1::Op> request(const v1::Op& op, std::uint64_t id, std::chrono::milliseconds timeout) {
    auto w = std::make_shared<Waiter>();
    w->id = id;
    std::unique_lock<std::mutex> lock(mu);
    if (stop || state == ConnectionState::Closed || state == ConnectionState::Idle)
      return Status::Error("not connected (call connect first)", "NO_BROKER");
    waiters[id] = w;
    outq.push_back(Outgoing{encode_op(op), id});
    lock.unlock();
    wake();
    lock.lock();
    const bool done = cv.wait_for(lock, timeout, [&] { return w->done; });
    waiters.erase(id);
    if (!done) {
      // Not sent yet (still reconnecting)? Then it must not go out later.
      for (auto it = outq.begin(); it != outq.end(); ++it)
        if (it->request_id == id) {
          outq.erase(it);
          break;
        }
      const bool connected = state == ConnectionState::Connected;
      return Status::Error(
          connected ? "no answer from the broker in time" : "broker not reachable: " + last_problem,
          connected ? "TIMEOUT" : "NO_BROKER");
    }
    if (!w->failure.ok()) return w->failure;
    if (w->reply.has_error()) return error_status(w->reply.error());
    return w->reply;
  }
};

// ================================================================== Client

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->ctx = zmq_ctx_new();
  impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  impl_->hb_ms = static_cast<int>(std::max<std::int64_t>(10, impl_->opts.heartbeat.count()));
}

Client::~Client() {
  close();
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
  zmq_ctx_term(impl_->ctx);
}

Status Client::connect(std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  if (d.opts.server_public_key.size() != 40 || d.opts.public_key.size() != 40 ||
      d.opts.secret_key.size() != 40)
    return Status::Error("client keys missing or not 40-character Z85", "USAGE");
  if (!d.io.joinable()) {
    d.state = ConnectionState::Connecting;
    d.io = std::thread([&d] { d.run(); });
  }
  std::unique_lock<std::mutex> lock(d.mu);
  const bool ok = d.cv.wait_for(lock, timeout, [&] {
    return d.state == ConnectionState::Connected || d.auth_refused || d.stop;
  });
  const bool refused = d.auth_refused;
  std::string problem = d.last_problem;
  lock.unlock();
  if (ok && d.state == ConnectionState::Connected) return Status::Ok();
  close();
  if (refused)
    return Status::Error(
        "the broker at " + d.opts.endpoint + " refused this key (not in its allow-list)",
        "REFUSED");
  if (problem.rfind("registration refused", 0) == 0) return Status::Error(problem, "REFUSED");
  return Status::Error("no answer from the broker at " + d.opts.endpoint +
                           " (not running, or this key is not allowed)",
                       "NO_BROKER");
}

Status Client::subscribe(const std::vector<std::string>& patterns, MessageHandler handler,
                         bool want_retained, std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  if (patterns.empty()) return Status::Error("no pattern to subscribe", "USAGE");
  auto sub = std::make_shared<Sub>();
  sub->patterns = patterns;
  sub->handler = std::move(handler);
  {
    std::lock_guard<std::mutex> lock(d.mu);
    d.subs.push_back(sub);
  }
  v1::Op op;
  auto* s = op.mutable_subscribe();
  const std::uint64_t id = d.next_id++;
  s->set_request_id(id);
  for (const auto& p : patterns) s->add_patterns(p);
  s->set_want_retained(want_retained);
  auto r = d.request(op, id, timeout);
  auto drop_sub = [&] {
    std::lock_guard<std::mutex> lock(d.mu);
    d.subs.erase(std::remove(d.subs.begin(), d.subs.end(), sub), d.subs.end());
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
    std::lock_guard<std::mutex> lock(d.mu);
    for (auto& s : d.subs)
      s->patterns.erase(std::remove_if(s->patterns.begin(), s->patterns.end(),
                                       [&](const std::string& p) {
                                         return std::find(patterns.begin(), patterns.end(), p) !=
                                                patterns.end();
                                       }),
                        s->patterns.end());
    d.subs.erase(std::remove_if(d.subs.begin(), d.subs.end(),
                                [](const auto& s) { return s->patterns.empty(); }),
                 d.subs.end());
  }
  v1::Op op;
  auto* u = op.mutable_unsubscribe();
  const std::uint64_t id = d.next_id++;
  u->set_request_id(id);
  for (const auto& p : patterns) u->add_patterns(p);
  auto r = d.request(op, id, timeout);
  return r ? Status::Ok() : r.status();
}

Status Client::publish(const std::string& topic, const std::string& payload,
                       const PublishOptions& options) {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    const std::uint32_t limit = d.reg.limits().max_message_bytes();
    if (limit > 0 && payload.size() > limit)
      return Status::Error("payload of " + std::to_string(payload.size()) +
                               " bytes is over the broker's " + std::to_string(limit) +
                               "-byte limit",
                           "TOO_LARGE");
  }
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic(topic);
  p->set_payload(payload);
  p->set_retain(options.retain);
  if (!options.content_type.empty()) p->set_content_type(options.content_type);
  if (options.wait_ack) {
    const std::uint64_t id = d.next_id++;
    p->set_request_id(id);
    p->set_ack(true);
    auto r = d.request(op, id, options.ack_timeout);
    if (!r) return r.status();
    std::lock_guard<std::mutex> lock(d.mu);
    ++d.counters.published;
    return Status::Ok();
  }
  std::unique_lock<std::mutex> lock(d.mu);
  if (d.stop || d.state == ConnectionState::Closed || d.state == ConnectionState::Idle)
    return Status::Error("not connected (call connect first)", "NO_BROKER");
  if (d.outq.size() >= d.opts.max_queued) {
    // Connected: wait for room (back-pressure), except on the I/O thread itself.
    const bool on_io = std::this_thread::get_id() == d.io.get_id();
    if (on_io || d.state != ConnectionState::Connected ||
        !d.cv.wait_for(lock, options.ack_timeout,
                       [&] { return d.outq.size() < d.opts.max_queued || d.stop; })) {
      ++d.counters.queue_full;
      return Status::Error(
          "outgoing queue full (" + std::to_string(d.opts.max_queued) + " publications)",
          "QUEUE_FULL");
    }
  }
  d.outq.push_back(Outgoing{encode_op(op), 0});
  ++d.counters.published;
  lock.unlock();
  d.wake();
  return Status::Ok();
}

Result<std::vector<Message>> Client::pull(const std::string& topic, std::uint64_t since_seq,
                                          std::uint32_t max_count,
                                          std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  v1::Op op;
  auto* p = op.mutable_pull();
  const std::uint64_t id = d.next_id++;
  p->set_request_id(id);
  p->set_topic(topic);
  p->set_since_seq(since_seq);
  p->set_max_count(max_count);
  auto r = d.request(op, id, timeout);
  if (!r) return r.status();
  std::vector<Message> out;
  for (const auto& m : r->pull_reply().messages()) out.push_back(message_of(m));
  if (out.empty() && since_seq == 0)
    return Status::Error("nothing published on " + topic, "NOT_FOUND");
  return out;
}

Result<v1::TopicsReply> Client::topics(const std::string& pattern,
                                       std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  v1::Op op;
  const std::uint64_t id = d.next_id++;
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
  const std::uint64_t id = d.next_id++;
  op.mutable_admin()->set_request_id(id);
  op.mutable_admin()->set_command(command);
  op.mutable_admin()->set_argument(argument);
  op.mutable_admin()->set_reason(reason);
  auto r = d.request(op, id, timeout);
  if (!r) return r.status();
  return r->admin_reply();
}

ConnectionState Client::state() const {
  return impl_->state;
}
std::int64_t Client::last_heard_ms() const {
  return impl_->last_heard;
}

v1::Registered Client::registration() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->reg;
}

ClientCounters Client::counters() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->counters;
}

void Client::close() {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    d.stop = true;
  }
  d.wake();
  d.cv.notify_all();
  if (d.io.joinable()) {
    if (std::this_thread::get_id() == d.io.get_id())
      return;  // from a handler: the thread ends by itself
    d.io.join();
  }
  d.state = ConnectionState::Closed;
}

}  // namespace curvebus
