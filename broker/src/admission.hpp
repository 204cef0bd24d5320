// Admission: who may connect, and as whom — the allow-list (names, their
// keys with validity, their rights) and the revocations (by name or by key),
// read from their files at start and again on ADMIN RELOAD.
//
// The identity is the key a connection proved in its CURVE handshake: the
// name, role and rights are looked up from the key, never taken from what a
// peer says.  refusal() is the one check of "may this key hold a session
// now", used by the ZAP handler, by REGISTER and when a reload re-checks
// every live session.
//
// Ownership: a value owned by the Core; references into acl() (entries,
// keys) stay valid until the next load()/reload().  Config must outlive it.
// Thread: the routing thread only.
#pragma once

#include <cstdint>
#include <string>

#include "curvebus.pb.h"
#include "curvebus/acl.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/revocations.hpp"
#include "curvebus/status.hpp"

namespace curvebus::broker {

class Admission {
 public:
  explicit Admission(const Config& config) : config_(config) {}

  // Reads acl_path and, when configured, revocations_file.  On an error
  // (naming the file and line) nothing changes.
  Status load();
  // ADMIN RELOAD: the allow-list, then the revocations (a hand-edited list
  // is picked up too).  A broken allow-list changes nothing; a broken
  // revocation list keeps the current one (the new allow-list stays).
  Status reload();

  // Why `key` may not hold a session at `now_us` — unknown, belonging to
  // another name than `name` (when `name` is not empty), revoked by key or
  // by name, outside its validity — with the ERROR code to answer (REVOKED
  // or KEY_EXPIRED) in *code when given; empty when it may.
  std::string refusal(const std::string& key, const std::string& name, std::int64_t now_us,
                      v1::ErrorCode* code) const;

  const AllowList& acl() const { return acl_; }
  RevocationList& revocations() { return revocations_; }
  const RevocationList& revocations() const { return revocations_; }
  // Writes the revocations to revocations_file (an error when none is set:
  // a revocation then lasts until the broker stops).
  Status save_revocations() const;

 private:
  const Config& config_;
  AllowList acl_;
  RevocationList revocations_;
};

}  // namespace curvebus::broker
