// PUBLISH: check, then route: one DELIVER encoding fanned out to every
// matching live session, kept in the topic's history (and as its retained
// value when asked).
#include <algorithm>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {
constexpr std::size_t kMaxPublishersListed = 16;
constexpr std::int64_t kRateErrorEveryMs = 100;
constexpr std::int64_t kRateWindowMs = 10000;
}  // namespace

void Core::handle_publish(Session& s, const v1::Publish& req) {
  PublishView v;
  v.request_id = req.request_id();
  v.topic = req.topic();
  v.payload = req.payload();
  v.ack = req.ack();
  v.retain = req.retain();
  v.content_type = req.content_type();
  handle_publish(s, v);
}

void Core::handle_publish(Session& s, const PublishView& req) {
  const std::uint64_t rid = req.request_id;
  // The topic as a string (for the maps and the error replies); the scratch
  // buffer keeps its capacity, so the hot path does not allocate for it.
  topic_scratch_.assign(req.topic.data(), req.topic.size());
  const std::string& topic = topic_scratch_;
  const std::int64_t now = now_ms();
  op_work_ += 1;
  if (!s.ns->publish.take(now)) {
    // Coalesced: at most one ERROR per ~100 ms per session, carrying the count
    // (report_refusals() sends what is still owed).
    ++counters_.rate_limited;
    ++s.rate_refused_pending;
    if (now - s.rate_error_ms >= kRateErrorEveryMs)
      report_refusals_of(s, now, rid);
    else
      refusals_owed_.insert(s.id);
    return;
  }
  if (req.payload.size() > config_.max_message_bytes) {
    ++counters_.oversized;
    std::uint64_t suppressed = 0;
    if (log_bad_input_.allow(suppressed))
      spdlog::warn("oversized publish name={} bytes={} limit={}{}", s.name, req.payload.size(),
                   config_.max_message_bytes,
                   suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    send_error(s, v1::ERROR_TOO_LARGE, rid,
               "payload of " + std::to_string(req.payload.size()) + " bytes is over the " +
                   std::to_string(config_.max_message_bytes) + "-byte limit",
               is_valid_utf8(topic) ? topic : std::string(), "publish");
    return;
  }
  // A topic the broker already holds was checked when it was first published.
  if (std::string why = topics_.count(topic) ? std::string() : check_topic(topic, topic_rules_);
      !why.empty()) {
    send_error(s, v1::ERROR_INVALID_TOPIC, rid, why, is_valid_utf8(topic) ? topic : std::string(),
               "publish");
    return;
  }
  if (!may_publish(s.rights, topic)) {
    deny(s, "publish", topic, rid,
         "the ACL of '" + s.name + "' does not allow publishing on this topic");
    return;
  }
  RouteResult result;
  switch (route(topic, req.payload, *s.ns, req.retain, req.content_type, result)) {
    case RouteStatus::kOk:
      break;
    case RouteStatus::kTooManyTopics:
      send_error(s, v1::ERROR_RESOURCE_EXHAUSTED, rid,
                 "the broker keeps at most " + std::to_string(config_.max_topics) + " topics",
                 topic, "publish");
      return;
    case RouteStatus::kQuota:
    case RouteStatus::kBudget: {
      ++counters_.quota_refused;
      const bool own = s.ns->stored_bytes + req.payload.size() > config_.name_quota_bytes;
      audit("quota", s.name,
            {{"name", s.name},
             {"fp", s.fingerprint},
             {"topic", topic},
             {"stored", std::to_string(s.ns->stored_bytes), true},
             {"limit", own ? "name_quota_bytes" : "memory_budget_bytes"}});
      send_error(s, v1::ERROR_QUOTA, rid,
                 own ? "'" + s.name + "' holds " + std::to_string(s.ns->stored_bytes) +
                           " bytes of history and retained values (name_quota_bytes " +
                           std::to_string(config_.name_quota_bytes) + ")"
                     : "the broker's memory budget for history and retained values (" +
                           std::to_string(config_.memory_budget_bytes) + " bytes) is spent",
                 topic, "publish");
      return;
    }
  }
  op_work_ += result.delivered;
  if (req.ack) {
    v1::Op op;
    auto* ack = op.mutable_puback();
    ack->set_request_id(rid);
    ack->set_topic(topic);
    ack->set_seq(result.seq);
    ack->set_delivered(result.delivered);
    ack->set_dropped(result.dropped);
    send_control(s, op);
  }
}

Core::RouteStatus Core::route(const std::string& topic_name, std::string_view payload,
                              NameState& publisher, bool retain, std::string_view content_type,
                              RouteResult& result) {
  auto it = topics_.find(topic_name);
  Topic* tp = it == topics_.end() ? nullptr : it->second.get();
  const std::int64_t at_us = now_us();
  const std::int64_t at_ms = now_ms();

  // Encoded once, straight from the fields; every subscriber queue and the
  // history share these bytes.
  DeliverView d;
  d.topic = topic_name;
  d.payload = payload;
  d.seq = (tp ? tp->seq : 0) + 1;
  d.publisher = publisher.name;
  d.timestamp_us = at_us;
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
        publisher.stored_bytes + static_cast<std::uint64_t>(own_delta) > config_.name_quota_bytes)
      return RouteStatus::kQuota;
    if (all_delta > 0 &&
        stored_bytes_ + static_cast<std::uint64_t>(all_delta) > config_.memory_budget_bytes)
      return RouteStatus::kBudget;
  }
  if (!tp) {
    tp = create_topic(topic_name, publisher);
    if (!tp) return RouteStatus::kTooManyTopics;
  }
  Topic& t = *tp;
  result.seq = ++t.seq;
  ++t.messages;
  ++counters_.publications;
  t.last_publish_us = at_us;
  t.last_active_ms = at_ms;
  if (at_ms - t.window_start_ms >= kRateWindowMs) {
    t.rate = static_cast<double>(t.window_count) * 1000.0 /
             static_cast<double>(std::max<std::int64_t>(kRateWindowMs, at_ms - t.window_start_ms));
    t.window_start_ms = at_ms;
    t.window_count = 0;
  }
  ++t.window_count;
  if (t.publishers.size() < kMaxPublishersListed &&
      std::find(t.publishers.begin(), t.publishers.end(), publisher.name) == t.publishers.end())
    t.publishers.push_back(publisher.name);

  Bytes bytes = std::move(encoded);
  if (retain) {
    if (t.retained) charge(t.retained_owner, -static_cast<std::int64_t>(t.retained->size()));
    // An empty retained payload clears the retained value (as in MQTT).
    if (payload.empty()) {
      t.retained.reset();
    } else {
      d.retained = true;
      auto kept = std::make_shared<std::string>();
      encode_deliver(d, *kept);
      t.retained = std::move(kept);
      t.retained_owner = publisher.owner;
      charge(publisher.owner, static_cast<std::int64_t>(t.retained->size()));
    }
    // $SYS values (presence, stats) are rebuilt by the broker, not kept on disk.
    if (topic_name.front() != '$') persist_retained(topic_name, t.retained);
  }
  charge(publisher.owner, static_cast<std::int64_t>(bytes->size()));
  t.history.add({result.seq, at_us, bytes, publisher.owner}, [&](const StoredPublication& p) {
    charge(p.owner, -static_cast<std::int64_t>(p.encoded ? p.encoded->size() : 0));
  });

  if (t.subscribers_generation != tree_.generation()) {
    tree_.match(topic_name, t.subscribers);
    t.subscribers.shrink_to_fit();
    t.subscribers_generation = tree_.generation();
  }
  for (SubscriberId id : t.subscribers) {
    Session* s = find_session(id);
    if (!s) continue;
    if (enqueue_delivery(*s, bytes))
      ++result.delivered;
    else
      ++result.dropped;
  }
  return RouteStatus::kOk;
}

void Core::publish_sys(const std::string& topic, const std::string& json, bool retain) {
  RouteResult ignored;
  if (route(topic, json, name_state("$SYS"), retain, "application/json", ignored) !=
      RouteStatus::kOk)
    spdlog::warn("cannot publish {}: topic limit reached", topic);
}

}  // namespace curvebus::broker
