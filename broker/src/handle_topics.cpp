// TOPICS: the topic directory, filtered by a pattern and by what the peer's
// ACL lets it subscribe to.  Served from the ordered directory starting at
// the pattern's literal prefix (or after the peer's cursor), visiting at most
// max_scan entries and listing at most max_topics_reply: a longer listing is
// truncated with a cursor to continue from, so one request costs a bounded
// amount of the broker's time whatever the directory holds.
#include "core.hpp"

namespace curvebus::broker {

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

void Core::fill_topic_info(const std::string& name, const Topic* t, const DirEntry& dir,
                           v1::TopicInfo& info) const {
  info.set_topic(name);
  if (t) {
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
  std::vector<SubscriberId> subs;
  tree_.match(name, subs);
  info.set_subscribers(static_cast<std::uint32_t>(subs.size()));
}

void Core::handle_topics(Session& s, const v1::Topics& req) {
  const std::string pattern = req.pattern().empty() ? "#" : req.pattern();
  if (std::string why = check_pattern(pattern, topic_rules_); !why.empty()) {
    send_error(s, v1::ERROR_INVALID_TOPIC, req.request_id(), why,
               is_valid_utf8(pattern) ? pattern : std::string(), "topics");
    return;
  }
  const std::string prefix = literal_prefix(pattern);
  auto it = directory_.lower_bound(prefix);
  if (!req.after().empty() && req.after() >= prefix) it = directory_.upper_bound(req.after());
  v1::Op op;
  auto* reply = op.mutable_topics_reply();
  reply->set_request_id(req.request_id());
  std::size_t visited = 0;
  for (; it != directory_.end(); ++it) {
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
    fill_topic_info(name, it->second.topic, it->second, *reply->add_topics());
  }
  const double units = static_cast<double>(visited) / 2 + reply->topics_size();
  op_work_ += units;
  s.ns->work.spend(now_ms(), units);
  send_control(s, op);
}

}  // namespace curvebus::broker
