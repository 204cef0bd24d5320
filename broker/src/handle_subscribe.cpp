// SUBSCRIBE / UNSUBSCRIBE: one answer per pattern, in request order.
#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

namespace {

// $SYS/audit/... carries the audit trail: administrators only, whatever the
// ACL's patterns say.
bool reaches_audit(const std::string& pattern) {
  return topic_matches(pattern, "$SYS/audit/x") || pattern_covers(pattern, "$SYS/audit/x") ||
         pattern.rfind("$SYS/audit", 0) == 0;
}

}  // namespace

void Protocol::handle_subscribe(Session& s, const v1::Subscribe& req) {
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
    if (!may_subscribe(s.rights, pattern) || (!s.rights.admin && reaches_audit(pattern))) {
      a->set_result(v1::PATTERN_DENIED);
      a->set_reason("the ACL of '" + s.name + "' does not allow subscribing to this pattern");
      denied(s, "subscribe", pattern);
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
      topics_.subscribe(pattern, s.id);
    }
    a->set_result(v1::PATTERN_GRANTED);
    granted.push_back(pattern);
  }
  send_control(s, op);
  spdlog::debug("subscribe name={} session={} granted={} of={}", s.name, s.session_id,
                granted.size(), req.patterns_size());

  if (!req.want_retained() || granted.empty()) return;
  // Retained values from the ordered directory, from each pattern's literal
  // prefix on; at most max_scan entries visited per request.
  const TopicTable::Scan scan = topics_.scan_retained(
      granted, config_.max_scan, [&](const Topic& t) { sessions_.deliver(s.id, *t.retained); });
  spend_work(s, static_cast<double>(scan.visited) / 2 + static_cast<double>(scan.found));
  if (scan.capped)
    send_error(s, v1::ERROR_BUSY, req.request_id(),
               "retained values: stopped after looking at " + std::to_string(scan.visited) +
                   " topics (max_scan); subscribe to narrower patterns or PULL the topics needed",
               "", "subscribe", scan.found);
}

void Protocol::handle_unsubscribe(Session& s, const v1::Unsubscribe& req) {
  v1::Op op;
  auto* ack = op.mutable_unsuback();
  ack->set_request_id(req.request_id());
  for (const auto& pattern : req.patterns()) {
    if (s.subscriptions.erase(pattern)) {
      topics_.unsubscribe(pattern, s.id);
      ack->add_removed(pattern);
    } else {
      ack->add_not_found(pattern);
    }
  }
  send_control(s, op);
}

}  // namespace curvebus::broker
