// The subscription index: a trie over topic levels in which a pattern's
// levels are edges ("+" is an ordinary edge name) and a trailing "#" marks the
// node where it stands.  match() walks the topic once, following the exact
// level and the "+" edge at each node and collecting "#" subscribers on the
// way, so its cost depends on the topic's depth and on the patterns that
// actually match, not on the number of subscriptions.
//
// As in MQTT, a pattern starting with a wildcard does not match a topic that
// starts with '$'.  Callers pass valid patterns and topics (check_pattern /
// check_topic) and never subscribe the same (pattern, id) twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace curvebus::broker {

using SubscriberId = std::uint64_t;

class TopicTree {
 public:
  // Adds `id` under `pattern`.  Returns false if it was already there.
  bool subscribe(std::string_view pattern, SubscriberId id);
  // Removes `id` from `pattern`.  Returns false if it was not there.
  bool unsubscribe(std::string_view pattern, SubscriberId id);
  // Replaces `out` with the ids of every subscriber with at least one pattern
  // matching `topic`, each id once, in ascending order.
  void match(std::string_view topic, std::vector<SubscriberId>& out) const;
  // Number of (pattern, id) pairs held.
  std::size_t size() const { return size_; }
  // Changes whenever a subscribe or unsubscribe changed the tree (never 0), so
  // a caller may keep match() results per topic and redo them only then.
  std::uint64_t generation() const { return generation_; }

 private:
  struct Node {
    std::unordered_map<std::string, std::unique_ptr<Node>> children;
    std::unordered_set<SubscriberId> exact;  // patterns ending at this node
    std::unordered_set<SubscriberId> rest;   // patterns ending with "#" below this node
    bool empty() const { return children.empty() && exact.empty() && rest.empty(); }
  };
  static void walk(const Node& node, const std::vector<std::string_view>& levels, std::size_t at,
                   bool dollar, std::vector<SubscriberId>& out);

  Node root_;
  std::size_t size_ = 0;
  std::uint64_t generation_ = 1;
};

}  // namespace curvebus::broker
