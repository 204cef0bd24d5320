// TopicTable (topic_table.hpp): publish(), storage accounting, the
// directory, retained values, the idle-topic sweep.
#include "topic_table.hpp"

#include <algorithm>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "curvebus/codec.hpp"

namespace curvebus::broker {

namespace {
constexpr std::size_t kMaxPublishersListed = 16;
constexpr std::int64_t kRateWindowMs = 10000;
constexpr std::size_t kSweepPerCall = 2000;  // directory entries looked at per sweep
}  // namespace

std::string literal_prefix(std::string_view pattern) {
  std::string out;
  std::size_t start = 0;
  while (start <= pattern.size()) {
    std::size_t end = pattern.find('/', start);
    if (end == std::string_view::npos) end = pattern.size();
    const std::string_view level = pattern.substr(start, end - start);
    if (level == "+" || level == "#") {
      // "a/b/#" also matches "a/b": stop before the separator.
      if (!out.empty() && out.back() == '/') out.pop_back();
      return out;
    }
    out.append(level);
    if (end == pattern.size()) return out;
    out.push_back('/');
    start = end + 1;
  }
  return out;
}

TopicTable::TopicTable(const Config& config, NameTable& names, Counters& counters)
    : config_(config), names_(names), counters_(counters) {
  rules_.max_bytes = config_.max_topic_bytes;
  rules_.max_levels = config_.max_topic_levels;
}

const Topic* TopicTable::find(const std::string& topic) const {
  auto it = topics_.find(topic);
  return it == topics_.end() ? nullptr : it->second.get();
}

Topic* TopicTable::create(const std::string& name, NameState& creator, std::int64_t now_ms) {
  if (topics_.size() >= config_.max_topics) return nullptr;
  auto [it, fresh] =
      topics_.emplace(name, std::make_unique<Topic>(config_.history_depth, config_.history_bytes));
  Topic* t = it->second.get();
  if (!fresh) return t;
  t->creator = creator.owner;
  t->last_active_ms = now_ms;
  names_.charge(creator.owner, kTopicOverhead + static_cast<std::int64_t>(2 * name.size()));
  directory_[name].topic = t;
  return t;
}

void TopicTable::free(const std::string& name) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return;
  Topic& t = *it->second;
  t.history.for_each([&](const StoredPublication& p) {
    names_.charge(p.owner, -static_cast<std::int64_t>(p.encoded ? p.encoded->size() : 0));
  });
  if (t.retained) {
    names_.charge(t.retained_owner, -static_cast<std::int64_t>(t.retained->size()));
    persist(name, nullptr);
  }
  names_.charge(t.creator, -(kTopicOverhead + static_cast<std::int64_t>(2 * name.size())));
  if (auto d = directory_.find(name); d != directory_.end()) {
    d->second.topic = nullptr;
    if (d->second.providers.empty()) directory_.erase(d);
  }
  topics_.erase(it);
  ++counters_.topics_freed;
}

void TopicTable::persist(const std::string& topic, const Bytes& value) {
  // $SYS values (presence, stats) are rebuilt by the broker, not kept on disk.
  if (log_ && !topic.empty() && topic.front() != '$') log_->put(topic, value);
}

TopicTable::Published TopicTable::publish(const std::string& topic_name, std::string_view payload,
                                          NameState& publisher, bool retain,
                                          std::string_view content_type, Subscribers& to,
                                          std::int64_t now_ms, std::int64_t now_us) {
  Published result;
  auto it = topics_.find(topic_name);
  Topic* tp = it == topics_.end() ? nullptr : it->second.get();

  // Encoded once, straight from the fields; every subscriber queue and the
  // history get these bytes.
  DeliverView d;
  d.topic = topic_name;
  d.payload = payload;
  d.seq = (tp ? tp->seq : 0) + 1;
  d.publisher = publisher.name;
  d.timestamp_us = now_us;
  d.content_type = content_type;
  auto encoded = std::make_shared<std::string>();
  encode_deliver(d, *encoded);

  // Storage check before anything changes: what this publication adds to the
  // history (and the retained value) minus what it evicts.
  const bool keep_retained = retain && !payload.empty();
  const std::int64_t retained_bytes =
      keep_retained ? static_cast<std::int64_t>(encoded->size()) + 2 : 0;  // + the retained flag
  if (publisher.owner != 0) {
    const EvictionPlan plan =
        tp ? tp->history.plan_add(encoded->size(), publisher.owner) : EvictionPlan{};
    std::int64_t own_delta = static_cast<std::int64_t>(encoded->size()) + retained_bytes -
                             static_cast<std::int64_t>(plan.evicted_owner_bytes);
    std::int64_t all_delta = static_cast<std::int64_t>(encoded->size()) + retained_bytes -
                             static_cast<std::int64_t>(plan.evicted_bytes);
    if (tp && tp->retained && retain) {
      const auto old = static_cast<std::int64_t>(tp->retained->size());
      all_delta -= old;
      if (tp->retained_owner == publisher.owner) own_delta -= old;
    }
    if (!tp) {
      const std::int64_t overhead =
          kTopicOverhead + 2 * static_cast<std::int64_t>(topic_name.size());
      own_delta += overhead;
      all_delta += overhead;
    }
    if (own_delta > 0 &&
        publisher.stored_bytes + static_cast<std::uint64_t>(own_delta) > config_.name_quota_bytes) {
      result.refusal = Refusal::kQuota;
      return result;
    }
    if (all_delta > 0 && names_.stored_bytes() + static_cast<std::uint64_t>(all_delta) >
                             config_.memory_budget_bytes) {
      result.refusal = Refusal::kBudget;
      return result;
    }
  }
  if (!tp) {
    tp = create(topic_name, publisher, now_ms);
    if (!tp) {
      result.refusal = Refusal::kTooManyTopics;
      return result;
    }
  }
  Topic& t = *tp;
  result.seq = ++t.seq;
  ++t.messages;
  ++counters_.publications;
  t.last_publish_us = now_us;
  t.last_active_ms = now_ms;
  if (now_ms - t.window_start_ms >= kRateWindowMs) {
    t.rate = static_cast<double>(t.window_count) * 1000.0 /
             static_cast<double>(std::max<std::int64_t>(kRateWindowMs, now_ms - t.window_start_ms));
    t.window_start_ms = now_ms;
    t.window_count = 0;
  }
  ++t.window_count;
  if (t.publishers.size() < kMaxPublishersListed &&
      std::find(t.publishers.begin(), t.publishers.end(), publisher.name) == t.publishers.end())
    t.publishers.push_back(publisher.name);

  Bytes bytes = std::move(encoded);
  if (retain) {
    if (t.retained) names_.charge(t.retained_owner, -static_cast<std::int64_t>(t.retained->size()));
    // An empty retained payload clears the retained value (as in MQTT).
    if (payload.empty()) {
      t.retained.reset();
    } else {
      d.retained = true;
      auto kept = std::make_shared<std::string>();
      encode_deliver(d, *kept);
      t.retained = std::move(kept);
      t.retained_owner = publisher.owner;
      names_.charge(publisher.owner, static_cast<std::int64_t>(t.retained->size()));
    }
    persist(topic_name, t.retained);
  }
  names_.charge(publisher.owner, static_cast<std::int64_t>(bytes->size()));
  t.history.add({result.seq, now_us, bytes, publisher.owner}, [&](const StoredPublication& p) {
    names_.charge(p.owner, -static_cast<std::int64_t>(p.encoded ? p.encoded->size() : 0));
  });

  if (t.subscribers_generation != tree_.generation()) {
    tree_.match(topic_name, t.subscribers);
    t.subscribers.shrink_to_fit();
    t.subscribers_generation = tree_.generation();
  }
  for (SubscriberId id : t.subscribers) {
    switch (to.deliver(id, *bytes)) {
      case Delivery::kQueued:
        ++result.delivered;
        break;
      case Delivery::kDropped:
        ++result.dropped;
        break;
      case Delivery::kAbsent:
        break;
    }
  }
  return result;
}

std::size_t TopicTable::subscriber_count(const std::string& topic) const {
  std::vector<SubscriberId> subs;
  tree_.match(topic, subs);
  return subs.size();
}

void TopicTable::add_provider(const std::string& topic, const std::string& name) {
  ++directory_[topic].providers[name];
}

void TopicTable::remove_provider(const std::string& topic, const std::string& name) {
  auto it = directory_.find(topic);
  if (it == directory_.end()) return;
  auto p = it->second.providers.find(name);
  if (p != it->second.providers.end() && --p->second == 0) it->second.providers.erase(p);
  if (!it->second.topic && it->second.providers.empty()) directory_.erase(it);
}

TopicTable::Scan TopicTable::scan_retained(const std::vector<std::string>& patterns,
                                           std::size_t max_scan,
                                           const std::function<void(const Topic&)>& each) const {
  // From the ordered directory, starting at each pattern's literal prefix.
  Scan scan;
  std::unordered_set<const Topic*> done;  // overlapping patterns: each value once
  for (const auto& pattern : patterns) {
    const std::string prefix = literal_prefix(pattern);
    for (auto it = directory_.lower_bound(prefix);
         it != directory_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (scan.visited >= max_scan) {
        scan.capped = true;
        return scan;
      }
      ++scan.visited;
      const Topic* t = it->second.topic;
      if (!t || !t->retained || !topic_matches(pattern, it->first)) continue;
      if (!done.insert(t).second) continue;
      each(*t);
      ++scan.found;
    }
  }
  return scan;
}

void TopicTable::describe(const std::string& name, const DirEntry& dir, v1::TopicInfo& info) const {
  info.set_topic(name);
  if (const Topic* t = dir.topic) {
    for (const auto& p : t->publishers) info.add_publishers(p);
    info.set_last_seq(t->seq);
    info.set_retained(t->retained != nullptr);
    info.set_last_publish_us(t->last_publish_us);
    info.set_rate(t->rate);
    info.set_messages(t->messages);
  }
  for (const auto& [provider, count] : dir.providers) {
    bool listed = false;
    for (const auto& p : info.publishers()) listed = listed || p == provider;
    if (!listed) info.add_publishers(provider);
  }
  info.set_subscribers(static_cast<std::uint32_t>(subscriber_count(name)));
}

void TopicTable::sweep(std::int64_t now_ms) {
  const std::int64_t idle_ms = static_cast<std::int64_t>(config_.topic_idle_s) * 1000;
  std::vector<std::string> idle;
  auto it = directory_.upper_bound(sweep_cursor_);
  for (std::size_t seen = 0; seen < kSweepPerCall; ++seen, ++it) {
    if (it == directory_.end()) {
      sweep_cursor_.clear();
      break;
    }
    sweep_cursor_ = it->first;
    const Topic* t = it->second.topic;
    if (!t || t->retained || now_ms - t->last_active_ms < idle_ms) continue;
    if (!it->first.empty() && it->first.front() == '$') continue;  // the broker's own
    if (subscriber_count(it->first) == 0) idle.push_back(it->first);
  }
  for (const auto& name : idle) free(name);
  if (!idle.empty()) spdlog::debug("freed {} idle topics", idle.size());
}

std::size_t TopicTable::restore(const RetainedLog::Loaded& loaded, std::int64_t now_ms,
                                std::size_t* skipped) {
  std::size_t restored = 0, bad = 0;
  v1::Frame frame;
  for (const auto& [topic, value] : loaded.values) {
    if (!value || !decode_frame(value->data(), value->size(), frame) || frame.ops_size() != 1 ||
        !frame.ops(0).has_deliver()) {
      ++bad;
      continue;
    }
    const v1::Deliver& d = frame.ops(0).deliver();
    if (topic.empty() || topic.front() == '$' || d.topic() != topic ||
        !check_topic(topic, rules_).empty() || d.payload().empty() ||
        d.payload().size() > config_.max_message_bytes || topics_.count(topic)) {
      ++bad;
      continue;
    }
    // Charged to the name that published it when that name is known, so the
    // quotas hold across a restart.
    NameState& owner = d.publisher().empty() ? names_.sys() : names_.get(d.publisher());
    Topic* t = create(topic, owner, now_ms);
    if (!t) {
      ++bad;
      continue;
    }
    t->seq = d.seq();
    t->last_publish_us = d.timestamp_us();
    t->retained = value;
    t->retained_owner = owner.owner;
    names_.charge(owner.owner, static_cast<std::int64_t>(value->size()));  // the retained value
    names_.charge(owner.owner, static_cast<std::int64_t>(value->size()));  // and its history entry
    t->history.add({d.seq(), d.timestamp_us(), value, owner.owner});
    if (!d.publisher().empty()) t->publishers.push_back(d.publisher());
    ++restored;
  }
  if (skipped) *skipped += bad;
  return restored;
}

}  // namespace curvebus::broker
