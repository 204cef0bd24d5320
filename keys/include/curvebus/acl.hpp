// The allow-list and access control list of a broker.
//
// One TOML file names every client that may connect: its public key and its
// rights.  Example (see docs/ for the full reference):
//
//   [[client]]
//   name = "laptop"
//   public_key = "Z85... (40 chars)"      # or public_key_file = "keys/laptop"
//   role = "client"                       # client | provider | agent
//   admin = false
//   publish = ["robot/+/cmd"]
//   subscribe = ["robot/#", "$SYS/presence/#"]
//
// Patterns use '+' and '#' and may contain "{name}", replaced by the client's
// own name, so one rule serves a fleet ("robot/{name}/#").  Rights are
// allow-only: what no rule grants is denied.  A subscription is allowed when
// one subscribe rule covers every topic the requested pattern can match.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "curvebus/status.hpp"

namespace curvebus {

struct AclEntry {
  std::string name;
  std::string public_key;  // Z85
  std::string role = "client";
  bool admin = false;
  std::vector<std::string> publish;    // patterns, {name} already expanded
  std::vector<std::string> subscribe;  // patterns, {name} already expanded
};

class AllowList {
 public:
  // Parses the TOML file; errors name the file and line.  Relative
  // public_key_file paths are taken from the file's directory.
  static Result<AllowList> load_file(const std::string& path);
  static Result<AllowList> parse(std::string_view text, const std::string& source_name,
                                 const std::string& base_dir);

  const AclEntry* by_key(const std::string& public_key) const;
  const AclEntry* by_name(const std::string& name) const;
  const std::vector<AclEntry>& entries() const { return entries_; }

  // Removes a name from the list (live revocation).  False if unknown.
  bool remove(const std::string& name);

 private:
  void index();
  std::vector<AclEntry> entries_;
  std::unordered_map<std::string, std::size_t> by_key_;
  std::unordered_map<std::string, std::size_t> by_name_;
};

// True when `entry` may publish on `topic` (a valid topic).
bool may_publish(const AclEntry& entry, std::string_view topic);

// True when `entry` may subscribe with `pattern` (a valid pattern).
bool may_subscribe(const AclEntry& entry, std::string_view pattern);

// True when every topic matched by `requested` is matched by `allowed`
// (both valid patterns).
bool pattern_covers(std::string_view allowed, std::string_view requested);

// Replaces every "{name}" in `pattern` with `name`.
std::string expand_name(std::string_view pattern, std::string_view name);

}  // namespace curvebus
