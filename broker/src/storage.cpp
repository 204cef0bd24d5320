// Storage accounting: what the broker keeps of publications (history and
// retained values) is charged to the name that published it, against a
// per-name quota and a global budget; idle topics are forgotten.
//
// Every kept buffer (a history entry, a retained value) carries its owner;
// its bytes are charged when kept and credited back when evicted, replaced
// or freed, so `stored_bytes_` is exactly what the tables hold (plus a fixed
// overhead per topic charged to the name that created it).  A publication
// that would take its name over name_quota_bytes, or the broker over
// memory_budget_bytes, is refused with ERROR QUOTA before anything changes.
// The broker's own $SYS publications are counted but never refused.
#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {
constexpr std::size_t kSweepPerTurn = 2000;  // topics looked at per sweep
constexpr std::int64_t kSweepEveryMs = 1000;
}  // namespace

NameState& Core::name_state(const std::string& name) {
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

void Core::charge(std::uint32_t owner, std::int64_t bytes) {
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

Topic* Core::create_topic(const std::string& name, NameState& creator) {
  if (topics_.size() >= config_.max_topics) return nullptr;
  auto [it, fresh] =
      topics_.emplace(name, std::make_unique<Topic>(config_.history_depth, config_.history_bytes));
  Topic* t = it->second.get();
  if (!fresh) return t;
  t->creator = creator.owner;
  t->last_active_ms = now_ms();
  charge(creator.owner, kTopicOverhead + static_cast<std::int64_t>(2 * name.size()));
  directory_[name].topic = t;
  return t;
}

void Core::free_topic(const std::string& name) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return;
  Topic& t = *it->second;
  t.history.for_each([&](const StoredPublication& p) {
    charge(p.owner, -static_cast<std::int64_t>(p.encoded ? p.encoded->size() : 0));
  });
  if (t.retained) {
    charge(t.retained_owner, -static_cast<std::int64_t>(t.retained->size()));
    persist_retained(name, nullptr);
  }
  charge(t.creator, -(kTopicOverhead + static_cast<std::int64_t>(2 * name.size())));
  if (auto d = directory_.find(name); d != directory_.end()) {
    d->second.topic = nullptr;
    if (d->second.providers.empty()) directory_.erase(d);
  }
  topics_.erase(it);
  ++counters_.topics_freed;
}

void Core::sweep_topics(std::int64_t now) {
  next_sweep_ms_ = now + kSweepEveryMs;
  const std::int64_t idle_ms = static_cast<std::int64_t>(config_.topic_idle_s) * 1000;
  std::vector<std::string> idle;
  auto it = directory_.upper_bound(sweep_cursor_);
  for (std::size_t seen = 0; seen < kSweepPerTurn; ++seen, ++it) {
    if (it == directory_.end()) {
      sweep_cursor_.clear();
      break;
    }
    sweep_cursor_ = it->first;
    const Topic* t = it->second.topic;
    if (!t || t->retained || now - t->last_active_ms < idle_ms) continue;
    if (!it->first.empty() && it->first.front() == '$') continue;  // the broker's own
    std::vector<SubscriberId> subs;
    tree_.match(it->first, subs);
    if (subs.empty()) idle.push_back(it->first);
  }
  for (const auto& name : idle) free_topic(name);
  if (!idle.empty()) spdlog::debug("freed {} idle topics", idle.size());
}

}  // namespace curvebus::broker
