// The allow-list and access control list of a broker.
//
// One TOML file names every client that may connect: its public keys and its
// rights.  A name groups one or more keys (rotation with overlap); the rights
// belong to the name and are shared by all its keys; each key has its own
// validity.  Example (see docs/ for the full reference):
//
//   [[client]]
//   name = "laptop"
//   public_key = "Z85... (40 chars)"      # or public_key_file = "keys/laptop"
//   not_after = 2027-01-01T00:00:00Z      # optional validity of that key
//   role = "client"                       # client | provider | agent
//   admin = false
//   publish = ["robot/+/cmd"]
//   subscribe = ["robot/#", "$SYS/presence/#"]
//
// Keys.  A [[client]] block declares one or more keys:
//   * `public_key = "<Z85>"` or `public_key_file = "<certificate>"` (not both;
//     a relative path is taken from the allow-list's directory), with optional
//     `not_before` / `not_after` in the same block applying to that key;
//   * `keys = [ { public_key = "...", not_after = 2027-01-01T00:00:00Z },
//               { public_key_file = "keys/laptop-2027", not_before = 2026-12-01 } ]`,
//     each element with exactly one of public_key / public_key_file and its own
//     optional not_before / not_after.  `keys` may be combined with a
//     public_key / public_key_file in the same block; a block's own
//     not_before / not_after then still apply only to its public_key(_file).
//   Every block declares at least one key.
//
// Validity.  not_before / not_after accept a TOML offset date-time
// (2027-01-01T00:00:00Z, 2027-01-01T02:00:00+02:00), a TOML local date
// (2027-01-01, meaning midnight UTC) or a string holding an RFC 3339 date-time
// with offset or a full-date ("2027-01-01T00:00:00Z", "2027-01-01").  Local
// date-times and times (no offset) are errors, as are instants at or before
// 1970-01-01T00:00:00Z and not_after before not_before.  Both bounds are
// inclusive, as in X.509: a key is valid from not_before through not_after.
//
// Several blocks under one name (how keys are rotated: add a second block with
// the new key, reload, move the user over, remove the old block).  Their keys
// are merged into one entry.  Rule for the rights: a block that sets any of
// role, admin, publish or subscribe states the name's rights in full (what it
// leaves out takes the default: role "client", admin false, no patterns); a
// block that sets none of them is "keys only" and takes the name's rights from
// the stating blocks.  Every stating block of a name must state the same
// rights (role, admin, and publish and subscribe compared as sets after
// {name} expansion); otherwise the file is refused with an error naming both
// blocks.  A name whose blocks are all keys-only has the default rights
// (connect, nothing to publish or subscribe), exactly as a single block
// without rights always had.
//
// One key belongs to one name: the same key under two names, or twice under
// one name, is an error naming both places.  Every error names file:line.
//
// Patterns use '+' and '#' and may contain "{name}", replaced by the client's
// own name, so one rule serves a fleet ("robot/{name}/#").  Rights are
// allow-only: what no rule grants is denied.  A subscription is allowed when
// one subscribe rule covers every topic the requested pattern can match.
//
// Thread safety: an AllowList is a plain value; concurrent const use is safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "curvebus/status.hpp"

namespace curvebus {

// One public key of a name, with its own validity.
struct AclKey {
  std::string public_key;          // Z85, 40 chars
  std::int64_t not_before_us = 0;  // 0 = no lower bound (microseconds since the Unix epoch)
  std::int64_t not_after_us = 0;   // 0 = no expiry
  std::string source;              // "file:line" where it was declared (for messages)
};

// One name: the rights shared by all its keys.
struct AclEntry {
  std::string name;
  std::string role = "client";
  bool admin = false;
  std::vector<std::string> publish;    // patterns, {name} already expanded
  std::vector<std::string> subscribe;  // patterns, {name} already expanded
  std::vector<AclKey> keys;            // at least one, in declaration order
};

enum class KeyState { kValid, kNotYetValid, kExpired };

// kNotYetValid when now_us < not_before_us, kExpired when not_after_us != 0 and
// now_us > not_after_us, else kValid (both bounds inclusive; 0 = unbounded).
KeyState key_state(const AclKey& key, std::int64_t now_us);

// "valid", "not yet valid" or "expired" (for messages).
const char* key_state_name(KeyState state);

class AllowList {
 public:
  // Parses the TOML file; errors name the file and line.  Relative
  // public_key_file paths are taken from the file's directory.
  static Result<AllowList> load_file(const std::string& path);
  static Result<AllowList> parse(std::string_view text, const std::string& source_name,
                                 const std::string& base_dir);

  // The name a key belongs to and the key itself (with its validity), or
  // {nullptr, nullptr} for an unknown key.  Validity is not checked here: use
  // key_state(*match.key, now).  Pointers stay valid until the list changes.
  struct KeyMatch {
    const AclEntry* entry = nullptr;
    const AclKey* key = nullptr;
  };
  KeyMatch by_key(const std::string& z85) const;
  const AclEntry* by_name(const std::string& name) const;
  // Names in the order they first appear in the file.
  const std::vector<AclEntry>& entries() const { return entries_; }
  // Keys over all names.
  std::size_t key_count() const { return by_key_.size(); }

  // Removes a name and all its keys from the list.  False if unknown.
  bool remove(const std::string& name);

 private:
  void index();
  std::vector<AclEntry> entries_;
  std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> by_key_;  // entry, key
  std::unordered_map<std::string, std::size_t> by_name_;
};

// True when `name` may name a client: non-empty, no '/', '+', '#', braces,
// spaces or tabs.
bool is_client_name(std::string_view name);

// An instant as RFC 3339 UTC text: "2027-01-01T00:00:00Z", with ".ffffff"
// only when there are microseconds.
std::string format_utc(std::int64_t us_since_epoch);

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
