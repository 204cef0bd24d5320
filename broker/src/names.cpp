// NameTable (names.hpp).
#include "names.hpp"

#include <algorithm>

namespace curvebus::broker {

NameTable::NameTable(const Config& config) : config_(config) {
  get("$SYS");  // owner 0: the broker's own publications
}

NameState& NameTable::get(const std::string& name) {
  auto it = names_.find(name);
  if (it != names_.end()) return it->second;
  NameState& ns = names_[name];
  ns.name = name;
  ns.owner = static_cast<std::uint32_t>(owners_.size());
  owners_.push_back(&ns);
  ns.publish = TokenBucket(config_.publish_rate, config_.publish_burst);
  ns.work = TokenBucket(config_.work_budget, 2.0 * config_.work_budget);
  return ns;
}

NameState* NameTable::find(const std::string& name) {
  auto it = names_.find(name);
  return it == names_.end() ? nullptr : &it->second;
}

void NameTable::charge(std::uint32_t owner, std::int64_t bytes) {
  NameState& ns = *owners_[owner];
  if (bytes >= 0) {
    ns.stored_bytes += static_cast<std::uint64_t>(bytes);
    stored_bytes_ += static_cast<std::uint64_t>(bytes);
  } else {
    const auto credit = static_cast<std::uint64_t>(-bytes);
    ns.stored_bytes -= std::min(ns.stored_bytes, credit);
    stored_bytes_ -= std::min(stored_bytes_, credit);
  }
}

}  // namespace curvebus::broker
