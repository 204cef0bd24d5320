// TOPICS: the topic directory, filtered by a pattern and by what the peer's
// ACL lets it subscribe to.
#include <map>

#include "core.hpp"

namespace curvebus::broker {

void Core::fill_topic_info(const std::string& name, const Topic& t, v1::TopicInfo& info) const {
  info.set_topic(name);
  for (const auto& p : t.publishers) info.add_publishers(p);
  info.set_last_seq(t.seq);
  info.set_retained(t.retained != nullptr);
  info.set_last_publish_us(t.last_publish_us);
  info.set_rate(t.rate);
  info.set_messages(t.messages);
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
  // Published topics, plus topics live peers declared they provide.
  std::map<std::string, v1::TopicInfo> found;
  auto visible = [&](const std::string& topic) {
    return topic_matches(pattern, topic) && may_subscribe(s.rights, topic);
  };
  for (const auto& [name, topic] : topics_) {
    if (visible(name)) fill_topic_info(name, *topic, found[name]);
  }
  for (const auto& [id, peer] : sessions_) {
    for (const auto& topic : peer->provides) {
      if (!visible(topic)) continue;
      auto& info = found[topic];
      if (info.topic().empty()) {
        info.set_topic(topic);
        std::vector<SubscriberId> subs;
        tree_.match(topic, subs);
        info.set_subscribers(static_cast<std::uint32_t>(subs.size()));
      }
      bool listed = false;
      for (const auto& p : info.publishers()) listed = listed || p == peer->name;
      if (!listed) info.add_publishers(peer->name);
    }
  }
  v1::Op op;
  auto* reply = op.mutable_topics_reply();
  reply->set_request_id(req.request_id());
  for (auto& [name, info] : found) reply->add_topics()->Swap(&info);
  send_control(s, op);
}

}  // namespace curvebus::broker
