// Core (core.hpp): start-up, the sockets, the poll loop and shutdown.
#include "core.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>

#include <sodium.h>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "curvebus/broker/broker.hpp"
#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"
#include "federation.hpp"

namespace curvebus::broker {

namespace {

constexpr int kIncomingPerTurn = 256;  // messages drained per loop turn
// How often a listener is read while deferred input uses up every turn's
// budget (Core::drain_listener).
constexpr std::int64_t kStarvedReadMs = 50;
// ZeroMQ messages (batches of up to max_batch_bytes) libzmq may hold per peer
// beyond the broker's own queue.  Kept low on purpose: with
// ROUTER_MANDATORY a full pipe is EAGAIN (never a silent drop), and the
// broker's own queue is the byte-bounded, counted, visible one.
constexpr int kSndHwm = 128;
constexpr int kRcvHwm = 10000;
constexpr int kListenBacklog = 4096;
const char* kZapEndpoint = "inproc://zeromq.zap.01";
const char* kMonitorEndpoint = "inproc://curvebus.monitor.";

// Protobuf logs bad input (e.g. invalid UTF-8) itself; keep that out of the
// operator's log unless debugging, since peers control how often it happens.
void protobuf_log(google::protobuf::LogLevel level, const char* file, int line,
                  const std::string& message) {
  if (level >= google::protobuf::LOGLEVEL_FATAL)
    spdlog::critical("protobuf {}:{}: {}", file, line, message);
  else
    spdlog::debug("protobuf: {}", message);
}

std::string random_id() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(dist(rd)));
  return buf;
}

}  // namespace

AuditLog::Options audit_options(const Config& c) {
  AuditLog::Options o;
  o.path = c.audit_file;
  o.max_bytes = c.audit_max_bytes;
  return o;
}

Core::Core(Config config, Environment env)
    : config_(std::move(config)),
      env_(std::move(env)),
      clock_(env_.clock ? env_.clock : &system_clock()),
      writer_(env_.writer ? env_.writer : &router_writer_),
      names_(config_),
      admission_(config_),
      audit_(audit_options(config_)),
      sessions_(config_, *writer_, counters_),
      topics_(config_, names_, counters_),
      protocol_(config_, facts_, sessions_, topics_, names_, admission_, audit_, counters_) {
  config_.min_heartbeat_ms = std::min(config_.min_heartbeat_ms, config_.heartbeat_ms);
  config_.max_heartbeat_ms = std::max(config_.max_heartbeat_ms, config_.heartbeat_ms);
  refresh_clock();
  facts_.broker_id = random_id();
  facts_.started_us = protocol_.now_us();
  facts_.listeners = &listeners_;
}

Core::~Core() {
  for (int& fd : stop_pipe_)
    if (fd >= 0) ::close(fd);
}

std::string Core::peer_id(std::size_t listener, const void* rid, std::size_t size) {
  std::string id;
  id.reserve(size + 1);
  id.push_back(static_cast<char>('0' + listener));
  id.append(static_cast<const char*>(rid), size);
  return id;
}

std::string Core::endpoint() const {
  return listeners_.empty() ? std::string() : listeners_[0].endpoint;
}

void Core::refresh_clock() {
  protocol_.set_now(clock_->steady_ms(), clock_->wall_us());
}

PeerMeta meta_of(const zmq::message_t& body) {
  PeerMeta m;
  if (const char* user = zmq_msg_gets(body.handle(), "User-Id")) m.user = user;
  // "Identity" is the routing id the peer asked for in its handshake; empty
  // when libzmq generated one.  (A chosen id that starts with a zero byte
  // reads as empty here; such ids are the ones libzmq reserves for itself
  // and are covered by the unpredictable counter instead.)
  if (const char* id = zmq_msg_gets(body.handle(), "Identity")) m.chose_routing_id = *id != '\0';
  if (const char* addr = zmq_msg_gets(body.handle(), "Peer-Address")) m.address = addr;
  return m;
}

namespace {

// Listening TCP sockets for `bind`, `count` of them on one port with
// SO_REUSEPORT, so that the kernel spreads incoming connections over them.
// Each becomes one ROUTER's listener (ZMQ_USE_FD) on its own I/O thread.
// Only for tcp://<numeric IPv4 | [IPv6] | *>:<port | *>; false (with `fds`
// empty) for any other endpoint, which libzmq then binds itself.
struct TcpBind {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

bool parse_tcp_bind(const std::string& bind, TcpBind& out) {
  const std::string prefix = "tcp://";
  if (bind.compare(0, prefix.size(), prefix) != 0) return false;
  const std::string rest = bind.substr(prefix.size());
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = rest.substr(0, colon);
  const std::string port_text = rest.substr(colon + 1);
  unsigned long port = 0;
  if (port_text != "*") {
    if (port_text.empty() || port_text.find_first_not_of("0123456789") != std::string::npos ||
        port_text.size() > 5)
      return false;
    port = std::stoul(port_text);
    if (port > 65535) return false;
  }
  if (host == "*") host = "0.0.0.0";  // as libzmq: IPv4 on every interface
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* a = reinterpret_cast<sockaddr_in6*>(&out.addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) != 1)
      return false;
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&out.addr);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) return false;
  out.len = sizeof(sockaddr_in);
  return true;
}

Status listen_shards(const std::string& bind, std::size_t count, std::vector<int>& fds) {
  TcpBind where;
  if (count < 2 || !parse_tcp_bind(bind, where)) return Status::Ok();
  auto fail = [&](const char* what) {
    const int err = errno;
    for (int fd : fds) ::close(fd);
    fds.clear();
    return Status::Error("cannot bind " + bind + ": " + std::strerror(err) + " (" + what + ")",
                         StatusCode::kBind);
  };
  // SO_REUSEPORT would let a second broker share the port: a plain bind
  // first finds the port busy (and picks the ephemeral one).
  const int probe = ::socket(where.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return fail("socket");
  const int on = 1;
  (void)::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (where.addr.ss_family == AF_INET6)
    (void)::setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  socklen_t len = where.len;
  if (::bind(probe, reinterpret_cast<const sockaddr*>(&where.addr), where.len) != 0 ||
      ::getsockname(probe, reinterpret_cast<sockaddr*>(&where.addr), &len) != 0) {
    const int err = errno;
    ::close(probe);
    errno = err;
    return fail("bind");
  }
  ::close(probe);
  for (std::size_t i = 0; i < count; ++i) {
    const int fd = ::socket(where.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return fail("socket");
    fds.push_back(fd);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
      return fail("setsockopt");
    if (where.addr.ss_family == AF_INET6)
      (void)::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&where.addr), where.len) != 0)
      return fail("bind");
    if (::listen(fd, kListenBacklog) != 0) return fail("listen");
  }
  return Status::Ok();
}

// Binds one ROUTER with `secret_key` at `bind`, monitored on its own inproc
// endpoint.  With `fd` >= 0 the ROUTER takes that listening socket (and
// closes it with itself) and keeps its connections on I/O thread `shard`
// (ZMQ_AFFINITY), so the monitor sees each connection's events in order.
// libzmq starts each ROUTER's routing-id counter from rand(),
// which nobody seeds: every broker would hand out the same, predictable ids.
// Seeding it from the OS's random source right before creating the socket
// makes the ids a peer could try to claim unguessable (docs/security.md).
Status open_listener(zmq::context_t& ctx, const Config& config, std::size_t index,
                     const std::string& bind, const std::string& secret_key, int fd,
                     std::size_t shard, Listener& out) {
  std::srand(randombytes_random());
  try {
    out.router = zmq::socket_t(ctx, zmq::socket_type::router);
    out.router.set(zmq::sockopt::linger, 0);
    out.router.set(zmq::sockopt::curve_server, 1);
    out.router.set(zmq::sockopt::curve_secretkey, secret_key);
    out.router.set(zmq::sockopt::zap_domain, "curvebus");
    out.router.set(zmq::sockopt::router_mandatory, 1);
    out.router.set(zmq::sockopt::backlog, kListenBacklog);
    out.router.set(zmq::sockopt::sndhwm, kSndHwm);
    out.router.set(zmq::sockopt::rcvhwm, kRcvHwm);
    // One I/O thread per listener: the handshake events of one connection
    // reach the monitor in the order they happened (monitor.cpp pairs them).
    out.router.set(zmq::sockopt::affinity, std::uint64_t{1} << shard);
    // Hard cap on one incoming ZeroMQ message: beyond it libzmq drops the
    // connection (no ERROR is possible).  The payload bound itself is checked
    // per PUBLISH and answered with ERROR TOO_LARGE.
    out.router.set(zmq::sockopt::maxmsgsize,
                   static_cast<std::int64_t>(config.max_message_bytes) + 64 * 1024);
    const std::string monitor_endpoint = std::string(kMonitorEndpoint) + std::to_string(index);
    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_ACCEPTED |
                       ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    if (zmq_socket_monitor(out.router.handle(), monitor_endpoint.c_str(), events) != 0)
      return Status::Error(std::string("cannot monitor the socket: ") + zmq_strerror(zmq_errno()));
    out.monitor = zmq::socket_t(ctx, zmq::socket_type::pair);
    out.monitor.set(zmq::sockopt::linger, 0);
    // No bound on the monitor's pipe: libzmq's I/O thread sends its events
    // blocking, under the socket's monitor lock, so a full pipe would stall
    // every connection of that thread until the loop reads it — and hang the
    // shutdown, which takes that lock to stop the monitor while thousands of
    // peers disconnect.  The loop reads the events every turn.
    out.monitor.set(zmq::sockopt::rcvhwm, 0);
    out.monitor.connect(monitor_endpoint);
    if (fd >= 0) out.router.set(zmq::sockopt::use_fd, fd);
  } catch (const zmq::error_t& e) {
    if (fd >= 0) ::close(fd);
    return Status::Error(std::string("cannot set up sockets: ") + e.what(), StatusCode::kIo);
  }
  try {
    out.router.bind(bind);
  } catch (const zmq::error_t& e) {
    if (fd >= 0) ::close(fd);
    return Status::Error("cannot bind " + bind + ": " + e.what(), StatusCode::kBind);
  }
  out.endpoint = out.router.get(zmq::sockopt::last_endpoint);
  out.listen_fd = fd;
  return Status::Ok();
}

// Opens the listeners of one endpoint from listeners[first] on: one per I/O
// thread when the endpoint allows it (listen_shards), else one.
Status open_listeners(zmq::context_t& ctx, const Config& config, const std::string& bind,
                      const Certificate& cert, std::vector<Listener>& listeners) {
  std::vector<int> fds;
  if (Status s = listen_shards(bind, config.io_threads, fds); !s) return s;
  const std::size_t count = fds.empty() ? 1 : fds.size();
  const std::size_t first = listeners.size();
  for (std::size_t shard = 0; shard < count; ++shard) {
    const std::size_t index = listeners.size();
    listeners.emplace_back();
    listeners.back().first_shard = first;
    listeners.back().shards = count;
    const int fd = fds.empty() ? -1 : fds[shard];
    if (Status s = open_listener(ctx, config, index, bind, cert.keys.secret_key, fd, shard,
                                 listeners.back());
        !s) {
      for (std::size_t rest = shard + 1; rest < fds.size(); ++rest) ::close(fds[rest]);
      return s;
    }
    listeners.back().server_fp = key_fingerprint(cert.keys.public_key);
  }
  if (count < config.io_threads)
    spdlog::info(
        "listening on {} through one I/O thread (only tcp://<address>:<port> endpoints "
        "are spread over several)",
        bind);
  return Status::Ok();
}

}  // namespace

Status Core::start() {
  google::protobuf::SetLogHandler(&protobuf_log);
  if (!zmq_has("curve"))
    return Status::Error("this libzmq is built without CURVE; refusing to run insecurely");
  if (sodium_init() < 0) return Status::Error("libsodium failed to initialise");
  auto cert = read_certificate(config_.keys_dir + "/broker_secret", true);
  if (!cert) return Status::Error(cert.status().message(), StatusCode::kKeys);
  std::optional<Certificate> next;
  if (!config_.next_key.empty()) {
    auto n = read_certificate(config_.next_key, true);
    if (!n) return Status::Error(n.status().message(), StatusCode::kKeys);
    next = std::move(*n);
  }
  if (Status s = open(); !s) return s;

  try {
    // Before the first socket: libzmq starts its I/O threads with it.
    context_.set(zmq::ctxopt::io_threads, static_cast<int>(config_.io_threads));
  } catch (const zmq::error_t& e) {
    return Status::Error(std::string("cannot set the I/O threads: ") + e.what(), StatusCode::kIo);
  }
  if (::pipe(stop_pipe_) != 0) return Status::Error("cannot create the stop pipe", StatusCode::kIo);
  for (int fd : stop_pipe_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  try {
    // The ZAP handler must be bound before the first peer can connect.
    zap_ = zmq::socket_t(context_, zmq::socket_type::rep);
    zap_.set(zmq::sockopt::linger, 0);
    zap_.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Status::Error(std::string("cannot set up sockets: ") + e.what(), StatusCode::kIo);
  }
  listeners_.reserve(2 * config_.io_threads);
  if (Status s = open_listeners(context_, config_, config_.bind, *cert, listeners_); !s) return s;
  const std::size_t next_index = listeners_.size();
  if (next) {
    if (Status s = open_listeners(context_, config_, config_.next_bind, *next, listeners_); !s)
      return s;
  }
  if (!config_.endpoint_file.empty()) {
    if (!write_file_atomically(config_.endpoint_file, listeners_[0].endpoint + "\n", 0644))
      return Status::Error("cannot write " + config_.endpoint_file, StatusCode::kIo);
    if (next && !write_file_atomically(config_.endpoint_file + ".next",
                                       listeners_[next_index].endpoint + "\n", 0644))
      return Status::Error("cannot write " + config_.endpoint_file + ".next", StatusCode::kIo);
  }
  spdlog::info(
      "broker listening endpoint={} broker_id={} version={} server_fp={} acl={} clients={} keys={} "
      "revocations={} audit={}",
      listeners_[0].endpoint, facts_.broker_id, broker_version(), listeners_[0].server_fp,
      config_.acl_path, admission_.acl().entries().size(), admission_.acl().key_count(),
      admission_.revocations().entries().size(),
      config_.audit_file.empty() ? "(none)" : config_.audit_file);
  if (next)
    spdlog::info("broker key rotation: also listening endpoint={} server_fp={} (next key)",
                 listeners_[next_index].endpoint, listeners_[next_index].server_fp);
  spdlog::info(
      "limits heartbeat_ms={} max_message_bytes={} max_subscriptions={} publish_rate={}/name "
      "publish_burst={} queue_limit={} queue_limit_bytes={} history_depth={} max_topics={} "
      "max_sessions_per_name={} work_budget={}/name memory_budget_bytes={} name_quota_bytes={} "
      "topic_idle_s={} stats_interval_s={} io_threads={}",
      config_.heartbeat_ms, config_.max_message_bytes, config_.max_subscriptions,
      config_.publish_rate, config_.publish_burst, config_.queue_limit, config_.queue_limit_bytes,
      config_.history_depth, config_.max_topics, config_.max_sessions_per_name, config_.work_budget,
      config_.memory_budget_bytes, config_.name_quota_bytes, config_.topic_idle_s,
      config_.stats_interval_s, config_.io_threads);
  if (config_.federation.enabled) {
    federation_ = std::make_unique<Federation>(config_.federation, config_.home);
    if (Status s = federation_->start(); !s) return s;
    Federation* fed = federation_.get();
    protocol_.set_federation(fed, [fed](v1::AdminReply& r) { fed->describe(r); });
  }
  started_ = true;
  return Status::Ok();
}

Status Core::open() {
  google::protobuf::SetLogHandler(&protobuf_log);
  if (Status s = admission_.load(); !s) return s;
  if (Status s = audit_.open(); !s) return s;
  refresh_clock();
  load_retained();
  protocol_.start_housekeeping();
  return Status::Ok();
}

void Core::begin_turn() {
  refresh_clock();
  protocol_.begin_turn();
}

void Core::input(const std::string& peer, const void* data, std::size_t size,
                 const PeerMeta& meta) {
  refresh_clock();
  protocol_.input(peer, data, size, meta.user.empty() ? nullptr : meta.user.c_str(),
                  [&meta] { return meta; });
}

void Core::end_turn() {
  refresh_clock();
  protocol_.end_turn();
}

void Core::stop() {
  stopping_.store(true);
  if (stop_pipe_[1] >= 0) {
    char c = 's';
    ssize_t n = ::write(stop_pipe_[1], &c, 1);
    (void)n;
  }
}

long Core::poll_timeout_ms() const {
  return static_cast<long>(
      std::max<std::int64_t>(0, protocol_.next_wakeup_ms() - protocol_.now_ms()));
}

void Core::drain_listener(std::size_t index) {
  zmq::socket_t& router = listeners_[index].router;
  // A turn whose budget went to input deferred from earlier turns reads no new
  // message.  So one fast publisher's backlog kept every other peer unheard,
  // alive signals included, for as long as it lasted: under ASan four
  // subscribers of a flood were expired, silent for 3 s, their heartbeats
  // waiting unread.  So while starved, a listener is still read every
  // kStarvedReadMs, in ZeroMQ's round-robin order over peers, until a
  // message needs work (it is deferred or refused): heartbeats cost nothing,
  // and a backlogged publisher's next frame ends the read.
  const bool starved = !protocol_.turn_has_room();
  if (starved) {
    Listener& l = listeners_[index];
    if (protocol_.now_ms() - l.starved_read_ms < kStarvedReadMs) return;
    l.starved_read_ms = protocol_.now_ms();
  }
  for (int i = 0; i < kIncomingPerTurn && (starved || protocol_.turn_has_room()); ++i) {
    zmq::message_t rid;
    if (!router.recv(rid, zmq::recv_flags::dontwait)) return;
    if (!rid.more()) continue;  // cannot happen on a ROUTER
    zmq::message_t body;
    if (!router.recv(body, zmq::recv_flags::dontwait)) return;
    const std::string peer = peer_id(index, rid.data(), rid.size());
    refresh_clock();
    if (body.more()) {  // the protocol is one part per message
      std::size_t bytes = body.size();
      bool extra = true;
      while (extra) {
        zmq::message_t skip;
        if (!router.recv(skip, zmq::recv_flags::dontwait)) break;
        extra = skip.more();
        bytes += skip.size();
      }
      ++counters_.messages_in;
      counters_.bytes_in += bytes;
      protocol_.malformed(peer, bytes, 0, "frame", "a message must be exactly one part");
      continue;
    }
    const std::uint64_t needed_work = counters_.input_deferred + counters_.budget_refused;
    protocol_.input(peer, body.data(), body.size(), zmq_msg_gets(body.handle(), "User-Id"),
                    [&body] { return meta_of(body); });
    if (starved && counters_.input_deferred + counters_.budget_refused != needed_work) return;
  }
}

int Core::run() {
  if (!started_) return 1;
  std::vector<zmq::pollitem_t> items;
  items.push_back({nullptr, stop_pipe_[0], ZMQ_POLLIN, 0});
  items.push_back({zap_.handle(), 0, ZMQ_POLLIN, 0});
  for (auto& l : listeners_) {
    items.push_back({l.monitor.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({l.router.handle(), 0, ZMQ_POLLIN, 0});
  }
  const std::size_t fed_item = items.size();
  if (federation_) items.push_back({nullptr, federation_->wake_fd(), ZMQ_POLLIN, 0});
  while (!stopping_.load()) {
    refresh_clock();
    const long timeout = poll_timeout_ms();
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::critical("poll failed: {}", e.what());
      return 1;
    }
    if (items[0].revents & ZMQ_POLLIN) break;
    refresh_clock();
    try {
      // ZAP first: handshakes waiting on it hold up the peers' first messages.
      if (items[1].revents & ZMQ_POLLIN) handle_zap();
      for (std::size_t i = 0; i < listeners_.size(); ++i)
        if (items[2 + 2 * i].revents & ZMQ_POLLIN) handle_monitor(i);
      // One turn's work: deferred input first (oldest), then new messages,
      // until the turn's budget is spent; what is left waits for the next
      // turn, so one peer's huge frame never holds up the others for long.
      begin_turn();
      for (std::size_t i = 0; i < listeners_.size(); ++i)
        if (items[3 + 2 * i].revents & ZMQ_POLLIN) drain_listener(i);
      // What other brokers sent, checked on libnats's threads (federation.hpp).
      if (federation_ && (items[fed_item].revents & ZMQ_POLLIN)) federation_->drain(protocol_);
      end_turn();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (e.num() == ETERM) break;
      spdlog::error("socket error: {}", e.what());
    }
  }
  spdlog::info("broker stopping sessions={} topics={}", sessions_.size(), topics_.size());
  if (federation_) {
    federation_->stop();
    // Publishers whose commands were still being stored are answered.
    begin_turn();
    federation_->drain(protocol_);
    end_turn();
  }
  if (retained_log_) retained_log_->flush_and_wait();
  audit_.flush();
  for (auto& l : listeners_) {
    zmq_socket_monitor(l.router.handle(), nullptr, 0);
    l.monitor.close();
    l.router.close();
  }
  zap_.close();
  context_.close();
  return 0;
}

}  // namespace curvebus::broker
