#include "curvebus/broker/topic_tree.hpp"

#include <algorithm>

#include "curvebus/topic.hpp"

namespace curvebus::broker {

bool TopicTree::subscribe(std::string_view pattern, SubscriberId id) {
  auto levels = split_levels(pattern);
  bool rest = !levels.empty() && levels.back() == "#";
  if (rest) levels.pop_back();
  Node* node = &root_;
  for (std::string_view level : levels) {
    auto& child = node->children[std::string(level)];
    if (!child) child = std::make_unique<Node>();
    node = child.get();
  }
  bool added = (rest ? node->rest : node->exact).insert(id).second;
  if (added) {
    ++size_;
    ++generation_;
  }
  return added;
}

bool TopicTree::unsubscribe(std::string_view pattern, SubscriberId id) {
  auto levels = split_levels(pattern);
  bool rest = !levels.empty() && levels.back() == "#";
  if (rest) levels.pop_back();
  // Remember the path so empty nodes can be pruned bottom-up.
  std::vector<std::pair<Node*, std::string>> path;
  Node* node = &root_;
  for (std::string_view level : levels) {
    auto it = node->children.find(std::string(level));
    if (it == node->children.end()) return false;
    path.emplace_back(node, std::string(level));
    node = it->second.get();
  }
  if ((rest ? node->rest : node->exact).erase(id) == 0) return false;
  --size_;
  ++generation_;
  while (!path.empty()) {
    auto [parent, key] = path.back();
    path.pop_back();
    auto it = parent->children.find(key);
    if (!it->second->empty()) break;
    parent->children.erase(it);
  }
  return true;
}

void TopicTree::walk(const Node& node, const std::vector<std::string_view>& levels, std::size_t at,
                     bool dollar, std::vector<SubscriberId>& out) {
  // Wildcards at the first level never match '$' topics.
  const bool wild_ok = !(dollar && at == 0);
  if (wild_ok) out.insert(out.end(), node.rest.begin(), node.rest.end());
  if (at == levels.size()) {
    out.insert(out.end(), node.exact.begin(), node.exact.end());
    return;
  }
  if (auto it = node.children.find(std::string(levels[at])); it != node.children.end())
    walk(*it->second, levels, at + 1, dollar, out);
  if (wild_ok && levels[at] != "+") {
    if (auto it = node.children.find("+"); it != node.children.end())
      walk(*it->second, levels, at + 1, dollar, out);
  }
}

void TopicTree::match(std::string_view topic, std::vector<SubscriberId>& out) const {
  out.clear();
  auto levels = split_levels(topic);
  walk(root_, levels, 0, !topic.empty() && topic.front() == '$', out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace curvebus::broker
