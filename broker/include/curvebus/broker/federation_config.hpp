// The [federation] table of broker.toml (docs/federation.md): how this
// broker joins others over a NATS backbone.  Example:
//
//   [federation]
//   name = "lab-a"                            # this broker's federation name
//   urls = ["nats://10.0.0.2:4222", "nats://10.0.0.3:4222"]
//   tls_ca = "nats-ca.pem"                    # optional: TLS to NATS
//   tls_cert = "lab-a.pem"                    # optional: client certificate
//   tls_key = "lab-a.key"
//   credentials = "lab-a.creds"               # optional: NATS JWT + NKey seed
//   # or nkey_seed = "lab-a.nk", or user = "lab-a" + password_file = "..."
//   signing_key = "keys/lab-a.sign_secret"    # this broker's Ed25519 key
//   keys = ["keys/federation.key"]            # shared keys; the first seals
//   export = ["robot/#", "$SYS/presence/#", "$SYS/broker/stats"]
//   import = ["robot/#", "$SYS/#"]
//   commands = ["robot/+/cmd/#"]              # reliable (JetStream); others are streams
//   replicas = 3
//
//   [[federation.peer]]
//   name = "lab-b"
//   sign_public_key_file = "keys/lab-b.sign"  # or sign_public_key = "<64 hex>"
//   publish = ["robot/#", "$SYS/#"]           # what lab-b may publish here
//
// Relative paths are taken from the configuration file's directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace curvebus::broker {

struct FederationPeer {
  std::string name;
  std::string sign_public_key;       // 64 hex characters (read from the file when one is named)
  std::vector<std::string> publish;  // topic patterns this peer may publish here
  std::string source;                // file:line of its [[federation.peer]]
};

struct FederationConfig {
  bool enabled = false;  // a [federation] table was given
  std::string name;      // [A-Za-z0-9_-], at most 64 characters
  std::vector<std::string> urls;
  std::string tls_ca, tls_cert, tls_key;
  std::string credentials;  // NATS .creds file (user JWT + NKey seed)
  std::string nkey_seed;    // NKey seed file
  std::string user, password_file;
  std::string signing_key;        // Ed25519 secret key file (curvebus keygen --sign)
  std::vector<std::string> keys;  // federation key files (curvebus keygen --federation-key)
  std::string subject_prefix = "curvebus";
  std::string stream_prefix = "CURVEBUS";  // JetStream streams <prefix>_CMD and <prefix>_KV
  std::uint32_t replicas = 1;              // of those streams
  std::vector<std::string> export_patterns, import_patterns, command_patterns;
  std::uint32_t export_queue = 10000;  // envelopes waiting to leave; past it dropped
  std::uint32_t import_queue = 10000;  // envelopes waiting for the routing thread
  std::uint32_t command_timeout_ms =
      4000;  // wait for JetStream's store acknowledgement (under the client's 5 s)
  std::uint32_t command_max_age_s = 60;  // an older command is never delivered
  std::uint32_t stream_max_age_s = 300;  // an older stream envelope is refused
  std::uint32_t reconnect_wait_ms = 500;
  std::string state_file;  // replay windows across restarts; empty = <home>/federation.state
  std::vector<FederationPeer> peers;
};

}  // namespace curvebus::broker
