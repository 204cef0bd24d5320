// Test kit for curvebus-web: the relay as a child process, HTTP and
// WebSocket clients of our own (Boost.Beast, every wait bounded), TCP servers
// standing in for the broker (echo, flood, never-reading sink), and a bridge
// that lets a libzmq socket talk to the relay's /bus through a WebSocket while
// it records every relayed byte.
//
// Everything listens and connects on 127.0.0.x.  The Beast code lives in
// relay_env.cpp so the test files stay light to compile.  Not thread-safe
// unless stated: each object belongs to the test thread that made it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "process.hpp"

namespace curvebus::web::test {

using namespace std::chrono_literals;
using curvebus::test::Process;
using curvebus::test::TempDir;

// ------------------------------------------------------------------ relay process

// curvebus-web started with `args` (plus --listen 127.0.0.1:0 and
// --log-level debug unless given); waits for its "listening on" line.
// Stopped (SIGTERM, then SIGKILL) when the object goes away.
class RelayProcess {
 public:
  RelayProcess(const std::string& dir, std::vector<std::string> args,
               const std::map<std::string, std::string>& env = {});
  bool started() const { return port_ != 0; }
  std::uint16_t port() const { return port_; }
  Process& process() { return process_; }
  std::string log() const { return process_.err() + process_.out(); }
  bool tls() const { return tls_; }
  // /healthz flattened: "refusals.origin" -> 3, "bytes.toBroker" -> 1234, ...
  std::map<std::string, std::uint64_t> healthz(const std::string& source_address = "");
  std::uint64_t health(const std::string& key, const std::string& source_address = "") {
    return healthz(source_address)[key];
  }

 private:
  Process process_;
  std::uint16_t port_ = 0;
  bool tls_ = false;
};

// ------------------------------------------------------------------ HTTP

struct HttpResponse {
  int status = 0;                              // 0: no answer
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string error;  // why there was no answer
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  std::map<std::string, std::string> headers;
  std::string source_address;  // bind the client socket to this 127.0.0.x
  bool tls = false;            // https (certificate not verified: a test's own)
};
HttpResponse fetch(std::uint16_t port, const HttpRequest& request);
inline HttpResponse http_get(std::uint16_t port, const std::string& target) {
  HttpRequest r;
  r.target = target;
  return fetch(port, r);
}

// Sends `bytes` on a plain TCP connection and returns what comes back until
// the relay closes the connection or `timeout` passes.
struct RawResult {
  std::string received;
  bool closed_by_peer = false;
  std::chrono::milliseconds elapsed{0};
};
RawResult raw_exchange(std::uint16_t port, const std::string& bytes,
                       std::chrono::milliseconds timeout);

// ------------------------------------------------------------------ WebSocket

class WsClient {
 public:
  struct Options {
    std::string target = "/bus";
    std::string origin;  // sent when not empty
    std::string source_address;
    bool tls = false;
    bool read = true;  // keep a read pending from the start (false: never read)
  };
  WsClient(std::uint16_t port, Options options);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool open() const;             // the handshake succeeded
  int handshake_status() const;  // HTTP status of the handshake answer (101 when open)
  const std::string& error() const;

  // Sends one binary message; false if it did not complete within `timeout`
  // (the stream is unusable afterwards).
  bool send(const std::string& bytes, std::chrono::milliseconds timeout = 5000ms);
  // Starts reading (for a client made with read = false).
  void start_reading();
  // Waits until at least `n` bytes have arrived in all (or `timeout`); returns them all.
  std::string read_bytes(std::size_t n, std::chrono::milliseconds timeout);
  // Waits for the end of the connection: the close code and reason the relay
  // sent (code 0 when it ended without a close frame, the reason then being
  // the error), or -1 on timeout.
  std::pair<int, std::string> wait_close(std::chrono::milliseconds timeout);
  // Sends a close frame (code 1000) and waits for the answer.
  void close();
  // Lets queued completions run for `d` (keeps a never-reading client idle).
  void idle(std::chrono::milliseconds d);
  // Reads for `d`, keeping nothing; returns the bytes read (measurements).
  std::uint64_t drain(std::chrono::milliseconds d);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------------ broker stand-ins

// A TCP server on 127.0.0.1 run by its own threads, one per connection.
class TcpServer {
 public:
  enum class Mode {
    kEcho,     // writes back what it reads
    kFlood,    // writes 64 KiB chunks as fast as the peer takes them, never reads
    kSink,     // accepts and holds the connection, never reads or writes
    kDiscard,  // reads and drops everything (measurements)
  };
  explicit TcpServer(Mode mode);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }
  std::uint64_t bytes_written() const { return written_.load(); }  // all connections
  std::uint64_t bytes_read() const { return read_.load(); }

 private:
  void accept_loop();
  void serve(int fd);

  Mode mode_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<std::uint64_t> written_{0}, read_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A free TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
std::uint16_t closed_port();

// ------------------------------------------------------------------ bridge

// Listens on 127.0.0.1 for TCP (connect a ZeroMQ socket to endpoint()); each
// connection is joined to a new WebSocket to the relay's /bus, and every byte
// carried either way is recorded.  Runs on its own thread.
class WsBridge {
 public:
  explicit WsBridge(std::uint16_t relay_port);
  ~WsBridge();
  WsBridge(const WsBridge&) = delete;
  WsBridge& operator=(const WsBridge&) = delete;

  std::string endpoint() const;
  int connections() const;
  std::string to_broker() const;  // all bytes the bridge sent into the relay
  std::string to_client() const;  // all bytes the relay sent back

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A self-signed certificate and key for 127.0.0.1 made with the openssl tool.
bool make_test_certificate(const std::string& cert, const std::string& key);

}  // namespace curvebus::web::test
