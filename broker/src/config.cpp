// Configuration: defaults < TOML file ([broker] table) < command-line flags.
#include "curvebus/broker/config.hpp"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

namespace curvebus::broker {

// federation_config.cpp
Status apply_federation_toml(const toml::table& table, const std::string& source,
                             const std::string& base_dir, FederationConfig& fed);

namespace {

std::string dir_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty() || base_dir == ".") return path;
  return base_dir + "/" + path;
}

// One setting: how to read it from TOML and how it appears on the command line.
struct Setting {
  enum Kind { kString, kPath, kU32, kU64 } kind;
  void* target;
  std::uint64_t min = 0;
  std::uint64_t max = std::numeric_limits<std::uint32_t>::max();
  const char* help = "";
};

std::map<std::string, Setting> settings(Config& c) {
  using S = Setting;
  const std::uint64_t u32 = std::numeric_limits<std::uint32_t>::max();
  const std::uint64_t u64 = std::numeric_limits<std::int64_t>::max();
  return {
      {"bind",
       {S::kString, &c.bind, 0, 0, "ZeroMQ endpoint to bind (tcp://127.0.0.1:* = ephemeral)"}},
      {"keys", {S::kPath, &c.keys_dir, 0, 0, "directory holding the broker_secret certificate"}},
      {"acl", {S::kPath, &c.acl_path, 0, 0, "allow-list / ACL TOML file"}},
      {"endpoint_file", {S::kPath, &c.endpoint_file, 0, 0, "write the bound endpoint here"}},
      {"home", {S::kPath, &c.home, 0, 0, "home directory for the embedded default"}},
      {"retained_file",
       {S::kPath, &c.retained_file, 0, 0, "retained values kept here across restarts"}},
      {"retained_sync_ms",
       {S::kU32, &c.retained_sync_ms, 0, u32,
        "write changed retained values at most this often (0 = memory only)"}},
      {"heartbeat_ms", {S::kU32, &c.heartbeat_ms, 1, u32, "default alive-signal interval (ms)"}},
      {"max_message_bytes",
       {S::kU32, &c.max_message_bytes, 1, 256u << 20, "largest PUBLISH payload"}},
      {"max_subscriptions", {S::kU32, &c.max_subscriptions, 1, u32, "patterns per session"}},
      {"publish_rate",
       {S::kU32, &c.publish_rate, 0, u32,
        "publications/s per name, all its sessions together (0 = unlimited)"}},
      {"max_sessions_per_name",
       {S::kU32, &c.max_sessions_per_name, 1, u32, "live sessions one name may hold"}},
      {"work_budget",
       {S::kU32, &c.work_budget, 0, u32,
        "work units/s per name for requests other than PUBLISH (0 = unlimited)"}},
      {"max_scan",
       {S::kU32, &c.max_scan, 100, u32, "topics one TOPICS or retained SUBSCRIBE visits"}},
      {"max_topics_reply",
       {S::kU32, &c.max_topics_reply, 1, u32, "topics per TOPICS reply (then truncated)"}},
      {"memory_budget_bytes",
       {S::kU64, &c.memory_budget_bytes, 1u << 20, u64,
        "bytes of history and retained values kept in all"}},
      {"name_quota_bytes",
       {S::kU64, &c.name_quota_bytes, 1024, u64,
        "bytes of history and retained values charged to one name"}},
      {"topic_idle_s",
       {S::kU32, &c.topic_idle_s, 1, u32,
        "forget a topic idle this long (no subscriber, no retained value)"}},
      {"handshake_rate",
       {S::kU32, &c.handshake_rate, 0, u32, "new connections/s per key (0 = unlimited)"}},
      {"next_bind",
       {S::kString, &c.next_bind, 0, 0,
        "second endpoint serving the next broker key (key rotation)"}},
      {"next_key", {S::kPath, &c.next_key, 0, 0, "secret certificate of the next broker key"}},
      {"revocations_file",
       {S::kPath, &c.revocations_file, 0, 0, "revocations kept across restarts"}},
      {"audit_file", {S::kPath, &c.audit_file, 0, 0, "structured audit trail (JSON lines)"}},
      {"audit_max_bytes",
       {S::kU64, &c.audit_max_bytes, 4096, u64, "audit file rotated past this size"}},
      {"publish_burst",
       {S::kU32, &c.publish_burst, 0, u32, "token bucket size (0 = one second's worth)"}},
      {"queue_limit", {S::kU32, &c.queue_limit, 1, u32, "outbound ops queued per session"}},
      {"queue_limit_bytes",
       {S::kU64, &c.queue_limit_bytes, 1024, u64, "outbound bytes queued per session"}},
      {"history_depth", {S::kU32, &c.history_depth, 1, 1u << 20, "publications kept per topic"}},
      {"history_bytes", {S::kU64, &c.history_bytes, 1, u64, "bytes kept per topic"}},
      {"max_topics", {S::kU32, &c.max_topics, 1, u32, "topics the broker keeps"}},
      {"stats_interval_s",
       {S::kU32, &c.stats_interval_s, 0, u32, "$SYS/broker/stats period (0 = off)"}},
      {"io_threads",
       {S::kU32, &c.io_threads, 1, 16,
        "libzmq I/O threads (CURVE and TCP work; each connection stays on one)"}},
      {"log_level", {S::kString, &c.log_level, 0, 0, "trace|debug|info|warn|error|critical|off"}},
      {"log_file", {S::kPath, &c.log_file, 0, 0, "also log to this file"}},
  };
}

std::string flag_of(const std::string& key) {
  std::string flag = "--" + key;
  for (char& ch : flag)
    if (ch == '_') ch = '-';
  return flag;
}

}  // namespace

Status apply_toml(std::string_view text, const std::string& source, const std::string& base_dir,
                  Config& config) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::Error(
        source + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        StatusCode::kConfig);
  }
  auto where = [&](const toml::node& n) {
    return source + ":" + std::to_string(n.source().begin.line) + ": ";
  };
  for (auto&& [key, node] : root) {
    if (key.str() == "federation") {
      if (!node.is_table())
        return Status::Error(where(node) + "'federation' must be a table", StatusCode::kConfig);
      if (Status st = apply_federation_toml(*node.as_table(), source, base_dir, config.federation);
          !st)
        return st;
      continue;
    }
    if (key.str() != "broker")
      return Status::Error(where(node) + "unknown key '" + std::string(key.str()) +
                               "' (settings go in a [broker] table, federation in [federation])",
                           StatusCode::kConfig);
  }
  const toml::table* broker = root["broker"].as_table();
  if (!broker) {
    if (const toml::node* n = root.get("broker"))
      return Status::Error(where(*n) + "'broker' must be a table", StatusCode::kConfig);
    return Status::Ok();
  }
  auto known = settings(config);
  for (auto&& [key, node] : *broker) {
    const std::string k(key.str());
    auto it = known.find(k);
    if (it == known.end())
      return Status::Error(where(node) + "unknown key '" + k + "' in [broker]",
                           StatusCode::kConfig);
    const Setting& s = it->second;
    if (s.kind == Setting::kString || s.kind == Setting::kPath) {
      auto v = node.value_exact<std::string>();
      if (!v)
        return Status::Error(where(node) + "'" + k + "' must be a string", StatusCode::kConfig);
      *static_cast<std::string*>(s.target) = s.kind == Setting::kPath ? resolve(base_dir, *v) : *v;
    } else {
      auto v = node.value_exact<std::int64_t>();
      if (!v)
        return Status::Error(where(node) + "'" + k + "' must be an integer", StatusCode::kConfig);
      if (*v < 0 || static_cast<std::uint64_t>(*v) < s.min ||
          static_cast<std::uint64_t>(*v) > s.max)
        return Status::Error(where(node) + "'" + k + "' must be between " + std::to_string(s.min) +
                                 " and " + std::to_string(s.max),
                             StatusCode::kConfig);
      if (s.kind == Setting::kU32)
        *static_cast<std::uint32_t*>(s.target) = static_cast<std::uint32_t>(*v);
      else
        *static_cast<std::uint64_t*>(s.target) = static_cast<std::uint64_t>(*v);
    }
  }
  return Status::Ok();
}

Status load_config_file(const std::string& path, Config& config) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read config file " + path, StatusCode::kNotFound);
  std::stringstream buf;
  buf << in.rdbuf();
  return apply_toml(buf.str(), path, dir_of(path), config);
}

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine out;
  CLI::App app{"curvebus-broker: CurveZMQ publish-subscribe broker", "curvebus-broker"};
  std::string config_file;
  app.add_option("--config", config_file, "TOML file with a [broker] table (flags override it)");
  app.set_version_flag("--version", std::string("curvebus-broker ") + CURVEBUS_VERSION);
  // Flags are parsed into strings first so that only the given ones override the file.
  Config scratch;
  auto known = settings(scratch);
  std::map<std::string, std::string> given;
  for (auto& [key, s] : known) given[key];
  for (auto& [key, s] : known) app.add_option(flag_of(key), given[key], s.help);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (!reversed.empty()) reversed.pop_back();  // argv[0]
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.exit_code = 0;
    out.output = app.help();
    return out;
  } catch (const CLI::CallForVersion& v) {
    out.exit_code = 0;
    out.output = v.what();
    return out;
  } catch (const CLI::ParseError& e) {
    out.exit_code = 1;
    out.output = std::string("curvebus-broker: ") + e.what();
    return out;
  }
  if (!config_file.empty()) {
    Status s = load_config_file(config_file, out.config);
    if (!s) {
      out.exit_code = 1;
      out.output = "curvebus-broker: " + s.message();
      return out;
    }
  }
  // Apply the flags given, reusing the TOML rules for types and ranges.
  auto targets = settings(out.config);
  for (auto& [key, value] : given) {
    if (app.count(flag_of(key)) == 0) continue;
    const Setting& s = targets.at(key);
    if (s.kind == Setting::kString || s.kind == Setting::kPath) {
      *static_cast<std::string*>(s.target) = value;
      continue;
    }
    std::uint64_t v = 0;
    std::size_t used = 0;
    bool ok = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    if (ok) {
      try {
        v = std::stoull(value, &used);
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok || v < s.min || v > s.max) {
      out.exit_code = 1;
      out.output = "curvebus-broker: " + flag_of(key) + " must be an integer between " +
                   std::to_string(s.min) + " and " + std::to_string(s.max) + " (got '" + value +
                   "')";
      return out;
    }
    if (s.kind == Setting::kU32)
      *static_cast<std::uint32_t*>(s.target) = static_cast<std::uint32_t>(v);
    else
      *static_cast<std::uint64_t*>(s.target) = v;
  }
  Status s = validate(out.config);
  if (!s) {
    out.exit_code = 1;
    out.output = "curvebus-broker: " + s.message();
  }
  return out;
}

Status validate(const Config& c) {
  static const char* levels[] = {"trace", "debug", "info",     "warn", "warning",
                                 "error", "err",   "critical", "off"};
  bool level_ok = false;
  for (const char* l : levels) level_ok = level_ok || c.log_level == l;
  if (!level_ok)
    return Status::Error(
        "unknown log level '" + c.log_level + "' (trace, debug, info, warn, error, critical, off)",
        StatusCode::kConfig);
  if (c.heartbeat_ms == 0)
    return Status::Error("heartbeat interval must be > 0", StatusCode::kConfig);
  if (c.max_batch_bytes < 1024) return Status::Error("max batch below 1 KiB", StatusCode::kConfig);
  if (c.next_bind.empty() != c.next_key.empty())
    return Status::Error("next_bind and next_key go together (broker key rotation)",
                         StatusCode::kConfig);
  if (c.name_quota_bytes > c.memory_budget_bytes)
    return Status::Error("name_quota_bytes is over memory_budget_bytes", StatusCode::kConfig);
  return Status::Ok();
}

}  // namespace curvebus::broker
