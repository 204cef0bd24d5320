// The curvebus C++ client: one CURVE-encrypted connection to a broker.
//
//   auto opts = curvebus::resolve_client_options({});   // flags > env > ./.curvebus
//   curvebus::Client c(opts.value());
//   c.connect(std::chrono::seconds(5));
//   c.subscribe({"robot/+/telemetry"}, [](const curvebus::Message& m) { ... });
//   c.publish("robot/alex/cmd", bytes, {.wait_ack = true});
//
// One background I/O thread owns the socket.  Handlers run on that thread, one
// message at a time; they may call publish() without waiting for an ack (a
// handler that waits for an ack would wait for itself and times out).  The
// Message a handler gets is valid for the duration of the call: copy what
// you keep.
//
// Throughput.  publish() without ack encodes the PUBLISH straight into its
// wire bytes and appends them to the connection's outbox (one mutex, no
// system call while the I/O thread is already due to flush); the I/O thread
// sends everything queued each turn, many publications per ZeroMQ message
// (one CURVE box, up to 64 KiB).  Deliveries are read without protobuf when
// a frame holds only DELIVERs, and the handlers matching a topic are looked up
// once per topic, not per message.
//
// Back-pressure.  At most `max_queued` publications wait in the outbox
// (plus up to 1,000 batches in ZeroMQ's socket pipe).  When it is full,
// publish() without ack waits for room (up to ack_timeout) while connected,
// and fails at once with "QUEUE_FULL" while disconnected or when called from
// a handler.
//
// Liveness (DESIGN.md "Alive signal"): the client sends HEARTBEAT after one
// agreed interval of its own silence, answers PING, and declares the broker
// lost after three intervals without a word from it.  It then reconnects
// with exponential backoff on a fresh socket, registers again and
// re-subscribes every pattern by itself.  Requests already sent when the
// link is lost fail with code "NO_BROKER"; publications and requests not yet
// sent stay queued (bounded), in order, and go out after the reconnect — but
// a request whose caller stopped waiting before it was sent never goes out.
// A connection older than
// `rekey_after` is replaced the same way (new CURVE session keys), the new
// session registered before the old one says BYE.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "curvebus.pb.h"
#include "curvebus/status.hpp"

namespace curvebus {

enum class ConnectionState { Idle, Connecting, Connected, Reconnecting, Closed };
const char* connection_state_name(ConnectionState s);

struct Message {
  std::string topic;
  std::string payload;
  std::string publisher;          // the name the broker bound to the publisher's key
  std::uint64_t seq = 0;          // per topic, from 1
  bool retained = false;          // a retained value sent on subscribe, not a live publication
  std::int64_t published_us = 0;  // broker receive time, µs since the Unix epoch
  std::string content_type;
};
using MessageHandler = std::function<void(const Message&)>;

struct PublishOptions {
  bool retain = false;
  bool wait_ack = false;  // wait for the broker's PUBACK (or its ERROR)
  std::chrono::milliseconds ack_timeout{5000};
  std::string content_type;
};

struct ClientOptions {
  std::string endpoint = "tcp://127.0.0.1:7690";
  std::string server_public_key;       // Z85
  std::string public_key, secret_key;  // Z85, this client's pair
  v1::Role role = v1::ROLE_CLIENT;
  std::vector<std::string> provides;
  std::string client_name = "curvebus-client";
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds reconnect_min{100}, reconnect_max{5000};
  std::chrono::seconds rekey_after{3600};
  std::size_t max_queued = 10000;  // publications held while disconnected
};

// Where the endpoint and keys come from: explicit values (flags) first, then
// CURVEBUS_ENDPOINT / CURVEBUS_SERVER_KEY / CURVEBUS_KEY / CURVEBUS_HOME, then
// the home folder (./.curvebus): HOME/endpoint, HOME/keys/broker,
// HOME/keys/<default_key_name>_secret.
struct ClientSettings {
  std::string endpoint, server_key, key, home;
  std::string default_key_name = "dev";
};
Result<ClientOptions> resolve_client_options(const ClientSettings& settings);

struct ClientCounters {
  std::uint64_t published = 0;
  std::uint64_t delivered = 0;
  std::uint64_t errors = 0;  // ERROR ops received
  std::uint64_t reconnects = 0;
  std::uint64_t sequence_gaps = 0;    // deliveries whose seq skipped ahead
  std::uint64_t queue_full = 0;       // publications refused while disconnected
  std::uint64_t frames_sent = 0;      // ZeroMQ messages of queued publications and requests
  std::uint64_t frames_received = 0;  // ZeroMQ messages from the broker
};

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();  // close()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and registers.  Errors: "NO_BROKER" (no answer in time),
  // "REFUSED" (the broker rejected this key in the handshake).
  Status connect(std::chrono::milliseconds timeout);

  // Subscribes and waits for the broker's answer.  A pattern the ACL denies
  // gives "DENIED" naming it (the granted ones of the call are undone).
  // `want_retained`: matching retained values are delivered at once.
  // `handler` runs on the client's I/O thread, and may run until close()
  // (or the destructor) returns: whatever it uses must outlive the Client,
  // or be owned by the handler itself (declare it before the Client).
  Status subscribe(const std::vector<std::string>& patterns, MessageHandler handler,
                   bool want_retained = false,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  Status unsubscribe(const std::vector<std::string>& patterns,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

  // Without wait_ack: queued for sending, returns at once (refusals arrive
  // later and are counted in errors).  With wait_ack: the broker's verdict,
  // error codes as error_code_name(): "DENIED", "TOO_LARGE", "INVALID_TOPIC",
  // "RATE_LIMITED", ...; "TIMEOUT", "NO_BROKER".
  Status publish(const std::string& topic, const std::string& payload,
                 const PublishOptions& options = {});

  // Latest value (since_seq 0) or kept history after since_seq.  "NOT_FOUND"
  // when the topic has no publication.
  Result<std::vector<Message>> pull(
      const std::string& topic, std::uint64_t since_seq = 0, std::uint32_t max_count = 0,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  Result<v1::TopicsReply> topics(
      const std::string& pattern = "#",
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // `reason` is kept with a revocation and in the broker's audit trail.
  Result<v1::AdminReply> admin(v1::AdminCommand command, const std::string& argument = "",
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
                               const std::string& reason = "");

  ConnectionState state() const;
  // steady_ms() of the last message heard from the broker.
  std::int64_t last_heard_ms() const;
  // The broker's REGISTERED answer of the current session (name, limits...).
  v1::Registered registration() const;
  ClientCounters counters() const;
  // Sends BYE and stops the I/O thread.  Idempotent.
  void close();

  struct Impl;  // clients/src: the façade's state; the connection is a Link

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace curvebus
