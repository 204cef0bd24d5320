// PULL: the latest publication of a topic, or its kept history since a seq.
#include <spdlog/spdlog.h>

#include "protocol.hpp"

namespace curvebus::broker {

void Protocol::handle_pull(Session& s, const v1::Pull& req) {
  const std::uint64_t rid = req.request_id();
  if (std::string why = check_topic(req.topic(), topic_rules_); !why.empty()) {
    send_error(s, v1::ERROR_INVALID_TOPIC, rid, why,
               is_valid_utf8(req.topic()) ? req.topic() : std::string(), "pull");
    return;
  }
  // Pulling is reading: it needs subscribe rights on the topic.
  if (!may_subscribe(s.rights, req.topic()) ||
      (!s.rights.admin && req.topic().rfind("$SYS/audit/", 0) == 0)) {
    deny(s, "pull", req.topic(), rid,
         "the ACL of '" + s.name + "' does not allow reading this topic");
    return;
  }
  const Topic* topic = topics_.find(req.topic());
  if (!topic) {
    send_error(s, v1::ERROR_NOT_FOUND, rid, "nothing was published on this topic", req.topic(),
               "pull");
    return;
  }
  const Topic& t = *topic;
  const std::size_t max_count = req.max_count() ? req.max_count() : config_.history_depth;
  PullSelection sel = t.history.select(req.since_seq(), max_count, t.seq);

  v1::Op op;
  auto* reply = op.mutable_pull_reply();
  reply->set_request_id(rid);
  reply->set_topic(req.topic());
  reply->set_last_seq(t.seq);
  reply->set_first_kept_seq(sel.first_kept_seq);
  reply->set_gap(sel.gap);
  v1::Frame stored;
  std::size_t bytes = 0;
  for (const StoredPublication* p : sel.items) {
    bytes += p->encoded->size();
    if (!decode_frame(p->encoded->data(), p->encoded->size(), stored) ||
        !stored.ops(0).has_deliver())
      continue;
    auto* d = reply->add_messages();
    d->Swap(stored.mutable_ops(0)->mutable_deliver());
    d->set_retained(true);
  }
  // Copying history costs in proportion to its bytes (at most history_bytes).
  spend_work(s, static_cast<double>(bytes) / 1024);
  send_control(s, op);
}

}  // namespace curvebus::broker
