#include "curvebus/acl.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "curvebus/certificate.hpp"
#include "curvebus/topic.hpp"

namespace curvebus {

namespace {

std::string where(const std::string& source, const toml::source_region& region) {
  return source + ":" + std::to_string(region.begin.line);
}

Status string_list(const toml::node& node, const std::string& source, const std::string& field,
                   const std::string& name, std::vector<std::string>& out) {
  const toml::array* arr = node.as_array();
  if (!arr)
    return Status::Error(where(source, node.source()) + ": '" + field +
                             "' must be an array of strings",
                         "CONFIG");
  for (const toml::node& item : *arr) {
    auto s = item.value<std::string>();
    if (!s)
      return Status::Error(where(source, item.source()) + ": '" + field +
                               "' must be an array of strings",
                           "CONFIG");
    std::string pattern = expand_name(*s, name);
    std::string why = check_pattern(pattern);
    if (!why.empty())
      return Status::Error(where(source, item.source()) + ": bad pattern '" + *s + "': " + why,
                           "CONFIG");
    out.push_back(pattern);
  }
  return Status::Ok();
}

}  // namespace

std::string expand_name(std::string_view pattern, std::string_view name) {
  std::string out;
  const std::string_view token = "{name}";
  std::size_t pos = 0;
  while (true) {
    std::size_t hit = pattern.find(token, pos);
    if (hit == std::string_view::npos) {
      out.append(pattern.substr(pos));
      return out;
    }
    out.append(pattern.substr(pos, hit - pos));
    out.append(name);
    pos = hit + token.size();
  }
}

bool pattern_covers(std::string_view allowed, std::string_view requested) {
  // '$' topics are only reachable from patterns that name them explicitly.
  if (!requested.empty() && requested.front() == '$' && !allowed.empty() &&
      (allowed.front() == '+' || allowed.front() == '#'))
    return false;
  auto a = split_levels(allowed);
  auto r = split_levels(requested);
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "#") return true;  // covers this level and everything below
    if (i >= r.size()) return false;
    if (r[i] == "#") return false;  // requested reaches deeper than a single-level rule
    if (a[i] == "+") continue;      // covers any one level, including a requested '+'
    if (r[i] == "+" || a[i] != r[i]) return false;
  }
  return a.size() == r.size();
}

bool may_publish(const AclEntry& entry, std::string_view topic) {
  for (const auto& p : entry.publish)
    if (topic_matches(p, topic)) return true;
  return false;
}

bool may_subscribe(const AclEntry& entry, std::string_view pattern) {
  for (const auto& p : entry.subscribe)
    if (pattern_covers(p, pattern)) return true;
  return false;
}

Result<AllowList> AllowList::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read allow-list " + path, "NOT_FOUND");
  std::stringstream buf;
  buf << in.rdbuf();
  std::string dir = ".";
  std::size_t slash = path.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  return parse(buf.str(), path, dir);
}

Result<AllowList> AllowList::parse(std::string_view text, const std::string& source,
                                   const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Status::Error(source + ":" + std::to_string(e.source().begin.line) + ": " +
                             std::string(e.description()),
                         "CONFIG");
  }
  AllowList list;
  for (auto&& [key, node] : root) {
    if (key.str() != "client")
      return Status::Error(where(source, node.source()) + ": unknown key '" +
                               std::string(key.str()) + "' (expected [[client]] tables)",
                           "CONFIG");
  }
  const toml::node* clients = root.get("client");
  if (!clients) return list;  // an empty allow-list admits nobody
  const toml::array* arr = clients->as_array();
  if (!arr || !arr->is_array_of_tables())
    return Status::Error(where(source, clients->source()) + ": 'client' must be [[client]] tables",
                         "CONFIG");
  static const std::set<std::string> known = {"name",    "public_key", "public_key_file", "role",
                                              "admin",   "publish",    "subscribe"};
  for (const toml::node& item : *arr) {
    const toml::table& t = *item.as_table();
    for (auto&& [k, v] : t) {
      if (!known.count(std::string(k.str())))
        return Status::Error(where(source, v.source()) + ": unknown key '" +
                                 std::string(k.str()) + "' in [[client]]",
                             "CONFIG");
    }
    AclEntry e;
    auto name = t["name"].value<std::string>();
    if (!name || name->empty() || name->find_first_of("/+#{} \t") != std::string::npos)
      return Status::Error(where(source, t.source()) +
                               ": [[client]] needs a 'name' (text without '/', '+', '#', "
                               "braces or spaces)",
                           "CONFIG");
    e.name = *name;
    if (auto key = t["public_key"].value<std::string>()) {
      if (!is_z85_key(*key))
        return Status::Error(where(source, t["public_key"].node()->source()) +
                                 ": public_key of '" + e.name +
                                 "' is not a Z85 CURVE key (40 characters)",
                             "CONFIG");
      e.public_key = *key;
    } else if (auto file = t["public_key_file"].value<std::string>()) {
      std::string path = (!file->empty() && file->front() == '/') ? *file : base_dir + "/" + *file;
      auto cert = read_certificate(path, false);
      if (!cert)
        return Status::Error(where(source, t["public_key_file"].node()->source()) + ": " +
                                 cert.status().message(),
                             "CONFIG");
      e.public_key = cert->keys.public_key;
    } else {
      return Status::Error(where(source, t.source()) + ": client '" + e.name +
                               "' needs public_key or public_key_file",
                           "CONFIG");
    }
    if (const toml::node* role = t.get("role")) {
      auto r = role->value<std::string>();
      if (!r || (*r != "client" && *r != "provider" && *r != "agent"))
        return Status::Error(where(source, role->source()) +
                                 ": role must be \"client\", \"provider\" or \"agent\"",
                             "CONFIG");
      e.role = *r;
    }
    if (const toml::node* admin = t.get("admin")) {
      auto b = admin->value<bool>();
      if (!admin->is_boolean() || !b)
        return Status::Error(where(source, admin->source()) + ": admin must be true or false",
                             "CONFIG");
      e.admin = *b;
    }
    if (const toml::node* n = t.get("publish")) {
      Status s = string_list(*n, source, "publish", e.name, e.publish);
      if (!s) return s;
    }
    if (const toml::node* n = t.get("subscribe")) {
      Status s = string_list(*n, source, "subscribe", e.name, e.subscribe);
      if (!s) return s;
    }
    for (const auto& other : list.entries_) {
      if (other.name == e.name)
        return Status::Error(where(source, t.source()) + ": client name '" + e.name +
                                 "' appears twice",
                             "CONFIG");
      if (other.public_key == e.public_key)
        return Status::Error(where(source, t.source()) + ": clients '" + other.name + "' and '" +
                                 e.name + "' share one public key",
                             "CONFIG");
    }
    list.entries_.push_back(std::move(e));
  }
  list.index();
  return list;
}

void AllowList::index() {
  by_key_.clear();
  by_name_.clear();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    by_key_[entries_[i].public_key] = i;
    by_name_[entries_[i].name] = i;
  }
}

const AclEntry* AllowList::by_key(const std::string& public_key) const {
  auto it = by_key_.find(public_key);
  return it == by_key_.end() ? nullptr : &entries_[it->second];
}

const AclEntry* AllowList::by_name(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

bool AllowList::remove(const std::string& name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index();
  return true;
}

}  // namespace curvebus
