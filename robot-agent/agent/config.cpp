#include "config.hpp"

#include <toml++/toml.h>
#include <fstream>
#include <map>
#include <sstream>

namespace curvebus::agent {

namespace {

struct Setting {
  enum Kind { kString, kPath, kInt, kI64 } kind;
  void* target;
  std::int64_t min = 0, max = 0;
};

std::map<std::string, Setting> settings(AgentOptions& o) {
  auto& a = o.agent;
  return {
      {"serial", {Setting::kPath, &a.link.device}},
      {"robot", {Setting::kString, &a.robot_id}},
      {"baud", {Setting::kInt, &a.link.baud, 300, 4000000}},
      {"settle_ms", {Setting::kInt, &a.link.settle_ms, 0, 60000}},
      {"reply_timeout_ms", {Setting::kInt, &a.link.reply_timeout_ms, 0, 60000}},
      {"retries", {Setting::kInt, &a.link.retries, 0, 10}},
      {"deadman_ms", {Setting::kI64, &a.policy.deadman_ms, 50, 60000}},
      {"max_age_ms", {Setting::kI64, &a.policy.max_age_ms, 10, 3600000}},
      {"telemetry_ms", {Setting::kInt, &a.telemetry_ms, 0, 3600000}},
      {"status_ms", {Setting::kInt, &a.status_ms, 100, 3600000}},
      {"estop_file", {Setting::kPath, &a.estop_file}},
      {"endpoint", {Setting::kString, &o.endpoint}},
      {"server_key", {Setting::kPath, &o.server_key}},
      {"key", {Setting::kPath, &o.key}},
      {"home", {Setting::kPath, &o.home}},
      {"log_level", {Setting::kString, &o.log_level}},
      {"log_file", {Setting::kPath, &o.log_file}},
  };
}

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || p[0] == '/' || base.empty()) return p;
  // A Z85 server key is not a path; only resolve what looks like one.
  if (p.size() == 40 && p.find('/') == std::string::npos && p.find('.') == std::string::npos)
    return p;
  return base + "/" + p;
}

}  // namespace

Status apply_agent_toml(std::string_view text, const std::string& source,
                        const std::string& base_dir, AgentOptions& options) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::Error(
        source + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()),
        "CONFIG");
  }
  auto where = [&](const toml::node& n) {
    return source + ":" + std::to_string(n.source().begin.line) + ": ";
  };
  for (auto&& [key, node] : root)
    if (key.str() != "agent")
      return Status::Error(where(node) + "unknown key '" + std::string(key.str()) +
                               "' (settings go in an [agent] table)",
                           "CONFIG");
  const toml::table* table = root["agent"].as_table();
  if (!table) {
    if (const toml::node* n = root.get("agent"))
      return Status::Error(where(*n) + "'agent' must be a table", "CONFIG");
    return Status::Ok();
  }
  auto known = settings(options);
  for (auto&& [key, node] : *table) {
    const std::string k(key.str());
    auto it = known.find(k);
    if (it == known.end())
      return Status::Error(where(node) + "unknown key '" + k + "' in [agent]", "CONFIG");
    const Setting& s = it->second;
    if (s.kind == Setting::kInt || s.kind == Setting::kI64) {
      auto v = node.value_exact<std::int64_t>();
      if (!v) return Status::Error(where(node) + "'" + k + "' must be an integer", "CONFIG");
      if (*v < s.min || *v > s.max)
        return Status::Error(where(node) + "'" + k + "' must be between " + std::to_string(s.min) +
                                 " and " + std::to_string(s.max),
                             "CONFIG");
      if (s.kind == Setting::kI64)
        *static_cast<std::int64_t*>(s.target) = *v;
      else
        *static_cast<int*>(s.target) = static_cast<int>(*v);
    } else {
      auto v = node.value_exact<std::string>();
      if (!v) return Status::Error(where(node) + "'" + k + "' must be a string", "CONFIG");
      *static_cast<std::string*>(s.target) = s.kind == Setting::kPath ? resolve(base_dir, *v) : *v;
    }
  }
  return Status::Ok();
}

Status load_agent_config(const std::string& path, AgentOptions& options) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read config file " + path, "NOT_FOUND");
  std::stringstream buf;
  buf << in.rdbuf();
  const auto slash = path.rfind('/');
  return apply_agent_toml(buf.str(), path, slash == std::string::npos ? "." : path.substr(0, slash),
                          options);
}

}  // namespace curvebus::agent
