// Broker configuration: defaults, the TOML file (--config) and the command
// line.  Precedence: built-in defaults < [broker] table of the TOML file <
// command-line flags.  The TOML keys are the long flags with '_' for '-'.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "curvebus/broker/federation_config.hpp"
#include "curvebus/status.hpp"

namespace curvebus::broker {

struct Config {
  std::string bind;           // empty = tcp://127.0.0.1:7690 (kDefaultEndpoint)
  std::string keys_dir;       // holds broker_secret; empty = <home>/keys
  std::string acl_path;       // allow-list TOML; empty = <home>/acl.toml
  std::string endpoint_file;  // where the bound endpoint is written; empty = <home>/endpoint
  std::string home;           // empty = $CURVEBUS_HOME or ./.curvebus
  // Retained values kept across restarts; empty = <home>/retained.pb when a
  // home is used, otherwise not kept.  retained_sync_ms bounds how old the
  // file may be (what a SIGKILL can lose); 0 = keep retained values in memory only.
  std::string retained_file;
  std::uint32_t retained_sync_ms = 1000;
  std::uint32_t heartbeat_ms = 1000;     // default alive-signal interval
  std::uint32_t min_heartbeat_ms = 100;  // peers' requests are clamped to [min, max]
  std::uint32_t max_heartbeat_ms = 60000;
  std::uint32_t max_message_bytes = 1u << 20;  // PUBLISH payload bound
  std::uint32_t max_topic_bytes = 256;
  std::uint32_t max_topic_levels = 16;
  std::uint32_t max_subscriptions = 100;  // patterns per session
  // Publications per second per NAME, all its sessions together (0 = unlimited).
  std::uint32_t publish_rate = 10000;
  std::uint32_t publish_burst = 0;  // 0 = one second's worth
  std::uint32_t max_sessions_per_name = 32;
  // Work budget per name: units (about a microsecond of the broker's time each)
  // per second for requests other than PUBLISH; past it: ERROR BUSY.
  std::uint32_t work_budget = 100000;
  std::uint32_t max_scan = 10000;         // topics one TOPICS / retained SUBSCRIBE visits
  std::uint32_t max_topics_reply = 1000;  // topics per TOPICS_REPLY (then truncated)
  // Storage: history + retained values, in all and per name (refused past it: ERROR QUOTA).
  std::uint64_t memory_budget_bytes = 256ull << 20;
  std::uint64_t name_quota_bytes = 64ull << 20;
  std::uint32_t topic_idle_s = 300;   // free a topic idle this long (no subscriber, no retained)
  std::uint32_t handshake_rate = 20;  // new connections per second per key (burst 5x)
  // Broker key rotation: a second endpoint serving the next server key while
  // clients move over (empty = none).  `next_key` is its secret certificate.
  std::string next_bind;
  std::string next_key;
  // Revocations by key or name, kept across restarts; empty = revoked.toml
  // beside the allow-list.
  std::string revocations_file;
  // Structured audit trail (JSON lines); empty = audit.log beside the allow-list.
  std::string audit_file;
  std::uint64_t audit_max_bytes = 64ull << 20;
  std::uint32_t queue_limit = 100000;  // outbound ops queued per session (bytes bound below)
  std::uint64_t queue_limit_bytes = 16u << 20;
  std::uint32_t history_depth = 32;        // publications kept per topic
  std::uint64_t history_bytes = 4u << 20;  // bytes kept per topic (latest always kept)
  std::uint32_t max_topics = 100000;
  std::uint32_t stats_interval_s = 10;  // $SYS/broker/stats period (0 = off)
  std::uint32_t max_batch_bytes = 64u << 10;
  // libzmq I/O threads: they do the CURVE boxing and the TCP reads and writes,
  // off the routing thread.  libzmq serves each connection on one I/O thread,
  // so more than one helps only with several peers.
  std::uint32_t io_threads = 2;
  FederationConfig federation;  // [federation]: other brokers over NATS (federation_config.hpp)
  std::string log_level = "info";
  std::string log_file;
};

// Applies the [broker] table of a TOML document to `config`.  Unknown keys,
// unknown tables and wrong types are errors naming `source`:line.  Relative
// paths are taken from `base_dir`.
Status apply_toml(std::string_view text, const std::string& source, const std::string& base_dir,
                  Config& config);
Status load_config_file(const std::string& path, Config& config);

// The command line.  exit_code < 0: run the broker with `config`; otherwise
// exit with it after printing `output` (help text to stdout when 0, one
// error line to stderr when 1).
struct CommandLine {
  Config config;
  int exit_code = -1;
  std::string output;
};
CommandLine parse_command_line(const std::vector<std::string>& args);

// Checks ranges that make the broker unusable (e.g. heartbeat 0).
Status validate(const Config& config);

// Fills the paths left empty from the home directory and, for a first try on
// one machine, generates what is missing there: the broker's key pair
// (<home>/keys/broker_secret) and, when <home>/acl.toml does not exist, two
// dev identities ("dev": admin, everything; "alex": a robot agent) with their
// keys and an allow-list naming them.  `log` receives one line per action.
Status prepare_home(Config& config, std::vector<std::string>& log);

}  // namespace curvebus::broker
