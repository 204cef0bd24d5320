// Core: the broker — its parts, its sockets and its event loop.
//
// The parts, each with its own contract:
//   NameTable     per-name rates, budgets, session counts, storage (names.hpp)
//   Admission     allow-list and revocations (admission.hpp)
//   SessionTable  sessions, their Outboxes, tombstones, liveness (session_table.hpp)
//   TopicTable    topics, history, retained values, tree, directory, and the
//                 one publish() (topic_table.hpp)
//   Protocol      every op of every peer, one handler per verb (protocol.hpp)
//   PeerWriter    where output goes: the ROUTERs (RouterWriter) or, in
//                 process, the harness's recorder (peer_writer.hpp)
//   RetainedLog   retained values on disk, written by its own thread
//   AuditLog      the audit trail
//
// The sockets (core.cpp, zap.cpp, monitor.cpp): one ROUTER per libzmq I/O
// thread and endpoint (the kernel spreads connections over them), the ZAP
// handler that admits keys, and each ROUTER's monitor for the handshake
// audit.  The loop: poll; ZAP; monitors; begin_turn() (deferred input);
// the ROUTERs' messages, each through input(); end_turn() (what is due,
// then every session's output).  Nothing in the loop waits for a disk.
//
// In process (the seam of testing/harness.hpp): open() instead of start(),
// no socket; the caller drives begin_turn() / input() / end_turn() with its
// own Clock and PeerWriter (Environment).
//
// Ownership: the Core owns its parts; a Core is not copyable.  stop() may be
// called from any thread or a signal handler; everything else from the one
// thread that runs the loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "admission.hpp"
#include "audit.hpp"
#include "clock.hpp"
#include "counters.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/rate_limiter.hpp"
#include "log_limiter.hpp"
#include "names.hpp"
#include "peer_writer.hpp"
#include "protocol.hpp"
#include "retained_log.hpp"
#include "session_table.hpp"
#include "topic_table.hpp"

namespace curvebus::broker {

class Federation;  // federation.hpp: other brokers over NATS, when configured

// What a core gets from outside besides its Config.  The broker executable
// passes nothing (the system clock, the ROUTER sockets); the in-process
// harness passes its own (testing/harness.hpp).
struct Environment {
  Clock* clock = nullptr;        // null: system_clock()
  PeerWriter* writer = nullptr;  // null: the listeners' ROUTER sockets (RouterWriter)
  // RetainedLog::Options::sync: null is fdatasync/fsync.
  std::function<int(int fd)> retained_sync;
};

// The metadata of a ROUTER message (ZAP User-Id, chosen routing id, address).
PeerMeta meta_of(const zmq::message_t& body);

// Writes `bytes` to `path` through a temporary file, fsync and rename, so a
// reader (or a restart after a crash) sees the old file or the new one, never
// half of one (retained_store.cpp).
bool write_file_atomically(const std::string& path, std::string_view bytes, int mode);

class Core {
 public:
  explicit Core(Config config, Environment env = {});
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // The broker: keys, open(), then the sockets.
  Status start();
  // Serves until stop(); the exit code.
  int run();
  void stop();
  std::string endpoint() const;

  // ---- in process (see above)
  // Reads the allow-list, revocations, audit trail and retained values; no
  // socket.  start() calls it.
  Status open();
  void begin_turn();
  // One incoming message from `peer` (listener tag + routing id) with what
  // its handshake proved.
  void input(const std::string& peer, const void* data, std::size_t size, const PeerMeta& meta);
  void end_turn();
  // When the next end_turn() has something to do (steady ms).
  std::int64_t next_wakeup_ms() const { return protocol_.next_wakeup_ms(); }
  bool has_deferred_input() const { return protocol_.has_deferred_input(); }
  // A session holds `peer`'s routing id.
  bool has_session(const std::string& peer) const { return sessions_.contains(peer); }
  // ADMIN STATUS's view.
  void fill_status(v1::BrokerStatus& st) const { protocol_.fill_status(st); }

  // ---- federation in process (federation_port.hpp): start() wires the
  // port to Federation (NATS) when [federation] is configured; tests give
  // their own port and drive the import side by hand.
  void set_federation_port(FederationPort* port) { protocol_.set_federation(port, nullptr); }
  std::uint32_t import_publication(const ImportedPublication& m) {
    return protocol_.import_publication(m);
  }
  void federation_stored(std::uint64_t token, bool stored, const std::string& why) {
    protocol_.federation_stored(token, stored, why);
  }

  // The session-table key of a peer: one tag byte for the listener, then the
  // ROUTER's routing id.  Two listeners may hand out equal routing ids.
  static std::string peer_id(std::size_t listener, const void* rid, std::size_t size);

 private:
  void refresh_clock();
  long poll_timeout_ms() const;
  void drain_listener(std::size_t index);
  void handle_zap();                          // zap.cpp
  void handle_monitor(std::size_t listener);  // monitor.cpp
  void load_retained();                       // retained_store.cpp

  Config config_;
  Environment env_;
  Clock* clock_;
  Counters counters_;

  zmq::context_t context_;  // outlives every socket below
  std::vector<Listener> listeners_;
  RouterWriter router_writer_{listeners_};
  PeerWriter* writer_;
  zmq::socket_t zap_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  bool started_ = false;

  BrokerFacts facts_;
  NameTable names_;
  Admission admission_;
  AuditLog audit_;
  SessionTable sessions_;
  TopicTable topics_;
  Protocol protocol_;
  std::unique_ptr<RetainedLog> retained_log_;
  std::unique_ptr<Federation> federation_;  // null without [federation]

  // ZAP: new connections per second per key.
  std::unordered_map<std::string, TokenBucket> handshake_limit_;
  // Monitor: connections seen ((listener, fd) -> "address:port"; each
  // listener's events come in order, but two listeners' monitors are read
  // apart, and a descriptor one closed may already be another's), and
  // handshake failures waiting for the DISCONNECTED that names their fd
  // (listener, detail).
  std::unordered_map<std::uint64_t, std::string> connections_by_fd_;
  std::deque<std::pair<std::size_t, std::string>> pending_handshake_failures_;
  std::uint32_t connections_ = 0;

  LogLimiter log_auth_{5, 1000};
  LogLimiter log_handshake_{5, 1000};
};

}  // namespace curvebus::broker
