// A NATS cluster for federation tests: N real `nats-server` processes on
// 127.0.0.1 only, fully meshed by routes, each with JetStream storing in its
// own directory under a private TempDir.  Every node gets three ports that no
// other NatsCluster of this process was handed (client, route, monitoring).
//
// Contract:
//  * start(n) returns only when every node accepts clients and JetStream can
//    place a stream with n replicas from every node (a throwaway stream is
//    created and deleted through each node), or false after about 30 s
//    (last_error() says why, with the tail of the failing node's log).  When a
//    node could not bind a port (taken meanwhile by another process), the
//    cluster starts again on new ports, up to three times.
//  * kill(i) signals node i by its PID (SIGKILL by default) and reaps it;
//    restart(i) starts it again with the same ports, name and store
//    directory and waits until its /healthz answers 200 (JetStream caught
//    up) and it serves JetStream API requests.
//  * Only processes started here are ever signalled.  The destructor stops
//    every node (SIGTERM, then SIGKILL) and removes the directory.
//  * Not thread-safe: one test thread drives a NatsCluster.
//
// Also here: small owning handles for libnats objects and a connect helper,
// so that tests release what they take even when an assertion fails.
#pragma once

#include <nats/nats.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "process.hpp"

namespace curvebus::test {

namespace nats {

struct ConnectionCloser {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct JsCloser {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};
struct SubscriptionCloser {
  void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};
struct MsgCloser {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
struct PubAckCloser {
  void operator()(jsPubAck* a) const { jsPubAck_Destroy(a); }
};
struct StreamInfoCloser {
  void operator()(jsStreamInfo* i) const { jsStreamInfo_Destroy(i); }
};
using Connection = std::unique_ptr<natsConnection, ConnectionCloser>;
using Js = std::unique_ptr<jsCtx, JsCloser>;
using Subscription = std::unique_ptr<natsSubscription, SubscriptionCloser>;
using Msg = std::unique_ptr<natsMsg, MsgCloser>;
using PubAck = std::unique_ptr<jsPubAck, PubAckCloser>;
using StreamInfo = std::unique_ptr<jsStreamInfo, StreamInfoCloser>;

// Connects to `urls` (one URL or a comma-separated list, tried in the given
// order), with a 2 s connect timeout and endless reconnects every 250 ms.
// Returns null and fills `error` (when given) on failure.
Connection connect(const std::string& urls, std::string* error = nullptr);
// A JetStream context on `nc` whose API requests wait up to `wait`.
Js jetstream(natsConnection* nc, std::chrono::milliseconds wait = std::chrono::milliseconds(5000));
// "<status text>" plus the library's last error, for failure messages.
std::string describe(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0));

}  // namespace nats

class NatsCluster {
 public:
  // `server_bin`: the nats-server executable (looked up on PATH when bare).
  explicit NatsCluster(std::string server_bin = "nats-server");
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  // Starts `n` nodes (n >= 1; a cluster only when n >= 2) and waits until
  // they are ready (see above).  Call once.
  bool start(int n);
  int size() const { return static_cast<int>(nodes_.size()); }

  // "nats://127.0.0.1:<client port>" of node i; urls(): all nodes, comma-separated.
  std::string url(int i) const;
  std::string urls() const;
  // The urls of every node except `except`, comma-separated.
  std::string urls_except(int except) const;
  // server_name of node i ("n0", "n1", ...), as JetStream reports leaders and
  // peers; index_of() maps such a name back (-1 if unknown).
  std::string server_name(int i) const;
  int index_of(const std::string& server_name) const;
  int client_port(int i) const;
  int monitor_port(int i) const;
  bool running(int i);

  // Signals node i's process and waits (up to 10 s) until it is gone.
  void kill(int i, int sig = SIGKILL);
  // Starts node i again (same config and store) and waits until it is ready.
  bool restart(int i);
  // Starts several nodes again at once (two of three down: one alone could
  // not form a quorum), then waits until each accepts clients and answers
  // JetStream API requests.  Not for /healthz: after a lost quorum it answers
  // 503 for tens of seconds while replicated consumers catch up.
  bool restart(const std::vector<int>& nodes);
  // Stops every node (SIGTERM to all, then SIGKILL to the late ones).
  void stop();

  // Why the last start()/restart() failed, with the node's log tail.
  const std::string& last_error() const { return error_; }
  // Captured stderr (nats-server logs there) of node i.
  std::string log(int i) const;
  const std::string& dir() const { return dir_.path(); }

 private:
  struct Node {
    std::string name;
    int client_port = 0;
    int cluster_port = 0;
    int monitor_port = 0;
    std::string config;
    std::string store;
    int runs = 0;
    std::unique_ptr<Process> process;
  };
  bool start_once(int n);
  bool restart_nodes(const std::vector<int>& nodes, bool healthy);
  void write_config(int i);
  void spawn(int i);
  bool wait_accepting(int i, std::chrono::steady_clock::time_point deadline);
  bool wait_healthy(int i, std::chrono::steady_clock::time_point deadline);
  bool wait_jetstream_placement(int i, std::chrono::steady_clock::time_point deadline);
  bool fail(int i, const std::string& why);

  std::string server_bin_;
  TempDir dir_;
  std::vector<Node> nodes_;
  std::string error_;
};

// A TCP port on 127.0.0.1 that was free a moment ago and that this process
// never handed out before (0 when none was found).
int unused_local_port();

// Status code of `GET <path>` on 127.0.0.1:port over HTTP/1.0, or -1.
int http_status(int port, const std::string& path, std::chrono::milliseconds timeout);

}  // namespace curvebus::test
