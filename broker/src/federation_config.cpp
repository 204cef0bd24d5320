// The [federation] table of broker.toml (federation_config.hpp).  Unknown
// keys, wrong types and invalid values are errors naming file:line.
#include <toml++/toml.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "curvebus/broker/config.hpp"
#include "curvebus/topic.hpp"

namespace curvebus::broker {

namespace {

std::string resolve_path(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || base_dir.empty() || base_dir == ".") return path;
  return base_dir + "/" + path;
}

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

class Reader {
 public:
  Reader(const std::string& source, const std::string& base_dir)
      : source_(source), base_dir_(base_dir) {}

  std::string where(const toml::node& n) const {
    return source_ + ":" + std::to_string(n.source().begin.line) + ": ";
  }
  Status error(const toml::node& n, const std::string& what) const {
    return Status::Error(where(n) + what, StatusCode::kConfig);
  }
  Status string(const toml::node& n, const std::string& key, std::string& out, bool path) const {
    auto v = n.value_exact<std::string>();
    if (!v) return error(n, "'" + key + "' must be a string");
    out = path ? resolve_path(base_dir_, *v) : *v;
    return Status::Ok();
  }
  Status strings(const toml::node& n, const std::string& key, std::vector<std::string>& out,
                 bool path) const {
    const toml::array* a = n.as_array();
    if (!a) return error(n, "'" + key + "' must be an array of strings");
    out.clear();
    for (const toml::node& el : *a) {
      auto v = el.value_exact<std::string>();
      if (!v) return error(el, "'" + key + "' must be an array of strings");
      out.push_back(path ? resolve_path(base_dir_, *v) : *v);
    }
    return Status::Ok();
  }
  Status patterns(const toml::node& n, const std::string& key,
                  std::vector<std::string>& out) const {
    if (Status st = strings(n, key, out, false); !st) return st;
    for (const std::string& p : out)
      if (std::string why = check_pattern(p); !why.empty())
        return error(n, "'" + key + "': pattern '" + p + "': " + why);
    return Status::Ok();
  }
  Status u32(const toml::node& n, const std::string& key, std::uint32_t& out, std::uint32_t min,
             std::uint32_t max) const {
    auto v = n.value_exact<std::int64_t>();
    if (!v) return error(n, "'" + key + "' must be an integer");
    if (*v < min || *v > max)
      return error(n, "'" + key + "' must be between " + std::to_string(min) + " and " +
                          std::to_string(max));
    out = static_cast<std::uint32_t>(*v);
    return Status::Ok();
  }

 private:
  const std::string& source_;
  const std::string& base_dir_;
};

}  // namespace

// A federation name: [A-Za-z0-9_-], 1 to 64 characters (a NATS subject
// token and a durable consumer's name as it is).
bool valid_federation_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

Status apply_federation_toml(const toml::table& table, const std::string& source,
                             const std::string& base_dir, FederationConfig& fed) {
  const Reader r(source, base_dir);
  fed.enabled = true;
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    Status st;
    if (k == "name")
      st = r.string(node, k, fed.name, false);
    else if (k == "urls")
      st = r.strings(node, k, fed.urls, false);
    else if (k == "tls_ca")
      st = r.string(node, k, fed.tls_ca, true);
    else if (k == "tls_cert")
      st = r.string(node, k, fed.tls_cert, true);
    else if (k == "tls_key")
      st = r.string(node, k, fed.tls_key, true);
    else if (k == "credentials")
      st = r.string(node, k, fed.credentials, true);
    else if (k == "nkey_seed")
      st = r.string(node, k, fed.nkey_seed, true);
    else if (k == "user")
      st = r.string(node, k, fed.user, false);
    else if (k == "password_file")
      st = r.string(node, k, fed.password_file, true);
    else if (k == "signing_key")
      st = r.string(node, k, fed.signing_key, true);
    else if (k == "keys")
      st = r.strings(node, k, fed.keys, true);
    else if (k == "subject_prefix")
      st = r.string(node, k, fed.subject_prefix, false);
    else if (k == "stream_prefix")
      st = r.string(node, k, fed.stream_prefix, false);
    else if (k == "replicas")
      st = r.u32(node, k, fed.replicas, 1, 5);
    else if (k == "export")
      st = r.patterns(node, k, fed.export_patterns);
    else if (k == "import")
      st = r.patterns(node, k, fed.import_patterns);
    else if (k == "commands")
      st = r.patterns(node, k, fed.command_patterns);
    else if (k == "export_queue")
      st = r.u32(node, k, fed.export_queue, 1, 10000000);
    else if (k == "import_queue")
      st = r.u32(node, k, fed.import_queue, 1, 10000000);
    else if (k == "command_timeout_ms")
      st = r.u32(node, k, fed.command_timeout_ms, 100, 600000);
    else if (k == "command_max_age_s")
      st = r.u32(node, k, fed.command_max_age_s, 1, 86400);
    else if (k == "stream_max_age_s")
      st = r.u32(node, k, fed.stream_max_age_s, 1, 86400);
    else if (k == "reconnect_wait_ms")
      st = r.u32(node, k, fed.reconnect_wait_ms, 10, 60000);
    else if (k == "state_file")
      st = r.string(node, k, fed.state_file, true);
    else if (k == "peer") {
      const toml::array* peers = node.as_array();
      if (!peers) return r.error(node, "'peer' must be an array of tables ([[federation.peer]])");
      for (const toml::node& pn : *peers) {
        const toml::table* pt = pn.as_table();
        if (!pt) return r.error(pn, "'peer' must be an array of tables ([[federation.peer]])");
        FederationPeer peer;
        peer.source = r.where(pn);
        std::string key_file;
        for (auto&& [pk, pv] : *pt) {
          const std::string kk(pk.str());
          Status ps;
          if (kk == "name")
            ps = r.string(pv, kk, peer.name, false);
          else if (kk == "sign_public_key")
            ps = r.string(pv, kk, peer.sign_public_key, false);
          else if (kk == "sign_public_key_file")
            ps = r.string(pv, kk, key_file, true);
          else if (kk == "publish")
            ps = r.patterns(pv, kk, peer.publish);
          else
            return r.error(pv, "unknown key '" + kk + "' in [[federation.peer]]");
          if (!ps) return ps;
        }
        if (!valid_federation_name(peer.name))
          return r.error(pn,
                         "[[federation.peer]] needs a 'name' of 1 to 64 letters, digits, "
                         "'_' or '-'");
        if (peer.sign_public_key.empty() == key_file.empty())
          return r.error(pn, "[[federation.peer]] '" + peer.name +
                                 "' needs exactly one of sign_public_key and sign_public_key_file");
        if (!key_file.empty()) {
          std::ifstream in(key_file);
          if (!in) return r.error(pn, "cannot read sign_public_key_file " + key_file);
          std::stringstream buf;
          buf << in.rdbuf();
          std::string text = buf.str();
          while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
            text.pop_back();
          peer.sign_public_key = text;
        }
        if (!is_hex64(peer.sign_public_key))
          return r.error(pn, "the signing key of peer '" + peer.name +
                                 "' is not an Ed25519 public key (64 hex characters)");
        fed.peers.push_back(std::move(peer));
      }
      continue;
    } else {
      return r.error(node, "unknown key '" + k + "' in [federation]");
    }
    if (!st) return st;
  }
  if (!valid_federation_name(fed.name))
    return r.error(table, "[federation] needs a 'name' of 1 to 64 letters, digits, '_' or '-'");
  if (fed.urls.empty()) return r.error(table, "[federation] needs 'urls' (NATS servers)");
  if (fed.signing_key.empty())
    return r.error(table, "[federation] needs 'signing_key' (curvebus keygen --sign)");
  if (fed.keys.empty())
    return r.error(table, "[federation] needs 'keys' (curvebus keygen --federation-key)");
  if (!valid_federation_name(fed.subject_prefix))
    return r.error(table, "'subject_prefix' must be 1 to 64 letters, digits, '_' or '-'");
  if (!valid_federation_name(fed.stream_prefix))
    return r.error(table, "'stream_prefix' must be 1 to 64 letters, digits, '_' or '-'");
  std::set<std::string> names{fed.name};
  for (const FederationPeer& p : fed.peers)
    if (!names.insert(p.name).second)
      return Status::Error(p.source + "peer '" + p.name + "' is named twice (or is this broker)",
                           StatusCode::kConfig);
  return Status::Ok();
}

}  // namespace curvebus::broker
