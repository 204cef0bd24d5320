#include "attacker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>

namespace curvebus::hostile {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<std::uint64_t> g_monitor_serial{0};

void require_loopback(const std::string& endpoint) {
  if (endpoint.rfind("tcp://127.0.0.1:", 0) != 0)
    throw std::invalid_argument("hostile peers only talk to tcp://127.0.0.1: got " + endpoint);
}

std::chrono::milliseconds left_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : 0ms;
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::uint64_t get_u64(std::string_view in) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  return v;
}

}  // namespace

int BrokerAddress::port() const {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos) return 0;
  try {
    return std::stoi(endpoint.substr(colon + 1));
  } catch (const std::exception&) {
    return 0;
  }
}

// ---------------------------------------------------------------- routing ids

std::string generated_routing_id(std::uint32_t counter) {
  std::string id(5, '\0');
  for (int i = 0; i < 4; ++i)
    id[static_cast<std::size_t>(4 - i)] = static_cast<char>((counter >> (8 * i)) & 0xFF);
  return id;
}

std::optional<std::uint32_t> routing_id_counter(std::string_view id) {
  if (id.size() != 5 || id[0] != '\0') return std::nullopt;
  std::uint32_t v = 0;
  for (std::size_t i = 1; i < 5; ++i) v = (v << 8) | static_cast<unsigned char>(id[i]);
  return v;
}

std::string to_hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xF]);
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

// ---------------------------------------------------------------- raw peer

RawPeer::RawPeer(zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys)
    : RawPeer(ctx, broker, keys, Options{}) {}

RawPeer::RawPeer(zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys,
                 Options options)
    : socket_(ctx, zmq::socket_type::dealer) {
  require_loopback(broker.endpoint);
  socket_.set(zmq::sockopt::linger, 0);
  if (options.sndhwm > 0) socket_.set(zmq::sockopt::sndhwm, options.sndhwm);
  if (options.rcvhwm > 0) socket_.set(zmq::sockopt::rcvhwm, options.rcvhwm);
  if (!options.routing_id.empty()) socket_.set(zmq::sockopt::routing_id, options.routing_id);
  if (options.curve) {
    socket_.set(zmq::sockopt::curve_serverkey,
                options.server_key.empty() ? broker.server_key : options.server_key);
    socket_.set(zmq::sockopt::curve_publickey, keys.public_key);
    socket_.set(zmq::sockopt::curve_secretkey, keys.secret_key);
  }
  if (options.monitor) {
    const std::string endpoint = "inproc://hostile-monitor-" + std::to_string(++g_monitor_serial) +
                                 "-" + std::to_string(::getpid());
    const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(socket_.handle(), endpoint.c_str(), events) != 0) throw zmq::error_t();
    monitor_ = zmq::socket_t(ctx, zmq::socket_type::pair);
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(endpoint);
  }
  std::string target = broker.endpoint;
  if (options.source_port > 0)
    target = "tcp://127.0.0.1:" + std::to_string(options.source_port) + ";" +
             broker.endpoint.substr(std::strlen("tcp://"));
  socket_.connect(target);
}

RawPeer::~RawPeer() = default;

void RawPeer::close() {
  if (monitor_) monitor_.close();
  if (socket_) socket_.close();
}

bool RawPeer::send_frame(std::string_view bytes) {
  if (!socket_) return false;
  return socket_.send(zmq::const_buffer(bytes.data(), bytes.size()), zmq::send_flags::dontwait)
      .has_value();
}

bool RawPeer::send_op(const v1::Op& op) {
  return send_frame(encode_op(op));
}

bool RawPeer::send_ops(const std::vector<v1::Op>& ops) {
  std::string bytes;
  for (const auto& op : ops) append_op(op, bytes);
  return send_frame(bytes);
}

bool RawPeer::read_available() {
  if (!socket_) return false;
  bool got = false;
  zmq::message_t msg;
  while (socket_.recv(msg, zmq::recv_flags::dontwait)) {
    v1::Frame frame;
    if (!decode_frame(msg.data(), msg.size(), frame)) {
      ++undecodable_;
      continue;
    }
    for (auto& op : *frame.mutable_ops()) {
      if (op.has_ping() && auto_pong) {
        v1::Op pong;
        pong.mutable_pong()->set_nonce(op.ping().nonce());
        send_op(pong);
      }
      queued_.push_back(std::move(op));
      got = true;
    }
  }
  return got;
}

std::optional<v1::Op> RawPeer::wait_for(const std::function<bool(const v1::Op&)>& pred,
                                        std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::size_t scanned = 0;
  for (;;) {
    for (; scanned < queued_.size(); ++scanned) {
      if (pred(queued_[scanned])) {
        v1::Op op = std::move(queued_[scanned]);
        queued_.erase(queued_.begin() + static_cast<std::ptrdiff_t>(scanned));
        return op;
      }
    }
    if (!socket_) return std::nullopt;
    const auto left = left_until(deadline);
    if (left.count() == 0) {
      if (!read_available()) return std::nullopt;
      continue;
    }
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, left);
    read_available();
  }
}

std::optional<v1::Op> RawPeer::wait_for(v1::Op::BodyCase body, std::chrono::milliseconds timeout) {
  return wait_for([body](const v1::Op& op) { return op.body_case() == body; }, timeout);
}

std::optional<v1::Op> RawPeer::wait_answer(std::uint64_t request_id, v1::Op::BodyCase body,
                                           std::chrono::milliseconds timeout) {
  return wait_for(
      [&](const v1::Op& o) {
        if (o.has_error()) return o.error().request_id() == request_id;
        return o.body_case() == body &&
               (answered_request_id(o) == request_id || answered_request_id(o) == 0);
      },
      timeout);
}

std::vector<v1::Op> RawPeer::collect(std::chrono::milliseconds window) {
  const auto deadline = Clock::now() + window;
  while (socket_ && Clock::now() < deadline) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, left_until(deadline));
    read_available();
  }
  std::vector<v1::Op> out(std::make_move_iterator(queued_.begin()),
                          std::make_move_iterator(queued_.end()));
  queued_.clear();
  return out;
}

std::uint64_t RawPeer::send_register(v1::Role role, std::uint32_t heartbeat_ms,
                                     const std::vector<std::string>& provides,
                                     const std::string& client_name,
                                     const std::string& client_version) {
  v1::Op op;
  auto* r = op.mutable_register_();
  const std::uint64_t id = next_request_id();
  r->set_request_id(id);
  r->set_role(role);
  r->set_heartbeat_ms(heartbeat_ms);
  for (const auto& p : provides) r->add_provides(p);
  r->set_client_name(client_name);
  r->set_client_version(client_version);
  send_op(op);
  return id;
}

std::optional<v1::Op> RawPeer::register_wait(v1::Role role, std::uint32_t heartbeat_ms,
                                             const std::vector<std::string>& provides,
                                             std::chrono::milliseconds timeout) {
  const std::uint64_t id = send_register(role, heartbeat_ms, provides);
  return wait_answer(id, v1::Op::kRegistered, timeout);
}

std::optional<v1::Op> RawPeer::subscribe_wait(const std::vector<std::string>& patterns,
                                              std::chrono::milliseconds timeout) {
  v1::Op op;
  auto* s = op.mutable_subscribe();
  const std::uint64_t id = next_request_id();
  s->set_request_id(id);
  for (const auto& p : patterns) s->add_patterns(p);
  send_op(op);
  return wait_answer(id, v1::Op::kSuback, timeout);
}

std::uint64_t RawPeer::send_publish(const std::string& topic, std::string_view payload, bool ack,
                                    bool retain) {
  v1::Op op;
  auto* p = op.mutable_publish();
  const std::uint64_t id = ack ? next_request_id() : 0;
  p->set_request_id(id);
  p->set_topic(topic);
  p->set_payload(payload.data(), payload.size());
  p->set_ack(ack);
  p->set_retain(retain);
  send_op(op);
  return id;
}

std::optional<v1::Op> RawPeer::publish_wait(const std::string& topic, std::string_view payload,
                                            bool retain, std::chrono::milliseconds timeout) {
  const std::uint64_t id = send_publish(topic, payload, true, retain);
  return wait_answer(id, v1::Op::kPuback, timeout);
}

std::optional<v1::Op> RawPeer::pull_wait(const std::string& topic,
                                         std::chrono::milliseconds timeout) {
  v1::Op op;
  auto* p = op.mutable_pull();
  const std::uint64_t id = next_request_id();
  p->set_request_id(id);
  p->set_topic(topic);
  send_op(op);
  return wait_answer(id, v1::Op::kPullReply, timeout);
}

std::uint64_t RawPeer::send_admin(v1::AdminCommand command, const std::string& argument,
                                  const std::string& reason) {
  v1::Op op;
  auto* a = op.mutable_admin();
  const std::uint64_t id = next_request_id();
  a->set_request_id(id);
  a->set_command(command);
  a->set_argument(argument);
  a->set_reason(reason);
  send_op(op);
  return id;
}

std::optional<v1::Op> RawPeer::admin_wait(v1::AdminCommand command, const std::string& argument,
                                          const std::string& reason,
                                          std::chrono::milliseconds timeout) {
  const std::uint64_t id = send_admin(command, argument, reason);
  return wait_answer(id, v1::Op::kAdminReply, timeout);
}

std::optional<v1::Op> RawPeer::topics_wait(const std::string& pattern, const std::string& after,
                                           std::chrono::milliseconds timeout) {
  v1::Op op;
  auto* t = op.mutable_topics();
  const std::uint64_t id = next_request_id();
  t->set_request_id(id);
  t->set_pattern(pattern);
  t->set_after(after);
  send_op(op);
  return wait_answer(id, v1::Op::kTopicsReply, timeout);
}

void RawPeer::send_heartbeat() {
  v1::Op op;
  op.mutable_heartbeat();
  send_op(op);
}

void RawPeer::send_bye(const std::string& reason) {
  v1::Op op;
  op.mutable_bye()->set_reason(reason);
  send_op(op);
}

bool RawPeer::wait_handshake(std::chrono::milliseconds timeout) {
  if (handshake_state_ != 0) return handshake_state_ > 0;
  if (!monitor_) return false;
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{monitor_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, left_until(deadline));
    zmq::message_t event;
    while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
      std::uint16_t id = 0;
      if (event.size() >= 2) std::memcpy(&id, event.data(), 2);
      if (event.more()) {
        zmq::message_t endpoint;
        (void)monitor_.recv(endpoint);
      }
      if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) handshake_state_ = 1;
      if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL || id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
          id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        handshake_state_ = -1;
      if (handshake_state_ != 0) return handshake_state_ > 0;
    }
  }
  return false;
}

// ---------------------------------------------------------------- frames

std::string topics_flood_frame(std::size_t count) {
  v1::Op op;
  op.mutable_topics();
  const std::string one = encode_op(op);
  std::string out;
  out.reserve(one.size() * count);
  for (std::size_t i = 0; i < count; ++i) out += one;
  return out;
}

std::string publish_batch_frame(const std::function<std::string(std::size_t)>& topic_of,
                                std::size_t first, std::size_t count, std::string_view payload,
                                bool retain) {
  std::string out;
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_payload(payload.data(), payload.size());
  p->set_retain(retain);
  for (std::size_t i = first; i < first + count; ++i) {
    p->set_topic(topic_of(i));
    append_op(op, out);
  }
  return out;
}

// ---------------------------------------------------------------- claims

std::vector<std::unique_ptr<RawPeer>> claim_routing_ids(
    zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys, std::uint32_t first,
    std::uint32_t count, std::chrono::milliseconds timeout, std::uint32_t* succeeded) {
  std::vector<std::unique_ptr<RawPeer>> claims;
  for (std::uint32_t i = 0; i < count; ++i) {
    RawPeer::Options o;
    o.routing_id = generated_routing_id(first + i);
    o.monitor = true;
    claims.push_back(std::make_unique<RawPeer>(ctx, broker, keys, o));
  }
  const auto deadline = Clock::now() + timeout;
  std::uint32_t ok = 0;
  for (auto& c : claims)
    if (c->wait_handshake(left_until(deadline))) ++ok;
  if (succeeded) *succeeded = ok;
  return claims;
}

// ---------------------------------------------------------------- raw TCP

// Never the same port twice in one process: the kernel may hand a port out
// again once it is closed, and a test that expects one kind of peer per port
// (the handshake audit) then reads another peer's line as its own.
int free_local_port() {
  static std::mutex mutex;
  static std::set<int> handed_out;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    int port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    ::close(fd);
    if (port == 0) return 0;
    std::lock_guard<std::mutex> lock(mutex);
    if (handed_out.insert(port).second) return port;
  }
  return 0;
}

GarbageConnection::GarbageConnection(int port, std::string_view bytes) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close();
    return;
  }
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) == 0)
    local_port_ = ntohs(local.sin_port);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

GarbageConnection::~GarbageConnection() {
  close();
}

bool GarbageConnection::wait_closed_by_peer(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return true;
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_until(deadline).count())) <= 0) continue;
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return true;  // EOF or reset
  }
  return false;
}

void GarbageConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// ---------------------------------------------------------------- probe

LatencyProbe::LatencyProbe(BrokerAddress broker, KeyPair keys, std::string topic,
                           std::chrono::milliseconds period)
    : broker_(std::move(broker)),
      keys_(std::move(keys)),
      topic_(std::move(topic)),
      period_(period) {
  require_loopback(broker_.endpoint);
}

LatencyProbe::~LatencyProbe() {
  stop(0ms);
}

bool LatencyProbe::start(std::chrono::milliseconds timeout) {
  thread_ = std::thread([this, timeout] { run(timeout); });
  while (state_.load() == 0) std::this_thread::sleep_for(5ms);
  return state_.load() == 1;
}

ProbeReport LatencyProbe::stop(std::chrono::milliseconds grace) {
  if (stopped_) return report_;
  stopped_ = true;
  grace_ms_ = grace.count();
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return report_;
}

void LatencyProbe::run(std::chrono::milliseconds timeout) {
  zmq::context_t ctx(1);
  RawPeer pub(ctx, broker_, keys_);
  RawPeer sub(ctx, broker_, keys_);
  const auto ready_by = Clock::now() + timeout;
  auto fail = [&](const std::string& why) {
    report_.problem = why;
    state_ = -1;
  };
  auto reg_sub = sub.register_wait(v1::ROLE_CLIENT, 1000, {}, left_until(ready_by));
  if (!reg_sub || !reg_sub->has_registered())
    return fail("probe subscriber did not register" +
                (reg_sub ? ": " + reg_sub->error().message() : std::string()));
  auto reg_pub = pub.register_wait(v1::ROLE_CLIENT, 1000, {}, left_until(ready_by));
  if (!reg_pub || !reg_pub->has_registered())
    return fail("probe publisher did not register" +
                (reg_pub ? ": " + reg_pub->error().message() : std::string()));
  auto ack = sub.subscribe_wait({topic_}, left_until(ready_by));
  if (!ack || !ack->has_suback() || ack->suback().answers_size() != 1 ||
      ack->suback().answers(0).result() != v1::PATTERN_GRANTED)
    return fail("probe could not subscribe to " + topic_);
  report_.started = true;
  state_ = 1;

  std::vector<Clock::time_point> sent_at;
  std::vector<bool> seen;
  std::vector<double> rtts;
  std::string payload;
  auto next_send = Clock::now();
  auto next_heartbeat = Clock::now() + 250ms;
  auto drain_until = Clock::time_point::max();
  auto handle = [&](RawPeer& peer, bool is_sub) {
    peer.read_available();
    const auto now = Clock::now();
    for (const auto& op : peer.queued()) {
      if (op.has_error()) ++report_.errors;
      if (!is_sub || !op.has_deliver() || op.deliver().topic() != topic_) continue;
      const std::string& p = op.deliver().payload();
      if (p.size() < 8) continue;
      const std::uint64_t seq = get_u64(p);
      if (seq >= sent_at.size() || seen[seq]) continue;
      seen[seq] = true;
      ++report_.received;
      ++received_;
      rtts.push_back(std::chrono::duration<double, std::milli>(now - sent_at[seq]).count());
    }
    peer.clear_queue();
  };
  for (;;) {
    const auto now = Clock::now();
    if (stop_ && drain_until == Clock::time_point::max())
      drain_until = now + std::chrono::milliseconds(grace_ms_.load());
    if (drain_until != Clock::time_point::max() &&
        (now >= drain_until || report_.received == sent_at.size()))
      break;
    if (drain_until == Clock::time_point::max() && now >= next_send) {
      payload.clear();
      put_u64(payload, sent_at.size());
      sent_at.push_back(Clock::now());
      seen.push_back(false);
      pub.send_publish(topic_, payload, false);
      next_send += period_;
      if (next_send < now) next_send = now + period_;  // never burst to catch up
    }
    if (now >= next_heartbeat) {
      sub.send_heartbeat();
      next_heartbeat = now + 250ms;
    }
    auto wake = std::min(next_heartbeat, drain_until);
    if (drain_until == Clock::time_point::max()) wake = std::min(wake, next_send);
    zmq::pollitem_t items[] = {{sub.socket().handle(), 0, ZMQ_POLLIN, 0},
                               {pub.socket().handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::min(left_until(wake), std::chrono::milliseconds(50)));
    handle(sub, true);
    handle(pub, false);
  }
  report_.sent = sent_at.size();
  report_.lost = report_.sent - report_.received;
  std::vector<double> sorted = rtts;
  report_.p50_ms = percentile(sorted, 50);
  report_.p99_ms = percentile(sorted, 99);
  report_.max_ms = sorted.empty() ? 0 : sorted.back();
  pub.send_bye("probe done");
  sub.send_bye("probe done");
}

// ---------------------------------------------------------------- /proc

long proc_status_kb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = field + ":";
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      try {
        return std::stol(line.substr(key.size()));
      } catch (const std::exception&) {
        return -1;
      }
    }
  }
  return -1;
}

double percentile(std::vector<double>& values, double pct) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(pct / 100.0 * static_cast<double>(values.size()));
  const std::size_t index =
      static_cast<std::size_t>(std::clamp(rank, 1.0, static_cast<double>(values.size()))) - 1;
  return values[index];
}

}  // namespace curvebus::hostile
