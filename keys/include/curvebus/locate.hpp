// Where a program on this machine finds the broker: its endpoint and the
// source of its public key (a certificate path or a Z85 key), from a flag,
// then the environment (CURVEBUS_ENDPOINT, CURVEBUS_SERVER_KEY, CURVEBUS_HOME),
// then the curvebus home folder that the broker's embedded default writes
// (<home>/endpoint, <home>/keys/broker), then the built-in default endpoint.
// Used by the client library (the CLI, the agent) and by curvebus-web, so
// they all find the same broker.  Reads only the endpoint file; the key
// source is returned unread (a caller may refuse it before reading it).
#pragma once

#include <string>

#include "curvebus/status.hpp"

namespace curvebus {

struct BrokerLocation {
  std::string home;        // the curvebus home folder in effect
  std::string endpoint;    // e.g. tcp://127.0.0.1:7690
  std::string server_key;  // a certificate path or a Z85 public key, unread
};

// Empty flags mean "not given".  Fails (USAGE) only when no broker key
// source exists, with a message saying how to provide one.
Result<BrokerLocation> locate_broker(const std::string& endpoint_flag,
                                     const std::string& server_key_flag,
                                     const std::string& home_flag);

// `flag` when non-empty, else the environment variable's value, else "".
std::string flag_or_env(const std::string& flag, const char* env_name);

bool path_exists(const std::string& path);

}  // namespace curvebus
