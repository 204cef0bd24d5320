// Admission (admission.hpp).
#include "admission.hpp"

namespace curvebus::broker {

Status Admission::load() {
  auto acl = AllowList::load_file(config_.acl_path);
  if (!acl) return Status::Error(acl.status().message(), StatusCode::kConfig);
  RevocationList revoked;
  if (!config_.revocations_file.empty()) {
    auto r = RevocationList::load_file(config_.revocations_file);
    if (!r) return Status::Error(r.status().message(), StatusCode::kConfig);
    revoked = std::move(*r);
  }
  acl_ = std::move(*acl);
  revocations_ = std::move(revoked);
  return Status::Ok();
}

Status Admission::reload() {
  auto loaded = AllowList::load_file(config_.acl_path);
  if (!loaded) return loaded.status();
  acl_ = std::move(*loaded);
  if (!config_.revocations_file.empty()) {
    auto revoked = RevocationList::load_file(config_.revocations_file);
    if (!revoked) return revoked.status();
    revocations_ = std::move(*revoked);
  }
  return Status::Ok();
}

std::string Admission::refusal(const std::string& key, const std::string& name, std::int64_t now_us,
                               v1::ErrorCode* code) const {
  auto set = [&](v1::ErrorCode c) {
    if (code) *code = c;
  };
  const auto match = acl_.by_key(key);
  if (!match.entry) {
    set(v1::ERROR_REVOKED);
    return "unknown key";
  }
  if (!name.empty() && match.entry->name != name) {
    set(v1::ERROR_REVOKED);
    return "key now belongs to another name";
  }
  if (revocations_.key_revoked(key)) {
    set(v1::ERROR_REVOKED);
    return "key revoked";
  }
  if (revocations_.name_revoked(match.entry->name)) {
    set(v1::ERROR_REVOKED);
    return "name revoked";
  }
  switch (key_state(*match.key, now_us)) {
    case KeyState::kValid:
      return "";
    case KeyState::kNotYetValid:
      set(v1::ERROR_KEY_EXPIRED);
      return "key not yet valid";
    case KeyState::kExpired:
      set(v1::ERROR_KEY_EXPIRED);
      return "key expired";
  }
  return "";
}

Status Admission::save_revocations() const {
  if (config_.revocations_file.empty())
    return Status::Error("no revocations_file is configured: the revocation lasts until restart",
                         StatusCode::kConfig);
  return revocations_.save_file(config_.revocations_file);
}

}  // namespace curvebus::broker
