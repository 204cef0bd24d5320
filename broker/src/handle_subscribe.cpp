// SUBSCRIBE / UNSUBSCRIBE: one answer per pattern, in request order.
#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

void Core::handle_subscribe(Session& s, const v1::Subscribe& req) {
  v1::Op op;
  auto* ack = op.mutable_suback();
  ack->set_request_id(req.request_id());
  std::vector<std::string> granted;
  for (const auto& pattern : req.patterns()) {
    auto* a = ack->add_answers();
    a->set_pattern(pattern);
    if (std::string why = check_pattern(pattern, topic_rules_); !why.empty()) {
      a->set_result(v1::PATTERN_INVALID);
      a->set_reason(why);
      continue;
    }
    if (!may_subscribe(s.rights, pattern)) {
      a->set_result(v1::PATTERN_DENIED);
      a->set_reason("the ACL of '" + s.name + "' does not allow subscribing to this pattern");
      ++counters_.denials;
      std::uint64_t suppressed = 0;
      if (log_denied_.allow(suppressed))
        spdlog::warn("acl denied op=subscribe name={} fp={} pattern=\"{}\"{}", s.name,
                     s.fingerprint, pattern,
                     suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
      continue;
    }
    if (!s.subscriptions.count(pattern)) {
      if (s.subscriptions.size() >= config_.max_subscriptions) {
        a->set_result(v1::PATTERN_LIMIT);
        a->set_reason("at most " + std::to_string(config_.max_subscriptions) +
                      " subscriptions per session");
        continue;
      }
      s.subscriptions.insert(pattern);
      tree_.subscribe(pattern, s.id);
    }
    a->set_result(v1::PATTERN_GRANTED);
    granted.push_back(pattern);
  }
  send_control(s, op);
  spdlog::debug("subscribe name={} session={} granted={} of={}", s.name, s.session_id,
                granted.size(), req.patterns_size());

  if (!req.want_retained() || granted.empty()) return;
  for (const auto& [name, topic] : topics_) {
    if (!topic->retained) continue;
    for (const auto& pattern : granted) {
      if (topic_matches(pattern, name)) {
        enqueue_delivery(s, topic->retained);
        break;
      }
    }
  }
}

void Core::handle_unsubscribe(Session& s, const v1::Unsubscribe& req) {
  v1::Op op;
  auto* ack = op.mutable_unsuback();
  ack->set_request_id(req.request_id());
  for (const auto& pattern : req.patterns()) {
    if (s.subscriptions.erase(pattern)) {
      tree_.unsubscribe(pattern, s.id);
      ack->add_removed(pattern);
    } else {
      ack->add_not_found(pattern);
    }
  }
  send_control(s, op);
}

}  // namespace curvebus::broker
