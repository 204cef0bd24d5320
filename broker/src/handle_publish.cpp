// PUBLISH: check the name's rate, the payload's size, the topic and the ACL,
// then hand it to TopicTable::publish() (one DELIVER encoding for every
// matching session, the history and the retained value) and answer PUBACK
// when asked.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

namespace {
constexpr std::int64_t kRateErrorEveryMs = 100;
}  // namespace

void Protocol::handle_publish(Session& s, const v1::Publish& req) {
  PublishView v;
  v.request_id = req.request_id();
  v.topic = req.topic();
  v.payload = req.payload();
  v.ack = req.ack();
  v.retain = req.retain();
  v.content_type = req.content_type();
  handle_publish(s, v);
}

void Protocol::handle_publish(Session& s, const PublishView& req) {
  const std::uint64_t rid = req.request_id;
  // The topic as a string (for the maps and the error replies); the scratch
  // buffer keeps its capacity, so the hot path does not allocate for it.
  topic_scratch_.assign(req.topic.data(), req.topic.size());
  const std::string& topic = topic_scratch_;
  const std::int64_t now = now_ms_;
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
  if (std::string why = topics_.find(topic) ? std::string() : check_topic(topic, topic_rules_);
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
  const TopicTable::Published result = topics_.publish(
      topic, req.payload, *s.ns, req.retain, req.content_type, sessions_, now_ms_, now_us_);
  switch (result.refusal) {
    case TopicTable::Refusal::kNone:
      break;
    case TopicTable::Refusal::kTooManyTopics:
      send_error(s, v1::ERROR_RESOURCE_EXHAUSTED, rid,
                 "the broker keeps at most " + std::to_string(config_.max_topics) + " topics",
                 topic, "publish");
      return;
    case TopicTable::Refusal::kQuota:
    case TopicTable::Refusal::kBudget: {
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
  if (federation_) {
    ExportedPublication p;
    p.topic = topic;
    p.payload = req.payload;
    p.publisher = s.name;
    p.content_type = req.content_type;
    p.retain = req.retain;
    p.seq = result.seq;
    p.publish_time_us = now_us_;
    if (!export_publication(&s, rid, req.ack, p, result.delivered, result.dropped)) return;
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

void Protocol::publish_sys(const std::string& topic, const std::string& json, bool retain) {
  const auto r = topics_.publish(topic, json, names_.sys(), retain, "application/json", sessions_,
                                 now_ms_, now_us_);
  if (r.refusal != TopicTable::Refusal::kNone) {
    spdlog::warn("cannot publish {}: topic limit reached", topic);
    return;
  }
  if (federation_) {
    ExportedPublication p;
    p.topic = topic;
    p.payload = json;
    p.publisher = "$SYS";
    p.content_type = "application/json";
    p.retain = retain;
    p.seq = r.seq;
    p.publish_time_us = now_us_;
    export_publication(nullptr, 0, false, p, r.delivered, r.dropped);
  }
}

}  // namespace curvebus::broker
