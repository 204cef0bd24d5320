// NameTable: what every session of one allow-list name shares — its publish
// rate, its work budget, its session count — and the storage accounting of
// the broker: the bytes of history and retained values each name is charged.
//
// Ownership and lifetime: a NameState is created on first use and never
// erased (bounded by the names the allow-list ever held), so a NameState& and
// an owner index stay valid for the table's life.  Owner 0 is "$SYS", the
// broker's own publications; the constructor creates it.
//
// Invariant: stored_bytes() is the sum of every name's stored_bytes: what
// charge() added minus what it credited back; a credit never takes a name or
// the total below zero.
//
// Thread: the routing thread only.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "curvebus/broker/config.hpp"
#include "curvebus/broker/rate_limiter.hpp"

namespace curvebus::broker {

struct NameState {
  std::uint32_t owner = 0;  // index for the storage accounting (NameTable::owner())
  std::string name;
  std::uint32_t sessions = 0;      // live sessions of this name
  TokenBucket publish;             // publications per second, all sessions together
  TokenBucket work;                // work units (about a microsecond each) per second
  std::uint64_t stored_bytes = 0;  // history + retained values charged to this name
};

class NameTable {
 public:
  // Rates and budgets come from `config` (publish_rate, publish_burst,
  // work_budget), which must outlive the table.
  explicit NameTable(const Config& config);
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;

  // The state of `name`, created when new.
  NameState& get(const std::string& name);
  // The state of `name`, or null when it was never used.
  NameState* find(const std::string& name);
  NameState& owner(std::uint32_t index) { return *owners_[index]; }
  NameState& sys() { return *owners_[0]; }

  // Charges `bytes` (credits when negative) to `owner` and to the total.
  void charge(std::uint32_t owner, std::int64_t bytes);
  std::uint64_t stored_bytes() const { return stored_bytes_; }

 private:
  const Config& config_;
  std::unordered_map<std::string, NameState> names_;  // node-based: addresses are stable
  std::vector<NameState*> owners_;
  std::uint64_t stored_bytes_ = 0;
};

}  // namespace curvebus::broker
