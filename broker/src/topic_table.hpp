// TopicTable: everything the broker keeps per topic, and the one way a
// publication enters it.
//
// It owns:
//   * the topics: each a Topic with its sequence number, history of recent
//     publications (TopicHistory), retained value, publishers and rate, and a
//     cache of its subscribers;
//   * the topic tree (TopicTree): which subscriber ids match a topic;
//   * the directory: every topic held and every topic a name declared it
//     provides, in name order, so that TOPICS, retained delivery and the
//     idle-topic sweep scan only the prefix a pattern can match;
//   * the storage accounting of what it keeps, through the NameTable: each
//     history entry and retained value is charged to the name that published
//     it and each topic's overhead to the name that created it; publish()
//     refuses what would take a name over name_quota_bytes or the broker over
//     memory_budget_bytes, before anything changes ($SYS is never refused);
//   * the hand-over of every change of a retained value to the RetainedLog
//     (when one is set; topics starting with '$' are never kept on disk).
//
// publish() is the one entry point for publications: PUBLISH from peers,
// presence, $SYS/broker/stats and $SYS/audit/* all go through it (as
// Mosquitto's handlers go through database.c).  It encodes the DELIVER once
// and hands the same bytes to every matching subscriber (Subscribers) and to
// the history; a retained publication is encoded a second time with
// retained = true for the retained value.
//
// Invariants:
//   * a Topic is in the directory (DirEntry::topic) for exactly as long as it
//     exists; a DirEntry exists while it has a topic or a provider;
//   * a Topic's `subscribers` equals tree().match(name) whenever its
//     `subscribers_generation` equals tree().generation();
//   * a topic's seq increases by one per accepted publication; a topic
//     restored from disk continues from its kept seq.
//
// Ownership and lifetime: owns topics, tree and directory; a Topic* is valid
// until the topic is freed (sweep(), or reset).  Config, NameTable and
// Counters must outlive it; the RetainedLog is the caller's (may be null).
//
// Thread: the routing thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "counters.hpp"
#include "curvebus.pb.h"
#include "curvebus/broker/config.hpp"
#include "curvebus/broker/history.hpp"
#include "curvebus/broker/topic_tree.hpp"
#include "curvebus/topic.hpp"
#include "names.hpp"
#include "retained_log.hpp"

namespace curvebus::broker {

using Bytes = std::shared_ptr<const std::string>;

// Where publications go: one encoded DELIVER frame to one subscriber.
enum class Delivery { kQueued, kDropped, kAbsent };
class Subscribers {
 public:
  virtual ~Subscribers() = default;
  virtual Delivery deliver(SubscriberId id, std::string_view encoded) = 0;
};

struct Topic {
  explicit Topic(std::size_t depth, std::size_t bytes) : history(depth, bytes) {}
  std::uint64_t seq = 0;
  TopicHistory history;
  Bytes retained;                    // encoded Deliver with retained=true, or null
  std::uint32_t retained_owner = 0;  // who is charged for `retained`
  std::uint32_t creator = 0;         // who is charged for the topic's own overhead
  std::int64_t last_active_ms = 0;   // last publication (steady clock), for freeing idle topics
  // The topic tree's answer for this topic, valid while the tree's
  // generation is `subscribers_generation` (routing without a tree walk).
  std::vector<SubscriberId> subscribers;
  std::uint64_t subscribers_generation = 0;
  std::vector<std::string> publishers;  // bounded
  std::uint64_t messages = 0;
  std::int64_t last_publish_us = 0;
  // publication rate: count in the current and previous 10 s windows
  std::int64_t window_start_ms = 0;
  std::uint64_t window_count = 0;
  double rate = 0;
};

// A topic the broker holds and/or names that declared they provide it.
struct DirEntry {
  Topic* topic = nullptr;
  std::map<std::string, std::uint32_t> providers;  // name -> sessions declaring it
};

// What a topic costs besides its publications (map nodes, the Topic, its
// name twice, its subscriber cache), roughly; charged to its creator.
constexpr std::int64_t kTopicOverhead = 512;

// The part of a pattern before its first wildcard: every topic the pattern
// matches starts with it ("robot/alex/#" -> "robot/alex").
std::string literal_prefix(std::string_view pattern);

class TopicTable {
 public:
  enum class Refusal { kNone, kTooManyTopics, kQuota, kBudget };
  struct Published {
    Refusal refusal = Refusal::kNone;
    std::uint64_t seq = 0;        // the publication's seq (when accepted)
    std::uint32_t delivered = 0;  // subscribers it was queued for
    std::uint32_t dropped = 0;    // subscribers whose queue was full
  };

  TopicTable(const Config& config, NameTable& names, Counters& counters);
  TopicTable(const TopicTable&) = delete;
  TopicTable& operator=(const TopicTable&) = delete;

  // Every later change of a retained value goes to `log` (null: none).
  void set_retained_log(RetainedLog* log) { log_ = log; }
  const RetainedLog* retained_log() const { return log_; }

  // The one entry point (see above).  `topic` is valid (check_topic) and the
  // publisher may publish on it: the caller checked.  `retain` with an empty
  // payload clears the retained value.  Times: the steady clock (idle topics,
  // rate) and the wall clock (the DELIVER's timestamp).
  Published publish(const std::string& topic, std::string_view payload, NameState& publisher,
                    bool retain, std::string_view content_type, Subscribers& to,
                    std::int64_t now_ms, std::int64_t now_us);

  const Topic* find(const std::string& topic) const;
  std::size_t size() const { return topics_.size(); }
  // In name order, from the first name >= a pattern's literal prefix.
  const std::map<std::string, DirEntry>& directory() const { return directory_; }

  // Subscriptions: (pattern, id) pairs in the tree.  `pattern` is valid.
  void subscribe(const std::string& pattern, SubscriberId id) { tree_.subscribe(pattern, id); }
  void unsubscribe(const std::string& pattern, SubscriberId id) { tree_.unsubscribe(pattern, id); }
  // How many subscribers match `topic` now.
  std::size_t subscriber_count(const std::string& topic) const;

  // A name's sessions declaring (or no longer declaring) topics they provide.
  void add_provider(const std::string& topic, const std::string& name);
  void remove_provider(const std::string& topic, const std::string& name);

  // Retained values for a new subscription: calls `each` for every topic
  // with a retained value that one of `patterns` matches, each topic once,
  // looking at most at `max_scan` directory entries in all.
  struct Scan {
    std::size_t visited = 0;  // directory entries looked at
    std::size_t found = 0;    // retained values handed to `each`
    bool capped = false;      // stopped at max_scan
  };
  Scan scan_retained(const std::vector<std::string>& patterns, std::size_t max_scan,
                     const std::function<void(const Topic&)>& each) const;

  // TopicInfo of a directory entry (TOPICS, ADMIN TOPICS).
  void describe(const std::string& name, const DirEntry& entry, v1::TopicInfo& info) const;

  // Frees topics idle for topic_idle_s (no retained value, no subscriber, no
  // publication), looking at a bounded slice of the directory per call.
  void sweep(std::int64_t now_ms);

  // Startup: the retained values the RetainedLog loaded become topics (seq,
  // publisher and timestamp from the kept DELIVER), charged to their
  // publisher's name.  Values that are not a DELIVER for their topic, or
  // break today's limits, are skipped.  Returns how many were restored; adds
  // the skipped ones to *skipped.
  std::size_t restore(const RetainedLog::Loaded& loaded, std::int64_t now_ms, std::size_t* skipped);

 private:
  Topic* create(const std::string& name, NameState& creator, std::int64_t now_ms);
  void free(const std::string& name);
  void persist(const std::string& topic, const Bytes& value);

  const Config& config_;
  NameTable& names_;
  Counters& counters_;
  RetainedLog* log_ = nullptr;
  TopicRules rules_;
  std::unordered_map<std::string, std::unique_ptr<Topic>> topics_;
  std::map<std::string, DirEntry> directory_;
  TopicTree tree_;
  std::string sweep_cursor_;
};

}  // namespace curvebus::broker
