// libFuzzer harness: the broker's dispatch on arbitrary bytes.  A real broker
// core (keys and the embedded default allow-list in a temporary home, its
// ROUTER bound on 127.0.0.1) gets each input as the body of one incoming
// message through Core::on_input, as drain_listener hands it over, from one of three routing
// ids: a session of "dev" (admin, every topic), a session of "alex" (a robot
// agent with a narrow ACL), or a routing id that never registered.  The first
// input byte picks which.  Sessions an input ended (BYE, kick, revoke) are
// opened again before the next input; replies queued for them are discarded
// (they are never flushed), so only the dispatch and handlers run.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace {

using namespace curvebus;
using namespace curvebus::broker;

struct Harness {
  std::unique_ptr<Core> core;
  std::vector<AclEntry> entries;  // dev, alex

  Harness() {
    spdlog::set_level(spdlog::level::off);
    char tmpl[] = "/tmp/curvebus-fuzz-dispatch-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    if (!dir) std::abort();
    Config config;
    config.home = dir;
    config.bind = "tcp://127.0.0.1:*";
    config.retained_sync_ms = 0;  // no disk writes per input
    config.stats_interval_s = 0;
    config.max_topics = 2000;
    std::vector<std::string> log;
    if (!prepare_home(config, log)) std::abort();
    config.revocations_file.clear();  // revocations in memory only: each input starts clean
    config.audit_file.clear();        // audit events counted, not written
    core = std::make_unique<Core>(config);
    if (!core->start()) std::abort();
    for (const char* name : {"dev", "alex"}) {
      const AclEntry* e = core->acl_.by_name(name);
      if (!e) std::abort();
      entries.push_back(*e);
    }
  }

  // The peer id (listener 0) of a live session for entries[i], opened if needed.
  std::string session(std::size_t i) {
    const std::string rid = std::string("0fuzz-") + entries[i].name;
    if (core->find_session(rid)) return rid;
    // Undo what an input may have done to the name: revocations, key changes.
    core->revocations_ = RevocationList();
    std::string summary;
    (void)core->reload_acl(summary);
    auto s = std::make_unique<Session>();
    s->id = core->next_session_++;
    s->routing_id = rid;
    s->session_id = "fuzz-" + std::to_string(s->id);
    s->name = entries[i].name;
    s->key = entries[i].keys.front().public_key;
    s->ns = &core->name_state(s->name);
    s->rights = entries[i];
    s->heartbeat_ms = 1000;
    s->alive.id = s->id;
    core->by_routing_id_[rid] = s.get();
    ++s->ns->sessions;
    core->sessions_.emplace(s->id, std::move(s));
    return rid;
  }

  void discard_output() {
    while (!core->backlog_.empty()) {  // serve deferred input now, not in a later turn
      core->turn_units_ = 1 << 30;
      core->serve_backlogs();
    }
    for (auto& [id, s] : core->sessions_) {
      s->queue.clear();
      s->queue_bytes = 0;
      s->stalled.clear();
      s->stalled_ops = 0;
      s->dirty = false;
    }
    core->dirty_.clear();
    core->backlogged_.clear();
    if (core->topics_.size() >= 1500) {
      std::vector<std::string> names;
      for (const auto& [name, t] : core->topics_) names.push_back(name);
      for (const auto& name : names) core->free_topic(name);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size == 0) return 0;
  const std::uint8_t who = data[0] % 3;
  const std::string rid = who == 2 ? std::string("0fuzz-stranger") : h.session(who);
  // Each message carries its session's key, as libzmq attaches it; the
  // stranger's is alex's key on a routing id that never registered.
  const std::string& key = h.entries[who == 2 ? 1 : who].keys.front().public_key;
  h.core->turn_units_ = 20000;
  h.core->on_input(rid, data + 1, size - 1, key.c_str(), [&] {
    PeerMeta m;
    m.user = key;
    m.address = "127.0.0.1";
    return m;
  });
  h.discard_output();
  return 0;
}
