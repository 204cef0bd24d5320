#include "subscriptions.hpp"

#include <algorithm>

#include "curvebus/topic.hpp"

namespace curvebus::client_detail {

std::shared_ptr<Subscription> Subscriptions::add(const std::vector<std::string>& patterns,
                                                 MessageHandler handler) {
  auto s = std::make_shared<Subscription>();
  s->patterns = patterns;
  s->handler = std::move(handler);
  entries_.push_back(s);
  bump();
  return s;
}

void Subscriptions::remove(const std::shared_ptr<Subscription>& s) {
  entries_.erase(std::remove(entries_.begin(), entries_.end(), s), entries_.end());
  bump();
}

void Subscriptions::remove_patterns(const std::vector<std::string>& patterns) {
  auto gone = [&](const std::string& p) {
    return std::find(patterns.begin(), patterns.end(), p) != patterns.end();
  };
  for (auto& s : entries_)
    s->patterns.erase(std::remove_if(s->patterns.begin(), s->patterns.end(), gone),
                      s->patterns.end());
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [](const auto& s) { return s->patterns.empty(); }),
                 entries_.end());
  bump();
}

std::vector<std::string> Subscriptions::patterns() const {
  std::vector<std::string> all;
  for (const auto& s : entries_) all.insert(all.end(), s->patterns.begin(), s->patterns.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

void Subscriptions::match(std::string_view topic,
                          std::vector<std::shared_ptr<Subscription>>& out) const {
  for (const auto& s : entries_)
    for (const auto& p : s->patterns)
      if (topic_matches(p, topic)) {
        out.push_back(s);
        break;
      }
}

void Dispatcher::deliver(const DeliverView& d) {
  // One Message per delivery, its strings reusing the previous one's storage;
  // a stream mostly repeats its topic, publisher and content type.
  Message& m = message_;
  const bool same_topic = last_ != nullptr && m.topic == d.topic;
  if (!same_topic) m.topic.assign(d.topic);
  m.payload.assign(d.payload);
  if (m.publisher != d.publisher) m.publisher.assign(d.publisher);
  if (m.content_type != d.content_type) m.content_type.assign(d.content_type);
  m.seq = d.seq;
  m.retained = d.retained;
  m.published_us = d.timestamp_us;
  bump(delivered_);

  Topic& t = same_topic ? *last_ : topics_[m.topic];
  last_ = &t;
  if (!d.retained) {
    if (t.last_seq != 0 && d.seq > t.last_seq + 1) bump(gaps_);
    if (d.seq > t.last_seq) t.last_seq = d.seq;
  }
  if (t.generation != subs_.generation()) {
    std::lock_guard<std::mutex> lock(mu_);
    t.generation = subs_.generation();
    t.handlers.clear();
    subs_.match(m.topic, t.handlers);
  }
  // Handlers cannot re-enter deliver() (only this thread calls it), so `t`
  // stays put while they run.
  for (const auto& s : t.handlers)
    if (s->handler) s->handler(m);
}

}  // namespace curvebus::client_detail
