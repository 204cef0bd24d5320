// Attack clients for the hostile-peer suite (tests/hostile) and the attack
// benchmark (bench/attacks.cpp): raw ZeroMQ and CURVE sockets that do what
// the curvebus client library never does — choose their own routing id, claim
// the ids libzmq is about to generate, send hand-made frames (thousands of ops
// in one), speak plaintext ZeroMQ or raw TCP garbage to a CURVE listener from
// a local port they know — plus a latency probe that measures what a
// legitimate client experiences meanwhile.
//
// Nothing here uses curvebus's client library: the point is to behave like a
// stranger's program holding one legitimate key.  Only 127.0.0.1 endpoints
// are used (every constructor refuses anything else).
//
// Threads: a RawPeer, a GarbageConnection and the socket list of
// claim_routing_ids() belong to the thread that uses them (ZeroMQ sockets are
// not thread-safe); LatencyProbe runs its own thread and may be started and
// stopped from any one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::hostile {

using namespace std::chrono_literals;

// Where the broker listens: "tcp://127.0.0.1:PORT" and its public key (Z85).
struct BrokerAddress {
  std::string endpoint;
  std::string server_key;
  // The TCP port of `endpoint` (0 when it has none).
  int port() const;
};

// ---------------------------------------------------------------- routing ids

// The routing id libzmq's ROUTER generates for its `counter`-th peer:
// a zero byte followed by the 32-bit counter, big-endian (5 bytes).
std::string generated_routing_id(std::uint32_t counter);
// The counter of a generated id, or nullopt when `id` does not have that form.
std::optional<std::uint32_t> routing_id_counter(std::string_view id);
// Lower-case hex of bytes, and back (nullopt on odd length or a non-hex digit).
std::string to_hex(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);

// ---------------------------------------------------------------- raw peer

// A DEALER to the broker with whatever options an attacker likes.  Incoming
// messages are decoded as curvebus frames and queued op by op; PING is
// answered with PONG unless auto_pong is false.  Messages that are not frames
// are counted in undecodable().
class RawPeer {
 public:
  struct Options {
    // Non-empty: ZMQ_ROUTING_ID, the id the peer asks the ROUTER to use.
    std::string routing_id;
    // CURVE with `keys` (default) or plaintext (the NULL mechanism).
    bool curve = true;
    // Non-empty: this server key instead of the broker's (a wrong-key peer).
    std::string server_key;
    // Non-zero: connect from 127.0.0.1:source_port (so the attacker knows the
    // address the broker sees).
    int source_port = 0;
    // Watch the connection's handshake (wait_handshake()).
    bool monitor = false;
    int sndhwm = 0;  // 0 = libzmq's default
    int rcvhwm = 0;
  };

  RawPeer(zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys);
  RawPeer(zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys, Options options);
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  // Sends one ZeroMQ message holding exactly `bytes` (never blocks; false
  // when libzmq would have blocked).
  bool send_frame(std::string_view bytes);
  bool send_op(const v1::Op& op);
  bool send_ops(const std::vector<v1::Op>& ops);  // one frame, several ops

  // Reads whatever has arrived without waiting; true if any op was queued.
  bool read_available();
  // The oldest queued op satisfying `pred`, waiting up to `timeout`; ops that
  // do not match stay queued, in order.
  std::optional<v1::Op> wait_for(const std::function<bool(const v1::Op&)>& pred,
                                 std::chrono::milliseconds timeout = 3000ms);
  std::optional<v1::Op> wait_for(v1::Op::BodyCase body, std::chrono::milliseconds timeout = 3000ms);
  // The answer to request `request_id`: the op of kind `body` carrying it, or
  // an ERROR carrying it.
  std::optional<v1::Op> wait_answer(std::uint64_t request_id, v1::Op::BodyCase body,
                                    std::chrono::milliseconds timeout = 3000ms);
  // Everything that arrives within `window` (and what was queued before).
  std::vector<v1::Op> collect(std::chrono::milliseconds window);
  // Ops queued now (not waiting).
  const std::deque<v1::Op>& queued() const { return queued_; }
  void clear_queue() { queued_.clear(); }

  // Requests, each with a fresh request id; the *_wait forms wait for the
  // answer (or an ERROR) and return it, nullopt on timeout.
  std::uint64_t send_register(v1::Role role = v1::ROLE_CLIENT, std::uint32_t heartbeat_ms = 10000,
                              const std::vector<std::string>& provides = {},
                              const std::string& client_name = "hostile-peer",
                              const std::string& client_version = "hostile");
  std::optional<v1::Op> register_wait(v1::Role role = v1::ROLE_CLIENT,
                                      std::uint32_t heartbeat_ms = 10000,
                                      const std::vector<std::string>& provides = {},
                                      std::chrono::milliseconds timeout = 5000ms);
  std::optional<v1::Op> subscribe_wait(const std::vector<std::string>& patterns,
                                       std::chrono::milliseconds timeout = 3000ms);
  std::uint64_t send_publish(const std::string& topic, std::string_view payload, bool ack,
                             bool retain = false);
  std::optional<v1::Op> publish_wait(const std::string& topic, std::string_view payload,
                                     bool retain = false,
                                     std::chrono::milliseconds timeout = 3000ms);
  std::optional<v1::Op> pull_wait(const std::string& topic,
                                  std::chrono::milliseconds timeout = 3000ms);
  std::uint64_t send_admin(v1::AdminCommand command, const std::string& argument = "",
                           const std::string& reason = "");
  std::optional<v1::Op> admin_wait(v1::AdminCommand command, const std::string& argument = "",
                                   const std::string& reason = "",
                                   std::chrono::milliseconds timeout = 5000ms);
  std::optional<v1::Op> topics_wait(const std::string& pattern, const std::string& after = "",
                                    std::chrono::milliseconds timeout = 5000ms);
  void send_heartbeat();
  void send_bye(const std::string& reason);

  // With Options::monitor: waits until the handshake succeeded (true) or
  // failed / timed out (false).
  bool wait_handshake(std::chrono::milliseconds timeout = 5000ms);

  // Closes the socket at once (linger 0): the connection drops.
  void close();

  std::uint64_t next_request_id() { return ++request_id_; }
  std::uint64_t undecodable() const { return undecodable_; }
  zmq::socket_t& socket() { return socket_; }
  bool auto_pong = true;

 private:
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  std::deque<v1::Op> queued_;
  std::uint64_t request_id_ = 0;
  std::uint64_t undecodable_ = 0;
  int handshake_state_ = 0;  // 0 pending, 1 succeeded, -1 failed
};

// ---------------------------------------------------------------- frames

// One frame of `count` empty TOPICS ops (an empty pattern lists everything):
// 4 bytes per op, so 12,000 ops fit in 48 KB.
std::string topics_flood_frame(std::size_t count);
// One frame of fire-and-forget PUBLISH ops on `topic_of(i)` for i in [first, first + count).
std::string publish_batch_frame(const std::function<std::string(std::size_t)>& topic_of,
                                std::size_t first, std::size_t count, std::string_view payload,
                                bool retain = false);

// ---------------------------------------------------------------- claims

// Connects `count` CURVE DEALERs with `keys`, each choosing the routing id
// generated_routing_id(first + i), and waits until every handshake succeeded
// (the ROUTER has then recorded the id as taken).  They do not register.
// Returns the sockets (keep them alive as long as the claim should last);
// fewer than `count` handshakes within `timeout` leave `*succeeded` short.
std::vector<std::unique_ptr<RawPeer>> claim_routing_ids(
    zmq::context_t& ctx, const BrokerAddress& broker, const KeyPair& keys, std::uint32_t first,
    std::uint32_t count, std::chrono::milliseconds timeout, std::uint32_t* succeeded);

// ---------------------------------------------------------------- raw TCP

// A local TCP port that was free a moment ago (bound to 127.0.0.1:0 and
// released), for Options::source_port.
int free_local_port();

// A plain TCP connection to 127.0.0.1:port that sends `bytes` and stays open
// until close() or destruction, so the broker sees the peer it will audit.
class GarbageConnection {
 public:
  GarbageConnection(int port, std::string_view bytes);
  ~GarbageConnection();
  GarbageConnection(const GarbageConnection&) = delete;
  GarbageConnection& operator=(const GarbageConnection&) = delete;
  bool connected() const { return fd_ >= 0; }
  int local_port() const { return local_port_; }
  // True when the peer closed the connection within `timeout`.
  bool wait_closed_by_peer(std::chrono::milliseconds timeout);
  void close();

 private:
  int fd_ = -1;
  int local_port_ = 0;
};

// ---------------------------------------------------------------- probe

// What a legitimate client saw: one publication every period from one
// session, received by another session of the same name; round trip =
// receive time - send time on the steady clock.
struct ProbeReport {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t lost = 0;    // sent but not received by the end of stop()'s grace
  std::uint64_t errors = 0;  // ERROR ops either session got
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  bool started = false;  // both sessions registered and subscribed
  std::string problem;   // why it did not start, if it did not
};

class LatencyProbe {
 public:
  // `keys` belong to a name that may publish and subscribe `topic`.
  LatencyProbe(BrokerAddress broker, KeyPair keys, std::string topic,
               std::chrono::milliseconds period = 10ms);
  ~LatencyProbe();
  LatencyProbe(const LatencyProbe&) = delete;
  LatencyProbe& operator=(const LatencyProbe&) = delete;

  // Connects, registers both sessions and subscribes; then publishes every
  // period until stop().  False (report().problem says why) when it could
  // not get ready within `timeout`.
  bool start(std::chrono::milliseconds timeout = 10000ms);
  // Stops publishing, waits up to `grace` for the last deliveries, and
  // returns the report.  Idempotent.
  ProbeReport stop(std::chrono::milliseconds grace = 2000ms);
  // Samples so far (thread-safe).
  std::uint64_t received_so_far() const { return received_.load(); }

 private:
  void run(std::chrono::milliseconds timeout);

  BrokerAddress broker_;
  KeyPair keys_;
  std::string topic_;
  std::chrono::milliseconds period_;
  std::thread thread_;
  std::atomic<int> state_{0};  // 0 starting, 1 running, -1 failed
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> grace_ms_{2000};
  std::atomic<std::uint64_t> received_{0};
  ProbeReport report_;
  bool stopped_ = false;
};

// ---------------------------------------------------------------- /proc

// A "Vm...:" value of /proc/PID/status in kB (e.g. "VmRSS", "VmHWM"); -1 if unreadable.
long proc_status_kb(int pid, const std::string& field);

// Percentile (0..100) of `values` (sorted in place), nearest rank; 0 when empty.
double percentile(std::vector<double>& values, double pct);

}  // namespace curvebus::hostile
