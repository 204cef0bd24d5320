// ADMIN: status, clients, topics, stats, kick, revoke, reload — for names
// whose ACL entry says admin = true.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {

std::vector<Session*> sessions_named(
    const std::unordered_map<std::uint64_t, std::unique_ptr<Session>>& sessions,
    const std::string& name) {
  std::vector<Session*> out;
  for (const auto& [id, s] : sessions)
    if (s->name == name) out.push_back(s.get());
  return out;
}

}  // namespace

std::size_t Core::kick_name(const std::string& name) {
  auto victims = sessions_named(sessions_, name);
  for (Session* s : victims) {
    send_error(*s, v1::ERROR_KICKED, 0, "an administrator ended this session", "", "session");
    drop_session(*s, CloseReason::kKicked, "kicked by admin");
  }
  return victims.size();
}

std::size_t Core::revoke_name(const std::string& name) {
  acl_.remove(name);
  revoked_names_.insert(name);
  auto victims = sessions_named(sessions_, name);
  for (Session* s : victims) {
    send_error(*s, v1::ERROR_REVOKED, 0, "this key was revoked", "", "session");
    tombstone(s->routing_id, v1::ERROR_REVOKED);
    drop_session(*s, CloseReason::kRevoked, "revoked by admin");
  }
  spdlog::warn("revoked name={} sessions_dropped={}", name, victims.size());
  return victims.size();
}

Status Core::reload_acl(std::string& summary) {
  auto loaded = AllowList::load_file(config_.acl_path);
  if (!loaded) return loaded.status();
  AllowList fresh = std::move(*loaded);
  std::size_t still_revoked = 0;
  for (const auto& name : revoked_names_) still_revoked += fresh.remove(name) ? 1 : 0;
  acl_ = std::move(fresh);

  std::size_t revoked_sessions = 0, removed_subscriptions = 0;
  std::vector<Session*> all;
  for (const auto& [id, s] : sessions_) all.push_back(s.get());
  for (Session* s : all) {
    const AclEntry* entry = acl_.by_name(s->name);
    if (!entry) {
      send_error(*s, v1::ERROR_REVOKED, 0, "this name left the allow-list", "", "session");
      tombstone(s->routing_id, v1::ERROR_REVOKED);
      drop_session(*s, CloseReason::kRevoked, "removed from the allow-list on reload");
      ++revoked_sessions;
      continue;
    }
    s->rights = *entry;
    for (auto it = s->subscriptions.begin(); it != s->subscriptions.end();) {
      if (may_subscribe(s->rights, *it)) {
        ++it;
        continue;
      }
      tree_.unsubscribe(*it, s->id);
      it = s->subscriptions.erase(it);
      ++removed_subscriptions;
    }
  }
  summary = "reloaded " + config_.acl_path + ": " + std::to_string(acl_.entries().size()) +
            " clients, " + std::to_string(revoked_sessions) + " sessions revoked, " +
            std::to_string(removed_subscriptions) + " subscriptions removed" +
            (still_revoked ? ", " + std::to_string(still_revoked) + " names still revoked" : "");
  spdlog::info("acl {}", summary);
  return Status::Ok();
}

void Core::handle_admin(Session& s, const v1::Admin& req) {
  const std::uint64_t rid = req.request_id();
  if (!s.rights.admin) {
    ++counters_.denials;
    ++counters_.not_admin;
    std::uint64_t suppressed = 0;
    if (log_denied_.allow(suppressed))
      spdlog::warn("acl denied op=admin name={} fp={} command={}{}", s.name, s.fingerprint,
                   v1::AdminCommand_Name(req.command()),
                   suppressed ? fmt::format(" (+{} similar suppressed)", suppressed) : "");
    send_error(s, v1::ERROR_NOT_ADMIN, rid, "'" + s.name + "' is not an administrator", "",
               "admin");
    return;
  }
  const std::string routing_id = s.routing_id;  // s may go away (kick / revoke of oneself)
  const std::string admin_name = s.name;
  v1::Op op;
  auto* r = op.mutable_admin_reply();
  r->set_request_id(rid);
  r->set_command(req.command());
  const std::string& arg = req.argument();
  switch (req.command()) {
    case v1::ADMIN_STATUS:
    case v1::ADMIN_STATS:
      fill_status(*r->mutable_status());
      break;
    case v1::ADMIN_CLIENTS: {
      std::vector<const Session*> list;
      for (const auto& [id, peer] : sessions_) list.push_back(peer.get());
      std::sort(list.begin(), list.end(), [](const Session* a, const Session* b) {
        return a->name != b->name ? a->name < b->name : a->id < b->id;
      });
      for (const Session* peer : list) fill_client_info(*peer, *r->add_clients());
      break;
    }
    case v1::ADMIN_TOPICS: {
      std::vector<const std::string*> names;
      for (const auto& [name, t] : topics_) names.push_back(&name);
      std::sort(names.begin(), names.end(),
                [](const std::string* a, const std::string* b) { return *a < *b; });
      for (const std::string* name : names)
        fill_topic_info(*name, *topics_.at(*name), *r->add_topics());
      break;
    }
    case v1::ADMIN_KICK: {
      if (!sessions_per_name_.count(arg)) {
        send_error(s, v1::ERROR_NOT_FOUND, rid, "no live session of '" + arg + "'", "", "admin");
        return;
      }
      spdlog::warn("admin kick by={} name={}", admin_name, arg);
      const std::size_t n = kick_name(arg);
      r->set_message("kicked " + std::to_string(n) + " session(s) of '" + arg + "'");
      break;
    }
    case v1::ADMIN_REVOKE: {
      if (!acl_.by_name(arg) && !sessions_per_name_.count(arg)) {
        send_error(s, v1::ERROR_NOT_FOUND, rid, "'" + arg + "' is not on the allow-list", "",
                   "admin");
        return;
      }
      spdlog::warn("admin revoke by={} name={}", admin_name, arg);
      const std::size_t n = revoke_name(arg);
      r->set_message("revoked '" + arg + "' (" + std::to_string(n) +
                     " session(s) dropped; lasts until restart — remove it from " +
                     config_.acl_path + " to make it permanent)");
      break;
    }
    case v1::ADMIN_RELOAD: {
      spdlog::info("admin reload by={}", admin_name);
      std::string summary;
      Status st = reload_acl(summary);
      Session* self = find_session(routing_id);
      if (!st) {
        if (self)
          send_error(*self, v1::ERROR_INTERNAL, rid, "reload failed: " + st.message(), "", "admin");
        spdlog::error("acl reload failed: {}", st.message());
        return;
      }
      r->set_message(summary);
      break;
    }
    default:
      send_error(s, v1::ERROR_UNSUPPORTED, rid, "unknown admin command", "", "admin");
      return;
  }
  if (Session* self = find_session(routing_id)) send_control(*self, op);
}

}  // namespace curvebus::broker
