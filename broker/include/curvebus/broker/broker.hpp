// curvebus-broker's core: a single-threaded ZeroMQ event loop serving the
// protocol of proto/curvebus.proto on one ROUTER socket with CURVE, a ZAP
// handler bound to the allow-list, and a socket monitor.
//
// Usage: Broker b(config); if (Status s = b.start(); !s) ...; b.run();
// start() loads keys and the allow-list and binds; run() serves until stop().
// stop() is thread-safe and async-signal-safe (it writes to a pipe), so a
// signal handler or another thread may call it.  Not copyable.
#pragma once

#include <memory>
#include <string>

#include "curvebus/broker/config.hpp"
#include "curvebus/status.hpp"

namespace curvebus::broker {

class Core;

class Broker {
 public:
  explicit Broker(Config config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Reads keys and the allow-list, binds, writes the endpoint file.
  Status start();
  // Serves until stop(); returns the process exit code (0).
  int run();
  void stop();
  // The bound endpoint (after start()).
  std::string endpoint() const;

 private:
  std::unique_ptr<Core> core_;
};

// Version string sent in REGISTERED and status replies.
const char* broker_version();

}  // namespace curvebus::broker
