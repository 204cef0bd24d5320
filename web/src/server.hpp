// curvebus-web's server: the listening socket, admission of each connection
// against the caps, the TLS context, the counters, and the list of open
// connections to close on shutdown.
//
// Threading: everything runs on ONE thread, the one that runs the
// io_context given to the constructor.  A relay only moves bytes between two
// sockets (it never decrypts, parses ZMTP or copies more than one buffer per
// direction), so it is bound by I/O, not CPU; one thread keeps every counter
// and session free of locks.
//
// Admission: a connection over --max-connections or --max-per-address is not
// dropped silently.  It is read (one request head, within the handshake
// timeout) and answered: HTTP 503 or 429 with Retry-After, or, for a
// WebSocket upgrade, an accepted WebSocket closed at once with 1008 and a
// reason a page can show.  At most kMaxRefusing such answers are in flight;
// past that a connection is closed without a word (counted as "overflow").
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "curvebus/status.hpp"
#include "options.hpp"
#include "origin.hpp"
#include "stats.hpp"

namespace curvebus::web {

namespace net = boost::asio;
using tcp = net::ip::tcp;

class Server;

// A connection the server can ask to close: politely (a WebSocket gets 1001
// "relay shutting down") or, when that took too long, at once (`hard`).
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void shutdown(bool hard) = 0;
};

// One admitted connection's place in the counts; released when destroyed.
// Moves with the connection from its HTTP session to its relay.
class ConnectionSlot {
 public:
  ConnectionSlot(Server& server, std::string address, bool refusing);
  ~ConnectionSlot();
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

 private:
  Server& server_;
  std::string address_;
  bool refusing_;
};

// Who is on the other end, for logs and counts.
struct Peer {
  std::uint64_t id = 0;            // connection number, "#id" in logs
  std::string endpoint;            // "1.2.3.4:5678" / "[::1]:5678"
  std::string address;             // the per-address cap's key (IPv4, or IPv6 /64)
  std::optional<Refusal> refusal;  // set when admitted only to be refused
  std::unique_ptr<ConnectionSlot> slot;
};

class Server {
 public:
  static constexpr std::size_t kMaxRefusing = 64;

  Server(net::io_context& ioc, Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Resolves the broker, loads the TLS files, binds and starts accepting.
  Status start();
  // Stops accepting and asks every connection to close; those still open
  // after the handshake timeout (at most 5 s) are cut.  The io_context's
  // run() returns once the last one is gone.
  void stop();

  std::uint16_t port() const { return port_; }
  std::string url() const;  // http(s)://host:port/

  // For the sessions (same thread).
  const Options& options() const { return options_; }
  Stats& stats() { return stats_; }
  const OriginPolicy& origins() const { return origins_; }
  const tcp::resolver::results_type& broker_endpoints() const { return broker_endpoints_; }
  net::ssl::context* tls() { return tls_ ? tls_.get() : nullptr; }
  std::string broker_fingerprint() const { return broker_fingerprint_; }
  void track(Connection* c) { connections_.insert(c); }
  void untrack(Connection* c);
  bool stopping() const { return stopping_; }
  // Logs a missing /vendor file once per name (a warning), then stays quiet.
  void warn_missing_vendor(const std::string& name, const std::string& hint);
  // Counts a refusal and logs it, at most 20 lines a second (then a summary).
  void refuse(Refusal cause, const Peer& peer, const std::string& detail);

 private:
  friend class ConnectionSlot;
  void accept();
  void on_accept(const boost::system::error_code& ec, tcp::socket socket);
  void release(const std::string& address, bool refusing);

  net::io_context& ioc_;
  Options options_;
  Stats stats_;
  OriginPolicy origins_;
  tcp::acceptor acceptor_;
  net::steady_timer stop_timer_;
  tcp::resolver::results_type broker_endpoints_;
  std::unique_ptr<net::ssl::context> tls_;
  std::string broker_fingerprint_;
  std::uint16_t port_ = 0;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::string, std::size_t> per_address_;
  std::size_t refusing_ = 0;
  std::unordered_set<Connection*> connections_;
  std::set<std::string> vendor_warned_;
  bool stopping_ = false;
  // Refusal log limiter: lines logged in the current second, and those skipped.
  std::int64_t log_second_ = 0;
  int log_lines_ = 0;
  std::uint64_t log_skipped_ = 0;
};

}  // namespace curvebus::web
