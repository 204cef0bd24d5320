#include "curvebus/acl.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "curvebus/certificate.hpp"
#include "curvebus/topic.hpp"
#include "toml_support.hpp"

namespace curvebus {

namespace {

using keys_detail::config_error;
using keys_detail::where;

Status string_list(const toml::node& node, const std::string& source, const std::string& field,
                   const std::string& name, std::vector<std::string>& out) {
  const toml::array* arr = node.as_array();
  if (!arr)
    return config_error(where(source, node.source()),
                        "'" + field + "' must be an array of strings");
  for (const toml::node& item : *arr) {
    auto s = item.value<std::string>();
    if (!s || !item.is_string())
      return config_error(where(source, item.source()),
                          "'" + field + "' must be an array of strings");
    std::string pattern = expand_name(*s, name);
    std::string why = check_pattern(pattern);
    if (!why.empty())
      return config_error(where(source, item.source()), "bad pattern '" + *s + "': " + why);
    out.push_back(pattern);
  }
  return Status::Ok();
}

// One [[client]] block as written, before blocks of one name are merged.
struct Block {
  std::string at;  // file:line of the [[client]] header
  bool states_rights = false;
  AclEntry entry;  // name, rights (defaults unless stated) and the block's keys
};

// Reads the key a table declares with public_key / public_key_file and its
// not_before / not_after.  `element` is true for an entry of a keys list
// (which must hold a key) and false for the [[client]] block itself (which
// may hold none).  Appends at most one key to `out`.
Status read_key(const toml::table& t, bool element, const std::string& source,
                const std::string& base_dir, const std::string& name, std::vector<AclKey>& out) {
  const toml::node* pk = t.get("public_key");
  const toml::node* pf = t.get("public_key_file");
  const toml::node* nb = t.get("not_before");
  const toml::node* na = t.get("not_after");
  if (pk && pf)
    return config_error(where(source, pf->source()),
                        "client '" + name +
                            "': give public_key or public_key_file, not both (list several "
                            "keys with keys = [...])");
  if (!pk && !pf) {
    if (element)
      return config_error(where(source, t.source()), "each entry of keys of client '" + name +
                                                         "' needs public_key or public_key_file");
    if (nb || na)
      return config_error(where(source, (nb ? nb : na)->source()),
                          "client '" + name +
                              "': not_before / not_after apply to the block's public_key or "
                              "public_key_file, and it has none (inside keys = [...] give them "
                              "per key)");
    return Status::Ok();
  }
  AclKey key;
  if (pk) {
    key.source = where(source, pk->source());
    const auto* text = pk->as_string();
    if (!text || !is_z85_key(text->get()))
      return config_error(key.source,
                          "public_key of '" + name + "' is not a Z85 CURVE key (40 characters)");
    key.public_key = text->get();
  } else {
    key.source = where(source, pf->source());
    const auto* file = pf->as_string();
    if (!file || file->get().empty())
      return config_error(key.source, "public_key_file of '" + name + "' must be a file name");
    const std::string& f = file->get();
    const std::string path = f.front() == '/' ? f : base_dir + "/" + f;
    auto cert = read_certificate(path, false);
    if (!cert) return config_error(key.source, cert.status().message());
    key.public_key = cert->keys.public_key;
  }
  if (nb) {
    std::string why = keys_detail::read_instant(*nb, key.not_before_us);
    if (!why.empty())
      return config_error(where(source, nb->source()),
                          "not_before of a key of '" + name + "': " + why);
  }
  if (na) {
    std::string why = keys_detail::read_instant(*na, key.not_after_us);
    if (!why.empty())
      return config_error(where(source, na->source()),
                          "not_after of a key of '" + name + "': " + why);
  }
  if (nb && na && key.not_after_us < key.not_before_us)
    return config_error(where(source, na->source()),
                        "not_after of a key of '" + name + "' is before its not_before");
  out.push_back(std::move(key));
  return Status::Ok();
}

Status read_block(const toml::table& t, const std::string& source, const std::string& base_dir,
                  Block& block) {
  static const std::set<std::string> known = {
      "name", "public_key", "public_key_file", "not_before", "not_after",
      "keys", "role",       "admin",           "publish",    "subscribe"};
  static const std::set<std::string> known_in_keys = {"public_key", "public_key_file", "not_before",
                                                      "not_after"};
  block.at = where(source, t.source());
  for (auto&& [k, v] : t) {
    if (!known.count(std::string(k.str())))
      return config_error(where(source, v.source()),
                          "unknown key '" + std::string(k.str()) + "' in [[client]]");
  }
  AclEntry& e = block.entry;
  const auto* name = t.get_as<std::string>("name");
  if (!name || !is_client_name(name->get()))
    return config_error(block.at,
                        "[[client]] needs a 'name' (text without '/', '+', '#', braces or "
                        "spaces)");
  e.name = name->get();

  Status s = read_key(t, false, source, base_dir, e.name, e.keys);
  if (!s) return s;
  if (const toml::node* keys = t.get("keys")) {
    const toml::array* arr = keys->as_array();
    if (!arr)
      return config_error(where(source, keys->source()),
                          "'keys' must be a list of tables: keys = [ { public_key = \"...\" } ]");
    for (const toml::node& item : *arr) {
      const toml::table* kt = item.as_table();
      if (!kt)
        return config_error(where(source, item.source()),
                            "each entry of 'keys' must be a table: { public_key = \"...\" }");
      for (auto&& [k, v] : *kt) {
        if (!known_in_keys.count(std::string(k.str())))
          return config_error(where(source, v.source()),
                              "unknown key '" + std::string(k.str()) +
                                  "' in an entry of keys (expected public_key, "
                                  "public_key_file, not_before, not_after)");
      }
      s = read_key(*kt, true, source, base_dir, e.name, e.keys);
      if (!s) return s;
    }
  }
  if (e.keys.empty())
    return config_error(
        block.at, "client '" + e.name + "' needs public_key, public_key_file or keys = [...]");

  if (const toml::node* role = t.get("role")) {
    const auto* r = role->as_string();
    if (!r || (r->get() != "client" && r->get() != "provider" && r->get() != "agent"))
      return config_error(where(source, role->source()),
                          "role must be \"client\", \"provider\" or \"agent\"");
    e.role = r->get();
    block.states_rights = true;
  }
  if (const toml::node* admin = t.get("admin")) {
    const auto* b = admin->as_boolean();
    if (!b) return config_error(where(source, admin->source()), "admin must be true or false");
    e.admin = b->get();
    block.states_rights = true;
  }
  if (const toml::node* n = t.get("publish")) {
    s = string_list(*n, source, "publish", e.name, e.publish);
    if (!s) return s;
    block.states_rights = true;
  }
  if (const toml::node* n = t.get("subscribe")) {
    s = string_list(*n, source, "subscribe", e.name, e.subscribe);
    if (!s) return s;
    block.states_rights = true;
  }
  return Status::Ok();
}

bool same_rights(const AclEntry& a, const AclEntry& b) {
  auto as_set = [](const std::vector<std::string>& v) {
    return std::set<std::string>(v.begin(), v.end());
  };
  return a.role == b.role && a.admin == b.admin && as_set(a.publish) == as_set(b.publish) &&
         as_set(a.subscribe) == as_set(b.subscribe);
}

}  // namespace

KeyState key_state(const AclKey& key, std::int64_t now_us) {
  if (key.not_before_us != 0 && now_us < key.not_before_us) return KeyState::kNotYetValid;
  if (key.not_after_us != 0 && now_us > key.not_after_us) return KeyState::kExpired;
  return KeyState::kValid;
}

const char* key_state_name(KeyState state) {
  switch (state) {
    case KeyState::kValid:
      return "valid";
    case KeyState::kNotYetValid:
      return "not yet valid";
    case KeyState::kExpired:
      return "expired";
  }
  return "unknown";
}

bool is_client_name(std::string_view name) {
  return !name.empty() && name.find_first_of("/+#{} \t") == std::string_view::npos;
}

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
  const toml::array* arr = nullptr;
  if (Status st = keys_detail::parse_table_array(text, source, "client", root, &arr); !st)
    return st;
  AllowList list;
  if (!arr) return list;  // an empty allow-list admits nobody

  // Pass 1: every block on its own, keys checked for uniqueness as they come.
  struct KeyOwner {
    std::string name;
    std::string at;
  };
  std::unordered_map<std::string, KeyOwner> key_owner;
  std::vector<Block> blocks;
  for (const toml::node& item : *arr) {
    Block block;
    Status s = read_block(*item.as_table(), source, base_dir, block);
    if (!s) return s;
    for (const AclKey& k : block.entry.keys) {
      auto [it, fresh] = key_owner.emplace(k.public_key, KeyOwner{block.entry.name, k.source});
      if (fresh) continue;
      if (it->second.name == block.entry.name)
        return config_error(k.source, "client '" + block.entry.name +
                                          "' lists the same public key twice (also at " +
                                          it->second.at + ")");
      return config_error(k.source, "clients '" + it->second.name + "' (" + it->second.at +
                                        ") and '" + block.entry.name + "' share one public key");
    }
    blocks.push_back(std::move(block));
  }

  // Pass 2: blocks of one name merge; the first block stating rights gives
  // them, every other stating block must agree.
  std::unordered_map<std::string, std::size_t> entry_of;  // name -> index in entries_
  std::vector<const Block*> rights_from;                  // per entry: its stating block
  for (const Block& b : blocks) {
    auto [it, fresh] = entry_of.emplace(b.entry.name, list.entries_.size());
    if (fresh) {
      list.entries_.push_back(b.entry);
      rights_from.push_back(b.states_rights ? &b : nullptr);
      continue;
    }
    AclEntry& merged = list.entries_[it->second];
    merged.keys.insert(merged.keys.end(), b.entry.keys.begin(), b.entry.keys.end());
    if (!b.states_rights) continue;
    const Block*& stated = rights_from[it->second];
    if (!stated) {
      stated = &b;
      merged.role = b.entry.role;
      merged.admin = b.entry.admin;
      merged.publish = b.entry.publish;
      merged.subscribe = b.entry.subscribe;
    } else if (!same_rights(stated->entry, b.entry)) {
      return config_error(b.at, "client '" + b.entry.name + "' states other rights than at " +
                                    stated->at +
                                    " (blocks of one name must state the same role, admin, "
                                    "publish and subscribe, or leave all four out)");
    }
  }
  list.index();
  return list;
}

void AllowList::index() {
  by_key_.clear();
  by_name_.clear();
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    by_name_[entries_[i].name] = i;
    for (std::size_t k = 0; k < entries_[i].keys.size(); ++k)
      by_key_[entries_[i].keys[k].public_key] = {i, k};
  }
}

AllowList::KeyMatch AllowList::by_key(const std::string& z85) const {
  auto it = by_key_.find(z85);
  if (it == by_key_.end()) return {};
  const AclEntry& e = entries_[it->second.first];
  return {&e, &e.keys[it->second.second]};
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
