// The relay's counters, served as JSON on /healthz.
//
// Every refusal the relay makes (an HTTP status or a WebSocket close code
// with a reason) is counted here under its cause.  The counters are plain
// integers: the relay runs on one thread (server.hpp), and only that thread
// touches them.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "options.hpp"

namespace curvebus::web {

// Why a connection or a request was refused.  The names are the JSON keys
// under "refusals" in /healthz and the `cause=` of the log line.
enum class Refusal : std::size_t {
  kConnectionCap,      // --max-connections reached: HTTP 503 / close 1008
  kAddressCap,         // --max-per-address reached: HTTP 429 / close 1008
  kOverflow,           // too many refusals in flight: closed without an answer
  kOrigin,             // Origin not in the allow-list: HTTP 403
  kMessageTooBig,      // WebSocket message over --max-message: close 1009
  kHandshakeTimeout,   // no complete request (or TLS handshake) in time: HTTP 408 / closed
  kIdleTimeout,        // a relay moved no byte for --idle-timeout: close 1008
  kPath,               // a static path that leaves its root: HTTP 403/400
  kMethod,             // anything but GET and HEAD: HTTP 405
  kBadRequest,         // malformed or oversized request head: HTTP 400/431
  kBrokerUnreachable,  // the broker refused or did not answer the TCP connect: close 1011
  kTls,                // the TLS handshake failed
  kCount
};
const char* refusal_name(Refusal r);

struct Stats {
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::uint64_t connections_open = 0;   // TCP connections held (HTTP and WebSocket)
  std::uint64_t connections_total = 0;  // accepted since start
  std::uint64_t relays_open = 0;        // WebSockets relayed to the broker right now
  std::uint64_t relays_total = 0;
  std::uint64_t bytes_to_broker = 0;
  std::uint64_t bytes_to_browser = 0;
  std::uint64_t buffered = 0;       // bytes held in relay buffers right now, all relays
  std::uint64_t buffered_peak = 0;  // the most ever held at once
  // Times a relay stopped reading one side because its buffer towards the
  // other side was full (back-pressure engaged).
  std::uint64_t paused_to_broker = 0;
  std::uint64_t paused_to_browser = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(Refusal::kCount)> refusals{};

  void refuse(Refusal r) { ++refusals[static_cast<std::size_t>(r)]; }
  std::uint64_t refused(Refusal r) const { return refusals[static_cast<std::size_t>(r)]; }
  void add_buffered(std::size_t n) {
    buffered += n;
    if (buffered > buffered_peak) buffered_peak = buffered;
  }
  void remove_buffered(std::size_t n) { buffered -= n; }
};

// The /healthz document: status, version, uptime, connections, bytes,
// back-pressure, refusals by cause and the limits in force.
std::string stats_json(const Stats& stats, const Limits& limits);

}  // namespace curvebus::web
