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
  const std::int64_t now = steady_ms();
  if (!s.publish_bucket.take(now)) {
    // Coalesced: at most one ERROR per ~100 ms per session, carrying the count.
    ++counters_.rate_limited;
    ++s.rate_refused_pending;
    if (now - s.rate_error_ms >= kRateErrorEveryMs) {
      std::uint64_t suppressed = 0;
      if (log_rate_.allow(suppressed))
        spdlog::warn("rate limited name={} session={} refused={}{}", s.name, s.session_id,
                     s.rate_refused_pending,
                     suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
      send_error(s, v1::ERROR_RATE_LIMITED, rid,
                 "publish rate over " + std::to_string(config_.publish_rate) + "/s", topic,
                 "publish", s.rate_refused_pending);
      s.rate_refused_pending = 0;
      s.rate_error_ms = now;
    }
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
               topic, "publish");
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
    ++counters_.denials;
    std::uint64_t suppressed = 0;
    if (log_denied_.allow(suppressed))
      spdlog::warn("acl denied op=publish name={} fp={} topic=\"{}\"{}", s.name, s.fingerprint,
                   topic, suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    send_error(s, v1::ERROR_DENIED, rid,
               "the ACL of '" + s.name + "' does not allow publishing on this topic", topic,
               "publish");
    return;
  }
  RouteResult result;
  if (!route(topic, req.payload, s.name, req.retain, req.content_type, result)) {
    send_error(s, v1::ERROR_RESOURCE_EXHAUSTED, rid,
               "the broker keeps at most " + std::to_string(config_.max_topics) + " topics", topic,
               "publish");
    return;
  }
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

bool Core::route(const std::string& topic_name, std::string_view payload,
                 const std::string& publisher, bool retain, std::string_view content_type,
                 RouteResult& result) {
  auto it = topics_.find(topic_name);
  if (it == topics_.end()) {
    if (topics_.size() >= config_.max_topics) return false;
    it = topics_
             .emplace(topic_name,
                      std::make_unique<Topic>(config_.history_depth, config_.history_bytes))
             .first;
  }
  Topic& t = *it->second;
  const std::int64_t now_us = wall_clock_us();
  const std::int64_t now_ms = steady_ms();
  result.seq = ++t.seq;
  ++t.messages;
  ++counters_.publications;
  t.last_publish_us = now_us;
  if (now_ms - t.window_start_ms >= kRateWindowMs) {
    t.rate = static_cast<double>(t.window_count) * 1000.0 /
             static_cast<double>(std::max<std::int64_t>(kRateWindowMs, now_ms - t.window_start_ms));
    t.window_start_ms = now_ms;
    t.window_count = 0;
  }
  ++t.window_count;
  if (t.publishers.size() < kMaxPublishersListed &&
      std::find(t.publishers.begin(), t.publishers.end(), publisher) == t.publishers.end())
    t.publishers.push_back(publisher);

  // Encoded once, straight from the fields; every subscriber queue and the
  // history share these bytes.
  DeliverView d;
  d.topic = topic_name;
  d.payload = payload;
  d.seq = result.seq;
  d.publisher = publisher;
  d.timestamp_us = now_us;
  d.content_type = content_type;
  auto encoded = std::make_shared<std::string>();
  encode_deliver(d, *encoded);
  Bytes bytes = std::move(encoded);
  if (retain) {
    // $SYS values (presence, stats) are rebuilt by the broker, not kept on disk.
    if (persisting() && topic_name.front() != '$') retained_dirty_ = true;
    // An empty retained payload clears the retained value (as in MQTT).
    if (payload.empty()) {
      t.retained.reset();
    } else {
      d.retained = true;
      auto kept = std::make_shared<std::string>();
      encode_deliver(d, *kept);
      t.retained = std::move(kept);
    }
  }
  t.history.add({result.seq, now_us, bytes});

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
  return true;
}

void Core::publish_sys(const std::string& topic, const std::string& json) {
  RouteResult ignored;
  if (!route(topic, json, "$SYS", true, "application/json", ignored))
    spdlog::warn("cannot publish {}: topic limit reached", topic);
}

}  // namespace curvebus::broker
