// curvebus-web's command line and what it resolves to.
//
// With no arguments the relay listens on http://127.0.0.1:7691/ and relays to
// the broker's endpoint found the way the `curvebus` tool finds it: --broker,
// then $CURVEBUS_ENDPOINT, then <home>/endpoint, then tcp://127.0.0.1:7690.
// The broker's PUBLIC key (served in /config.json so the page can pin it)
// comes from --server-key, $CURVEBUS_SERVER_KEY or <home>/keys/broker; the
// home is --home, $CURVEBUS_HOME or ./.curvebus.  The relay never reads a
// secret CURVE key: a path ending in _secret is refused.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace curvebus::web {

// What a public relay bounds.  Each limit has a flag; every refusal is
// counted (stats.hpp) and answered (an HTTP status or a close code).
struct Limits {
  std::size_t max_connections = 512;  // TCP connections held at once, all kinds
  std::size_t max_per_address = 32;   // ... from one IPv4 address or IPv6 /64
  std::size_t max_buffered = 65536;   // relay buffer per connection (half each way)
  std::size_t max_message = 4 << 20;  // largest WebSocket message from a browser
  std::chrono::milliseconds handshake_timeout{10000};  // TLS + request head + upgrade + connect
  std::chrono::milliseconds idle_timeout{60000};       // a relay that moves no byte either way
};

struct Options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 7691;  // 0 = any free port (logged)

  std::string broker_endpoint;  // tcp://HOST:PORT as resolved
  std::string broker_host, broker_port;
  std::string broker_key;  // Z85 public key

  std::string static_dir;            // the page's files
  std::string proto_dir;             // curvebus.proto and robot.proto
  std::string vendor_dir;            // --vendor-dir: looked at first for /vendor/NAME
  std::string web_dir;               // where relative vendor paths start (source tree's web/)
  std::string installed_vendor_dir;  // share/curvebus/web-vendor when installed
  bool from_build_tree = false;

  std::string tls_cert, tls_key;           // both or neither
  std::vector<std::string> allow_origins;  // added to the relay's own origins
  bool require_origin = false;             // refuse upgrades that carry no Origin

  Limits limits;
  std::string log_level = "info";
  bool tls() const { return !tls_cert.empty(); }
};

// The outcome of parsing: options to run with, or an exit code and the text
// to print (help, version, or one error line).
struct CommandLine {
  Options options;
  int exit_code = -1;  // -1: run
  std::string output;
};
CommandLine parse_command_line(const std::vector<std::string>& args);

}  // namespace curvebus::web
