// LivenessTimers (liveness.hpp): per-interval groups of intrusive lists kept
// in time order, and a heap of the groups' earliest deadlines.
#include "curvebus/broker/liveness.hpp"

#include <limits>

namespace curvebus::broker {

namespace {
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
}  // namespace

// An intrusive doubly-linked list through one pair of Entry's link fields.
template <LivenessTimers::Entry* LivenessTimers::Entry::*Prev,
          LivenessTimers::Entry* LivenessTimers::Entry::*Next>
struct TimerList {
  using Entry = LivenessTimers::Entry;
  Entry* head = nullptr;
  Entry* tail = nullptr;

  void push_back(Entry& e) {
    e.*Prev = tail;
    e.*Next = nullptr;
    if (tail)
      tail->*Next = &e;
    else
      head = &e;
    tail = &e;
  }
  void unlink(Entry& e) {
    if (e.*Prev)
      e.*Prev->*Next = e.*Next;
    else
      head = e.*Next;
    if (e.*Next)
      e.*Next->*Prev = e.*Prev;
    else
      tail = e.*Prev;
    e.*Prev = e.*Next = nullptr;
  }
  void move_to_back(Entry& e) {
    if (tail == &e) return;
    unlink(e);
    push_back(e);
  }
};

using SeenList = TimerList<&LivenessTimers::Entry::seen_prev, &LivenessTimers::Entry::seen_next>;
using SentList = TimerList<&LivenessTimers::Entry::sent_prev, &LivenessTimers::Entry::sent_next>;

struct LivenessTimers::Group {
  std::uint32_t interval_ms = 0;
  std::int64_t ping_after = 0, expire_after = 0, heartbeat_after = 0;
  SeenList alive;   // not pinged, by last_seen_ms
  SeenList pinged;  // pinged, by last_seen_ms
  SentList sent;    // all, by last_sent_ms
  std::size_t size = 0;
  std::int64_t scheduled_ms = kNever;  // the deadline this group has in due_

  std::int64_t next_due() const {
    std::int64_t due = kNever;
    if (alive.head) due = std::min(due, alive.head->last_seen_ms + ping_after);
    if (pinged.head) due = std::min(due, pinged.head->last_seen_ms + expire_after);
    if (sent.head) due = std::min(due, sent.head->last_sent_ms + heartbeat_after);
    return due;
  }
};

LivenessTimers::LivenessTimers() = default;

LivenessTimers::~LivenessTimers() {
  // Leave the entries (owned by the caller) unlinked.
  for (auto& [interval, g] : groups_) {
    for (Entry* e = g->sent.head; e;) {
      Entry* next = e->sent_next;
      e->group = nullptr;
      e->seen_prev = e->seen_next = e->sent_prev = e->sent_next = nullptr;
      e = next;
    }
  }
}

std::int64_t LivenessTimers::answer_after_ms(std::uint32_t interval_ms) {
  const std::int64_t i = interval_ms;
  return interval_ms < kRelaxedFromMs ? i / 2 : 3 * i / 2;
}

std::int64_t LivenessTimers::heartbeat_after_ms(std::uint32_t interval_ms) {
  const std::int64_t i = interval_ms;
  return interval_ms < kRelaxedFromMs ? i : 5 * i / 2;
}

void LivenessTimers::add(Entry& e, std::uint32_t interval_ms, std::int64_t now) {
  if (interval_ms == 0) interval_ms = 1;
  const bool moving = e.group != nullptr;
  if (moving) {
    if (e.group->interval_ms == interval_ms) return;
    remove(e);
  } else {
    e.last_seen_ms = now;
    e.last_sent_ms = now;
    e.pinged = false;
  }
  auto& slot = groups_[interval_ms];
  if (!slot) {
    slot = std::make_unique<Group>();
    slot->interval_ms = interval_ms;
    slot->ping_after = std::int64_t{interval_ms} * kPingIntervals;
    slot->expire_after = std::int64_t{interval_ms} * kTimeoutIntervals;
    slot->heartbeat_after = heartbeat_after_ms(interval_ms);
  }
  Group& g = *slot;
  e.group = &g;
  e.interval_ms = interval_ms;
  (e.pinged ? g.pinged : g.alive).push_back(e);
  g.sent.push_back(e);
  ++g.size;
  ++size_;
  schedule(g);
}

void LivenessTimers::remove(Entry& e) {
  if (!e.group) return;
  Group& g = *e.group;
  (e.pinged ? g.pinged : g.alive).unlink(e);
  g.sent.unlink(e);
  e.group = nullptr;
  --g.size;
  --size_;
  erase_group_if_empty(g);
}

void LivenessTimers::erase_group_if_empty(Group& g) {
  if (g.size == 0 && !running_) groups_.erase(g.interval_ms);  // its heap entries go stale
}

bool LivenessTimers::heard(Entry& e, std::int64_t now) {
  if (!e.group) return false;
  Group& g = *e.group;
  e.last_seen_ms = now;
  if (e.pinged) {
    g.pinged.unlink(e);
    e.pinged = false;
    g.alive.push_back(e);
  } else {
    g.alive.move_to_back(e);
  }
  return now - e.last_sent_ms >= answer_after_ms(g.interval_ms);
}

void LivenessTimers::sent(Entry& e, std::int64_t now) {
  if (!e.group) return;
  e.last_sent_ms = now;
  e.group->sent.move_to_back(e);
}

void LivenessTimers::schedule(Group& g) {
  const std::int64_t due = g.next_due();
  if (due < g.scheduled_ms) {
    g.scheduled_ms = due;
    due_.emplace(due, g.interval_ms);
  }
}

std::int64_t LivenessTimers::next_due() const {
  return due_.empty() ? kNever : due_.top().first;
}

void LivenessTimers::run(std::int64_t now, const std::function<void(Entry&, Action)>& act) {
  running_ = true;
  std::vector<std::uint32_t> touched;
  while (!due_.empty() && due_.top().first <= now) {
    const auto [when, interval] = due_.top();
    due_.pop();
    auto it = groups_.find(interval);
    if (it == groups_.end() || it->second->scheduled_ms != when) continue;  // stale
    Group& g = *it->second;
    g.scheduled_ms = kNever;
    touched.push_back(interval);
    // Silence first: 3 I without a word expires a session even when its
    // PING was never due in a run (a loop held up for a long time).
    while (Entry* e = g.alive.head) {
      if (e->last_seen_ms + g.ping_after > now) break;
      if (e->last_seen_ms + g.expire_after <= now) {
        remove(*e);
        act(*e, Action::kExpire);
        continue;
      }
      g.alive.unlink(*e);
      e->pinged = true;
      g.pinged.push_back(*e);
      e->last_sent_ms = now;
      g.sent.move_to_back(*e);
      act(*e, Action::kPing);
    }
    while (Entry* e = g.pinged.head) {
      if (e->last_seen_ms + g.expire_after > now) break;
      remove(*e);
      act(*e, Action::kExpire);
    }
    while (Entry* e = g.sent.head) {
      if (e->last_sent_ms + g.heartbeat_after > now) break;
      e->last_sent_ms = now;
      g.sent.move_to_back(*e);
      act(*e, Action::kHeartbeat);
    }
  }
  running_ = false;
  for (std::uint32_t interval : touched) {
    auto it = groups_.find(interval);
    if (it == groups_.end()) continue;
    if (it->second->size == 0)
      groups_.erase(it);
    else
      schedule(*it->second);
  }
}

}  // namespace curvebus::broker
