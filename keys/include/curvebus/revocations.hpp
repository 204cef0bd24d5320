// Revocations that outlive a broker restart and an allow-list reload.
//
// An admin revokes a key (one key of a name) or a whole name; the broker keeps
// the list in a TOML file next to its state and refuses a revoked key or name
// until an admin lifts the revocation.  The file is written by the broker and
// meant to be read (and, carefully, edited) by people:
//
//   # curvebus revocations: keys and names the broker refuses ...
//   [[revoked]]
//   key = "<Z85 public key, 40 characters>"    # or: name = "laptop"
//   by = "ops"                                 # who revoked it
//   at = 2026-03-01T12:00:00Z                  # when (offset date-time)
//   reason = "laptop stolen"
//
// Each [[revoked]] table holds exactly one of `key` (a valid Z85 public key)
// or `name` (a valid client name); `by`, `at` and `reason` are optional.
// Anything else -- an unknown field, a malformed key, a duplicate entry -- is
// an error naming file:line, so a hand-edited typo can never silently lift a
// revocation.  `at` accepts the same forms as the allow-list's not_after.
//
// Thread safety: a RevocationList is a plain value; concurrent const use is
// safe.  save_file() does not lock the file: one broker owns it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "curvebus/acl.hpp"
#include "curvebus/status.hpp"

namespace curvebus {

struct Revocation {
  enum class Kind { kKey, kName };
  Kind kind = Kind::kKey;
  std::string value;       // the Z85 public key, or the name
  std::string by;          // who revoked it (free text, usually an admin's name)
  std::int64_t at_us = 0;  // when, microseconds since the Unix epoch; 0 = unknown
  std::string reason;      // free text
};

class RevocationList {
 public:
  // Reads the file.  A missing file is an empty list, not an error; any other
  // failure to read it, and every malformed entry, is an error naming
  // file:line.
  static Result<RevocationList> load_file(const std::string& path);
  static Result<RevocationList> parse(std::string_view text, const std::string& source_name);

  // Writes the whole list atomically: a temporary file in the same directory
  // (mode 0600), fsync, rename over `path`, fsync of the directory.  Whatever
  // happens, `path` holds the old or the new list in full, never a mix, and
  // no temporary file is left; an error after the rename (the directory
  // fsync) means the new list is in place but may not survive a power cut.
  // `by` and `reason` are written as TOML strings (bytes that are not UTF-8
  // become U+FFFD, so the file always loads again).
  Status save_file(const std::string& path) const;

  // The text save_file() writes.
  std::string to_toml() const;

  bool key_revoked(const std::string& z85) const { return keys_.count(z85) != 0; }
  bool name_revoked(const std::string& name) const { return names_.count(name) != 0; }

  // Appends `r`.  False (and nothing changes) when an entry of the same kind
  // and value is present, or when the value is not a Z85 key (kKey) or not a
  // client name (kName) -- the file must stay loadable.
  bool add(Revocation r);
  // Removes the entry of that kind and value.  False if there is none.
  bool remove(Revocation::Kind kind, const std::string& value);

  // In the order they were added (or appear in the file).
  const std::vector<Revocation>& entries() const { return entries_; }

 private:
  std::vector<Revocation> entries_;
  std::unordered_set<std::string> keys_;
  std::unordered_set<std::string> names_;
};

// Turns an admin's argument into a Z85 public key.  `key_or_fingerprint` is a
// Z85 public key (returned as is, known or not, so a key can be revoked before
// it is ever listed) or a fingerprint as key_fingerprint() prints it ("b2:" and
// 16 hex digits, either case), looked up among the allow-list's keys and the
// revoked keys (so a revoked key that left the allow-list can still be lifted).
// Errors: code "INVALID" for text that is neither, "NOT_FOUND" for an unknown
// fingerprint, "AMBIGUOUS" when it matches several keys (the message lists
// their names and asks for the full key).
Result<std::string> resolve_key(const AllowList& acl, const RevocationList& revoked,
                                std::string_view key_or_fingerprint);

}  // namespace curvebus
