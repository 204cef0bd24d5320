// ADMIN: status, clients, topics, stats, kick, revoke (by name or by key),
// unrevoke, revocations, reload — for names whose ACL entry says admin.
// Every action is audited with who did it.  Revocations are written to
// revocations_file before the reply, so they survive a restart.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "curvebus/certificate.hpp"
#include "protocol.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxAdminListing = 10000;

}  // namespace

std::string Protocol::reload_acl(Status& status) {
  status = admission_.reload();
  if (!status) return "";
  // Identity is the key: a session survives only if its key is still on the
  // list, under the same name, valid and not revoked.
  std::size_t cut = 0, removed_subscriptions = 0;
  std::vector<std::uint64_t> ids;
  for (Session* s : sessions_.all()) ids.push_back(s->id);
  for (std::uint64_t id : ids) {
    Session* s = sessions_.find(id);
    if (!s) continue;
    v1::ErrorCode code = v1::ERROR_REVOKED;
    const std::string why = admission_.refusal(s->key, s->name, now_us_, &code);
    if (!why.empty()) {
      audit("session_cut", s->name,
            {{"name", s->name}, {"fp", s->fingerprint}, {"reason", why}, {"by", "reload"}});
      send_error(*s, code, 0, "this session's key is no longer allowed: " + why, "", "session");
      sessions_.tombstone(s->peer, code);
      close_session(
          *s, code == v1::ERROR_KEY_EXPIRED ? CloseReason::kKeyExpired : CloseReason::kRevoked,
          "reload: " + why);
      ++cut;
      continue;
    }
    const auto match = admission_.acl().by_key(s->key);
    s->rights = *match.entry;
    s->key_not_after_us = match.key->not_after_us;
    sessions_.watch_key_expiry(*s);
    for (auto it = s->subscriptions.begin(); it != s->subscriptions.end();) {
      if (may_subscribe(s->rights, *it)) {
        ++it;
        continue;
      }
      topics_.unsubscribe(*it, s->id);
      it = s->subscriptions.erase(it);
      ++removed_subscriptions;
    }
  }
  const std::string summary = "reloaded " + config_.acl_path + ": " +
                              std::to_string(admission_.acl().entries().size()) + " names, " +
                              std::to_string(admission_.acl().key_count()) + " keys, " +
                              std::to_string(admission_.revocations().entries().size()) +
                              " revocations; " + std::to_string(cut) + " sessions cut, " +
                              std::to_string(removed_subscriptions) + " subscriptions removed";
  spdlog::info("acl {}", summary);
  return summary;
}

void Protocol::handle_admin(Session& s, const v1::Admin& req) {
  const std::uint64_t rid = req.request_id();
  const char* command = v1::AdminCommand_Name(req.command()).c_str();
  if (!s.rights.admin) {
    ++counters_.not_admin;
    deny(s, "admin", command, rid, "'" + s.name + "' is not an administrator", v1::ERROR_NOT_ADMIN);
    return;
  }
  const std::string routing_id = s.peer;  // s may go away (kick / revoke of oneself)
  const std::string admin_name = s.name;
  const std::string admin_fp = s.fingerprint;
  const std::string& arg = req.argument();
  auto audit_action = [&](const std::string& result) {
    audit("admin", admin_name,
          {{"name", admin_name},
           {"fp", admin_fp},
           {"command", command},
           {"argument", arg},
           {"reason", req.reason()},
           {"result", result}});
  };
  auto fail = [&](v1::ErrorCode code, const std::string& message) {
    audit_action("refused: " + message);
    if (Session* self = sessions_.find(routing_id))
      send_error(*self, code, rid, message, "", "admin");
  };
  v1::Op op;
  auto* r = op.mutable_admin_reply();
  r->set_request_id(rid);
  r->set_command(req.command());
  const std::int64_t at_us = now_us_;
  switch (req.command()) {
    case v1::ADMIN_STATUS:
    case v1::ADMIN_STATS:
      fill_status(*r->mutable_status());
      break;
    case v1::ADMIN_CLIENTS: {
      std::vector<const Session*> list;
      for (const Session* peer : sessions_.all()) list.push_back(peer);
      std::sort(list.begin(), list.end(), [](const Session* a, const Session* b) {
        return a->name != b->name ? a->name < b->name : a->id < b->id;
      });
      if (list.size() > kMaxAdminListing) {
        list.resize(kMaxAdminListing);
        r->set_truncated(true);
      }
      for (const Session* peer : list) fill_client_info(*peer, *r->add_clients());
      op_work_ += static_cast<double>(list.size());
      break;
    }
    case v1::ADMIN_TOPICS: {
      for (const auto& [name, entry] : topics_.directory()) {
        if (!entry.topic) continue;
        if (static_cast<std::size_t>(r->topics_size()) >= kMaxAdminListing) {
          r->set_truncated(true);
          break;
        }
        topics_.describe(name, entry, *r->add_topics());
      }
      op_work_ += static_cast<double>(r->topics_size());
      break;
    }
    case v1::ADMIN_KICK: {
      const NameState* ns = names_.find(arg);
      if (!ns || ns->sessions == 0) {
        fail(v1::ERROR_NOT_FOUND, "no live session of '" + arg + "'");
        return;
      }
      spdlog::warn("admin kick by={} name={}", admin_name, printable(arg));
      const std::size_t n =
          cut_sessions([&](const Session& x) { return x.name == arg; }, v1::ERROR_KICKED,
                       CloseReason::kKicked, "an administrator ended this session");
      r->set_message("kicked " + std::to_string(n) + " session(s) of '" + arg + "'");
      break;
    }
    case v1::ADMIN_REVOKE: {  // by name: every key of the name, now and later
      const NameState* ns = names_.find(arg);
      if (!admission_.acl().by_name(arg) && (!ns || ns->sessions == 0)) {
        fail(v1::ERROR_NOT_FOUND, "'" + arg + "' is not on the allow-list");
        return;
      }
      Revocation rev{Revocation::Kind::kName, arg, admin_name, at_us, req.reason()};
      const bool added = admission_.revocations().add(rev);
      const Status saved = admission_.save_revocations();
      const std::size_t n =
          cut_sessions([&](const Session& x) { return x.name == arg; }, v1::ERROR_REVOKED,
                       CloseReason::kRevoked, "the name '" + arg + "' was revoked");
      spdlog::warn("admin revoke by={} name={} sessions_dropped={} persisted={}", admin_name,
                   printable(arg), n, saved ? "yes" : saved.message());
      r->set_message(std::string(added ? "revoked" : "already revoked:") + " name '" + arg + "' (" +
                     std::to_string(n) + " session(s) cut); " +
                     (saved ? "kept in " + config_.revocations_file + " until unrevoked"
                            : "NOT persisted: " + saved.message()));
      break;
    }
    case v1::ADMIN_REVOKE_KEY: {  // one key: the name's other keys stay valid
      auto resolved = resolve_key(admission_.acl(), admission_.revocations(), arg);
      if (!resolved) {
        fail(v1::ERROR_NOT_FOUND, resolved.status().message());
        return;
      }
      const std::string key = *resolved;
      const std::string fp = key_fingerprint(key);
      Revocation rev{Revocation::Kind::kKey, key, admin_name, at_us, req.reason()};
      const bool added = admission_.revocations().add(rev);
      const Status saved = admission_.save_revocations();
      const std::size_t n =
          cut_sessions([&](const Session& x) { return x.key == key; }, v1::ERROR_REVOKED,
                       CloseReason::kRevoked, "this key (" + fp + ") was revoked");
      spdlog::warn("admin revoke-key by={} fp={} sessions_dropped={} persisted={}", admin_name, fp,
                   n, saved ? "yes" : saved.message());
      r->set_message(std::string(added ? "revoked" : "already revoked:") + " key " + fp + " (" +
                     std::to_string(n) + " session(s) cut); " +
                     (saved ? "kept in " + config_.revocations_file + " until unrevoked"
                            : "NOT persisted: " + saved.message()));
      break;
    }
    case v1::ADMIN_UNREVOKE: {
      bool removed = admission_.revocations().remove(Revocation::Kind::kName, arg);
      std::string what = "name '" + arg + "'";
      if (!removed) {
        if (auto key = resolve_key(admission_.acl(), admission_.revocations(), arg)) {
          removed = admission_.revocations().remove(Revocation::Kind::kKey, *key);
          what = "key " + key_fingerprint(*key);
        }
      }
      if (!removed) {
        fail(v1::ERROR_NOT_FOUND, "'" + arg + "' is not revoked");
        return;
      }
      const Status saved = admission_.save_revocations();
      spdlog::warn("admin unrevoke by={} {}", admin_name, printable(what));
      r->set_message("lifted the revocation of " + what +
                     (saved ? std::string() : "; NOT persisted: " + saved.message()));
      break;
    }
    case v1::ADMIN_REVOCATIONS:
      for (const auto& rev : admission_.revocations().entries()) {
        auto* info = r->add_revocations();
        const bool by_key = rev.kind == Revocation::Kind::kKey;
        info->set_kind(by_key ? "key" : "name");
        info->set_value(by_key ? key_fingerprint(rev.value) : rev.value);
        info->set_by(rev.by);
        info->set_at_us(rev.at_us);
        info->set_reason(rev.reason);
      }
      break;
    case v1::ADMIN_RELOAD: {
      spdlog::info("admin reload by={}", admin_name);
      Status st;
      const std::string summary = reload_acl(st);
      if (!st) {
        spdlog::error("acl reload failed: {}", st.message());
        fail(v1::ERROR_INTERNAL, "reload failed: " + st.message());
        return;
      }
      r->set_message(summary);
      break;
    }
    case v1::ADMIN_FEDERATION:
      if (!describe_federation_) {
        fail(v1::ERROR_UNSUPPORTED, "this broker has no [federation] in its configuration");
        return;
      }
      describe_federation_(*r);
      break;
    default:
      fail(v1::ERROR_UNSUPPORTED, "unknown admin command");
      return;
  }
  audit_action(r->message().empty() ? "ok" : r->message());
  if (Session* self = sessions_.find(routing_id)) send_control(*self, op);
}

}  // namespace curvebus::broker
