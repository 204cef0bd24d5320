// TOPICS: the topic directory, filtered by a pattern and by what the peer's
// ACL lets it subscribe to.  Served from the ordered directory starting at
// the pattern's literal prefix (or after the peer's cursor), visiting at most
// max_scan entries and listing at most max_topics_reply: a longer listing is
// truncated with a cursor to continue from, so one request costs a bounded
// amount of the broker's time whatever the directory holds.
#include "protocol.hpp"

namespace curvebus::broker {

void Protocol::handle_topics(Session& s, const v1::Topics& req) {
  const std::string pattern = req.pattern().empty() ? "#" : req.pattern();
  if (std::string why = check_pattern(pattern, topic_rules_); !why.empty()) {
    send_error(s, v1::ERROR_INVALID_TOPIC, req.request_id(), why,
               is_valid_utf8(pattern) ? pattern : std::string(), "topics");
    return;
  }
  const std::string prefix = literal_prefix(pattern);
  const auto& directory = topics_.directory();
  auto it = directory.lower_bound(prefix);
  if (!req.after().empty() && req.after() >= prefix) it = directory.upper_bound(req.after());
  v1::Op op;
  auto* reply = op.mutable_topics_reply();
  reply->set_request_id(req.request_id());
  std::size_t visited = 0;
  for (; it != directory.end(); ++it) {
    const std::string& name = it->first;
    if (name.compare(0, prefix.size(), prefix) != 0) break;  // past the prefix
    if (visited >= config_.max_scan ||
        static_cast<std::uint32_t>(reply->topics_size()) >= config_.max_topics_reply) {
      reply->set_truncated(true);
      reply->set_resume_after(std::prev(it)->first);
      break;
    }
    ++visited;
    if (!topic_matches(pattern, name) || !may_subscribe(s.rights, name)) continue;
    topics_.describe(name, it->second, *reply->add_topics());
  }
  spend_work(s, static_cast<double>(visited) / 2 + reply->topics_size());
  send_control(s, op);
}

}  // namespace curvebus::broker
