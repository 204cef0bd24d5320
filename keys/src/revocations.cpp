#include "curvebus/revocations.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "curvebus/certificate.hpp"
#include "toml_support.hpp"

namespace curvebus {

namespace {

using keys_detail::config_error;
using keys_detail::where;

Status io_error(const std::string& what, int err) {
  return Status::Error(what + ": " + std::strerror(err), "IO");
}

const char* kind_field(Revocation::Kind kind) {
  return kind == Revocation::Kind::kKey ? "key" : "name";
}

bool valid_value(Revocation::Kind kind, const std::string& value) {
  return kind == Revocation::Kind::kKey ? is_z85_key(value) : is_client_name(value);
}

Status read_optional_string(const toml::table& t, const char* field, const std::string& source,
                            std::string& out) {
  const toml::node* n = t.get(field);
  if (!n) return Status::Ok();
  const auto* s = n->as_string();
  if (!s)
    return config_error(where(source, n->source()),
                        std::string("'") + field + "' must be a string");
  out = s->get();
  return Status::Ok();
}

Status write_all(int fd, const std::string& text, const std::string& path) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write " + path, errno);
    }
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Result<RevocationList> RevocationList::load_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return RevocationList{};  // nothing revoked yet
    return io_error("cannot read revocation list " + path, errno);
  }
  if (!S_ISREG(st.st_mode))
    return Status::Error("revocation list " + path + " is not a regular file", "IO");
  std::ifstream in(path);
  if (!in) return io_error("cannot read revocation list " + path, errno);
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status::Error("cannot read revocation list " + path, "IO");
  return parse(buf.str(), path);
}

Result<RevocationList> RevocationList::parse(std::string_view text, const std::string& source) {
  toml::table root;
  const toml::array* arr = nullptr;
  if (Status st = keys_detail::parse_table_array(text, source, "revoked", root, &arr); !st)
    return st;
  RevocationList list;
  if (!arr) return list;
  static const std::set<std::string> known = {"key", "name", "by", "at", "reason"};
  std::map<std::pair<Revocation::Kind, std::string>, std::string> seen;  // -> file:line
  for (const toml::node& item : *arr) {
    const toml::table& t = *item.as_table();
    const std::string at = where(source, t.source());
    for (auto&& [k, v] : t) {
      if (!known.count(std::string(k.str())))
        return config_error(where(source, v.source()),
                            "unknown key '" + std::string(k.str()) +
                                "' in [[revoked]] (expected key or name, by, at, reason)");
    }
    const toml::node* key = t.get("key");
    const toml::node* name = t.get("name");
    if (key && name)
      return config_error(at, "a [[revoked]] entry holds either key or name, not both");
    if (!key && !name) return config_error(at, "a [[revoked]] entry needs key or name");
    Revocation r;
    r.kind = key ? Revocation::Kind::kKey : Revocation::Kind::kName;
    const toml::node* value = key ? key : name;
    const auto* text_value = value->as_string();
    if (!text_value || !valid_value(r.kind, text_value->get()))
      return config_error(where(source, value->source()),
                          key ? "revoked key is not a Z85 CURVE public key (40 characters)"
                              : "revoked name is not a client name (text without '/', '+', '#', "
                                "braces or spaces)");
    r.value = text_value->get();
    Status s = read_optional_string(t, "by", source, r.by);
    if (!s) return s;
    s = read_optional_string(t, "reason", source, r.reason);
    if (!s) return s;
    if (const toml::node* when = t.get("at")) {
      std::string why = keys_detail::read_instant(*when, r.at_us);
      if (!why.empty()) return config_error(where(source, when->source()), "'at': " + why);
    }
    auto [it, fresh] = seen.emplace(std::make_pair(r.kind, r.value), at);
    if (!fresh)
      return config_error(
          at, std::string("this ") + kind_field(r.kind) + " is already revoked at " + it->second);
    list.add(std::move(r));
  }
  return list;
}

std::string RevocationList::to_toml() const {
  std::string out =
      "# curvebus revocations: public keys and client names the broker refuses until an\n"
      "# admin lifts the revocation. Written by the broker (admin revoke, revoke-key,\n"
      "# unrevoke); edit by hand only while the broker is stopped. Each [[revoked]] holds\n"
      "# key (a Z85 public key) or name, and who revoked it, when (UTC) and why. A\n"
      "# malformed entry stops the broker from loading the file rather than lifting a\n"
      "# revocation.\n";
  for (const Revocation& r : entries_) {
    out += "\n[[revoked]]\n";
    out += std::string(kind_field(r.kind)) + " = " + keys_detail::toml_quote(r.value) + "\n";
    if (r.kind == Revocation::Kind::kKey) out += "# fingerprint " + key_fingerprint(r.value) + "\n";
    if (!r.by.empty()) out += "by = " + keys_detail::toml_quote(r.by) + "\n";
    if (r.at_us > 0) out += "at = " + format_utc(r.at_us) + "\n";
    if (!r.reason.empty()) out += "reason = " + keys_detail::toml_quote(r.reason) + "\n";
  }
  return out;
}

Status RevocationList::save_file(const std::string& path) const {
  const std::string text = to_toml();
  std::string dir = ".";
  const std::size_t slash = path.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a temporary file next to " + path, errno);
  auto fail = [&](Status s) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (::fchmod(fd, 0600) != 0) return fail(io_error("cannot set mode of " + tmp, errno));
  Status s = write_all(fd, text, tmp);
  if (!s) return fail(s);
  if (::fsync(fd) != 0) return fail(io_error("cannot sync " + tmp, errno));
  const int closed = ::close(fd);
  fd = -1;
  if (closed != 0) return fail(io_error("cannot write " + tmp, errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail(io_error("cannot rename " + tmp + " to " + path, errno));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("cannot open directory " + dir + " to sync it", errno);
  const int synced = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (synced != 0) return io_error("cannot sync directory " + dir, err);
  return Status::Ok();
}

bool RevocationList::add(Revocation r) {
  if (!valid_value(r.kind, r.value)) return false;
  auto& index = r.kind == Revocation::Kind::kKey ? keys_ : names_;
  if (!index.insert(r.value).second) return false;
  entries_.push_back(std::move(r));
  return true;
}

bool RevocationList::remove(Revocation::Kind kind, const std::string& value) {
  auto& index = kind == Revocation::Kind::kKey ? keys_ : names_;
  if (index.erase(value) == 0) return false;
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->kind == kind && it->value == value) {
      entries_.erase(it);
      break;
    }
  }
  return true;
}

Result<std::string> resolve_key(const AllowList& acl, const RevocationList& revoked,
                                std::string_view key_or_fingerprint) {
  const std::string arg(key_or_fingerprint);
  if (is_z85_key(arg)) return arg;
  std::string fp = arg;
  for (char& c : fp)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  const bool well_formed = fp.size() == 19 && fp.compare(0, 3, "b2:") == 0 &&
                           fp.find_first_not_of("0123456789abcdef", 3) == std::string::npos;
  if (!well_formed)
    return Status::Error("'" + arg +
                             "' is neither a Z85 public key (40 characters) nor a key "
                             "fingerprint (b2: and 16 hex digits)",
                         "INVALID");
  std::map<std::string, std::string> matches;  // key -> who holds it (for the message)
  for (const AclEntry& e : acl.entries())
    for (const AclKey& k : e.keys)
      if (key_fingerprint(k.public_key) == fp) matches[k.public_key] = "'" + e.name + "'";
  for (const Revocation& r : revoked.entries())
    if (r.kind == Revocation::Kind::kKey && key_fingerprint(r.value) == fp)
      matches.emplace(r.value, "a revoked key");
  if (matches.empty())
    return Status::Error(
        "no key with fingerprint " + fp + " in the allow-list or among the revoked keys",
        "NOT_FOUND");
  if (matches.size() > 1) {
    std::string who;
    for (const auto& [key, holder] : matches) who += (who.empty() ? "" : ", ") + holder;
    return Status::Error("fingerprint " + fp + " matches " + std::to_string(matches.size()) +
                             " keys (" + who + "); give the full public key",
                         "AMBIGUOUS");
  }
  return matches.begin()->first;
}

}  // namespace curvebus
