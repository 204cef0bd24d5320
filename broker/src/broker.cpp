// The event loop: sockets, start-up, the poll loop and shutdown.
#include "curvebus/broker/broker.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/certificate.hpp"

namespace curvebus::broker {

const char* broker_version() {
#ifdef CURVEBUS_VERSION
  return CURVEBUS_VERSION;
#else
  return "0.0.0";
#endif
}

namespace {

constexpr int kIncomingPerTurn = 256;  // messages drained per loop turn
// ZeroMQ messages (batches of up to max_batch_bytes) libzmq may hold per peer
// beyond the broker's own queue.  Kept low on purpose: with
// ROUTER_MANDATORY a full pipe is EAGAIN (never a silent drop), and the
// broker's own queue is the byte-bounded, counted, visible one.
constexpr int kSndHwm = 128;
constexpr int kRcvHwm = 10000;
constexpr long kBacklogRetryMs = 2;
constexpr long kMaxPollMs = 1000;
const char* kZapEndpoint = "inproc://zeromq.zap.01";
const char* kMonitorEndpoint = "inproc://curvebus.monitor";

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

const char* reason_name(CloseReason r) {
  switch (r) {
    case CloseReason::kClosed:
      return "closed";
    case CloseReason::kTimeout:
      return "timeout";
    case CloseReason::kKicked:
      return "kicked";
    case CloseReason::kRevoked:
      return "revoked";
  }
  return "closed";
}

Core::Core(Config config) : config_(std::move(config)) {
  topic_rules_.max_bytes = config_.max_topic_bytes;
  topic_rules_.max_levels = config_.max_topic_levels;
  config_.min_heartbeat_ms = std::min(config_.min_heartbeat_ms, config_.heartbeat_ms);
  config_.max_heartbeat_ms = std::max(config_.max_heartbeat_ms, config_.heartbeat_ms);
  broker_id_ = random_id();
  started_us_ = wall_clock_us();
}

Core::~Core() {
  for (int& fd : stop_pipe_)
    if (fd >= 0) ::close(fd);
}

Status Core::start() {
  google::protobuf::SetLogHandler(&protobuf_log);
  if (!zmq_has("curve"))
    return Status::Error("this libzmq is built without CURVE; refusing to run insecurely");
  auto cert = read_certificate(config_.keys_dir + "/broker_secret", true);
  if (!cert) return Status::Error(cert.status().message(), "KEYS");
  auto acl = AllowList::load_file(config_.acl_path);
  if (!acl) return Status::Error(acl.status().message(), "CONFIG");
  acl_ = std::move(*acl);

  if (::pipe(stop_pipe_) != 0) return Status::Error("cannot create the stop pipe", "IO");
  for (int fd : stop_pipe_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  try {
    // The ZAP handler must be bound before the first peer can connect.
    zap_ = zmq::socket_t(context_, zmq::socket_type::rep);
    zap_.set(zmq::sockopt::linger, 0);
    zap_.bind(kZapEndpoint);

    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    router_.set(zmq::sockopt::linger, 0);
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, cert->keys.secret_key);
    router_.set(zmq::sockopt::zap_domain, "curvebus");
    router_.set(zmq::sockopt::router_mandatory, 1);
    router_.set(zmq::sockopt::backlog, 4096);
    router_.set(zmq::sockopt::sndhwm, kSndHwm);
    router_.set(zmq::sockopt::rcvhwm, kRcvHwm);
    // Hard cap on one incoming ZeroMQ message: beyond it libzmq drops the
    // connection (no ERROR is possible).  The payload bound itself is checked
    // per PUBLISH and answered with ERROR TOO_LARGE.
    router_.set(zmq::sockopt::maxmsgsize,
                static_cast<std::int64_t>(config_.max_message_bytes) + 64 * 1024);

    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_ACCEPTED |
                       ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    if (zmq_socket_monitor(router_.handle(), kMonitorEndpoint, events) != 0)
      return Status::Error(std::string("cannot monitor the socket: ") + zmq_strerror(zmq_errno()));
    monitor_ = zmq::socket_t(context_, zmq::socket_type::pair);
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(kMonitorEndpoint);
  } catch (const zmq::error_t& e) {
    return Status::Error(std::string("cannot set up sockets: ") + e.what(), "IO");
  }
  try {
    router_.bind(config_.bind);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot bind " + config_.bind + ": " + e.what(), "BIND");
  }
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  if (!config_.endpoint_file.empty()) {
    if (!write_file_atomically(config_.endpoint_file, endpoint_ + "\n", 0644))
      return Status::Error("cannot write " + config_.endpoint_file, "IO");
  }
  spdlog::info(
      "broker listening endpoint={} broker_id={} version={} server_fp={} acl={} clients={}",
      endpoint_, broker_id_, broker_version(), key_fingerprint(cert->keys.public_key),
      config_.acl_path, acl_.entries().size());
  spdlog::info(
      "limits heartbeat_ms={} max_message_bytes={} max_subscriptions={} publish_rate={} "
      "publish_burst={} queue_limit={} queue_limit_bytes={} history_depth={} max_topics={} "
      "stats_interval_s={}",
      config_.heartbeat_ms, config_.max_message_bytes, config_.max_subscriptions,
      config_.publish_rate, config_.publish_burst, config_.queue_limit, config_.queue_limit_bytes,
      config_.history_depth, config_.max_topics, config_.stats_interval_s);
  load_retained();
  next_stats_ms_ = config_.stats_interval_s ? steady_ms() + config_.stats_interval_s * 1000LL : 0;
  started_ = true;
  return Status::Ok();
}

void Core::stop() {
  stopping_.store(true);
  if (stop_pipe_[1] >= 0) {
    char c = 's';
    ssize_t n = ::write(stop_pipe_[1], &c, 1);
    (void)n;
  }
}

long Core::poll_timeout_ms(std::int64_t now) const {
  std::int64_t due = now + kMaxPollMs;
  if (!timers_.empty()) due = std::min(due, timers_.top().first);
  if (next_stats_ms_) due = std::min(due, next_stats_ms_);
  if (retained_dirty_) due = std::min(due, next_retained_save_ms_);
  if (!backlogged_.empty()) due = std::min(due, now + kBacklogRetryMs);
  return static_cast<long>(std::max<std::int64_t>(0, due - now));
}

void Core::drain_router() {
  for (int i = 0; i < kIncomingPerTurn; ++i) {
    zmq::message_t rid;
    if (!router_.recv(rid, zmq::recv_flags::dontwait)) return;
    if (!rid.more()) continue;  // cannot happen on a ROUTER
    zmq::message_t body;
    if (!router_.recv(body, zmq::recv_flags::dontwait)) return;
    std::string routing_id(static_cast<const char*>(rid.data()), rid.size());
    if (body.more()) {  // the protocol is one part per message
      std::size_t bytes = body.size();
      bool extra = true;
      while (extra) {
        zmq::message_t skip;
        if (!router_.recv(skip, zmq::recv_flags::dontwait)) break;
        extra = skip.more();
        bytes += skip.size();
      }
      ++counters_.messages_in;
      counters_.bytes_in += bytes;
      malformed(routing_id, bytes, 0, "frame", "a message must be exactly one part");
      continue;
    }
    on_message(routing_id, body);
  }
}

int Core::run() {
  if (!started_) return 1;
  zmq::pollitem_t items[] = {
      {router_.handle(), 0, ZMQ_POLLIN, 0},
      {zap_.handle(), 0, ZMQ_POLLIN, 0},
      {monitor_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, stop_pipe_[0], ZMQ_POLLIN, 0},
  };
  while (!stopping_.load()) {
    const long timeout = poll_timeout_ms(steady_ms());
    try {
      zmq::poll(items, 4, std::chrono::milliseconds(timeout));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      spdlog::critical("poll failed: {}", e.what());
      return 1;
    }
    if (items[3].revents & ZMQ_POLLIN) break;
    try {
      // ZAP first: handshakes waiting on it hold up the peers' first messages.
      if (items[1].revents & ZMQ_POLLIN) handle_zap();
      if (items[2].revents & ZMQ_POLLIN) handle_monitor();
      if (items[0].revents & ZMQ_POLLIN) drain_router();
      const std::int64_t now = steady_ms();
      run_liveness(now);
      run_stats(now);
      if (retained_dirty_ && now >= next_retained_save_ms_) save_retained();
      flush_all();
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      if (e.num() == ETERM) break;
      spdlog::error("socket error: {}", e.what());
    }
  }
  spdlog::info("broker stopping sessions={} topics={}", sessions_.size(), topics_.size());
  if (retained_dirty_) save_retained();
  zmq_socket_monitor(router_.handle(), nullptr, 0);
  monitor_.close();
  router_.close();
  zap_.close();
  context_.close();
  return 0;
}

// ---------------------------------------------------------------- facade

Broker::Broker(Config config) : core_(std::make_unique<Core>(std::move(config))) {}
Broker::~Broker() = default;
Status Broker::start() {
  return core_->start();
}
int Broker::run() {
  return core_->run();
}
void Broker::stop() {
  core_->stop();
}
std::string Broker::endpoint() const {
  return core_->endpoint();
}

}  // namespace curvebus::broker
