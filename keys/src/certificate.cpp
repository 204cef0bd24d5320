#include "curvebus/certificate.hpp"

#include <sodium.h>
#include <sys/stat.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "trim.hpp"

namespace curvebus {

namespace {

using keys_detail::trim;

std::string unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    return v.substr(1, v.size() - 2);
  return v;
}

std::string header(bool secret) {
  char when[64] = {0};
  std::time_t now = std::time(nullptr);
  std::tm tm_utc{};
  gmtime_r(&now, &tm_utc);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm_utc);
  std::ostringstream out;
  out << "#   ****  Generated on " << when << " by curvebus  ****\n";
  if (secret) {
    out << "#   ZeroMQ CURVE **Secret** Certificate\n"
        << "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
  } else {
    out << "#   ZeroMQ CURVE Public Certificate\n"
        << "#   Exchange securely, or use a secure mechanism to verify the contents\n"
        << "#   of this file after exchange. Store public certificates in your home\n"
        << "#   directory, in the .curve subdirectory.\n";
  }
  out << "\n";
  return out.str();
}

std::string body(const KeyPair& keys, const std::map<std::string, std::string>& metadata,
                 bool secret) {
  std::ostringstream out;
  out << "metadata\n";
  for (const auto& [k, v] : metadata) out << "    " << k << " = \"" << v << "\"\n";
  out << "curve\n";
  out << "    public-key = \"" << keys.public_key << "\"\n";
  if (secret)
    out << "    "
        << "secret"
        << "-key = \"" << keys.secret_key << "\"\n";
  return out.str();
}

Status write_file(const std::string& path, const std::string& text, mode_t mode, bool overwrite) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return Status::Error(path + " already exists (refusing to overwrite a key)", "EXISTS");
    return Status::Error("cannot write " + path + ": " + std::strerror(errno), "IO");
  }
  // The mode given to open() only applies to new files; enforce it always.
  if (::fchmod(fd, mode) != 0 || ::ftruncate(fd, 0) != 0) {
    int e = errno;
    ::close(fd);
    return Status::Error("cannot set mode of " + path + ": " + std::strerror(e), "IO");
  }
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return Status::Error("cannot write " + path + ": " + std::strerror(e), "IO");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) return Status::Error("cannot write " + path, "IO");
  return Status::Ok();
}

}  // namespace

KeyPair generate_keypair() {
  char pub[41] = {0};
  char sec[41] = {0};
  if (zmq_curve_keypair(pub, sec) != 0) return {};
  KeyPair kp{pub, sec};
  sodium_memzero(sec, sizeof sec);
  return kp;
}

bool is_z85_key(const std::string& key) {
  if (key.size() != 40) return false;
  std::uint8_t raw[32];
  return zmq_z85_decode(raw, key.c_str()) != nullptr;
}

std::string public_from_secret(const std::string& secret_key) {
  if (!is_z85_key(secret_key)) return {};
  char pub[41] = {0};
  if (zmq_curve_public(pub, secret_key.c_str()) != 0) return {};
  return pub;
}

Status write_certificate(const std::string& dir, const std::string& name, const KeyPair& keys,
                         bool overwrite, std::map<std::string, std::string> metadata) {
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
    return Status::Error("invalid key name '" + name + "' (no '/', not starting with '.')",
                         "INVALID");
  if (!is_z85_key(keys.public_key) || !is_z85_key(keys.secret_key))
    return Status::Error("invalid key pair", "INVALID");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::Error("cannot create " + dir + ": " + std::strerror(errno), "IO");
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::Error(dir + " is not a directory", "IO");
  }
  if (metadata.find("name") == metadata.end()) metadata["name"] = name;
  const std::string base = dir + "/" + name;
  if (!overwrite) {
    if (::access(base.c_str(), F_OK) == 0)
      return Status::Error(base + " already exists (refusing to overwrite a key)", "EXISTS");
    if (::access((base + "_secret").c_str(), F_OK) == 0)
      return Status::Error(base + "_secret already exists (refusing to overwrite a key)", "EXISTS");
  }
  Status s =
      write_file(base + "_secret", header(true) + body(keys, metadata, true), 0600, overwrite);
  if (!s) return s;
  return write_file(base, header(false) + body(keys, metadata, false), 0644, overwrite);
}

Result<Certificate> read_certificate(const std::string& path, bool need_secret) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Status::Error("cannot read key file " + path + ": " + std::strerror(errno), "NOT_FOUND");
  if (!S_ISREG(st.st_mode)) return Status::Error(path + " is not a regular file", "IO");
  if (st.st_size > 64 * 1024) return Status::Error(path + " is too large for a certificate", "IO");
  std::ifstream in(path);
  if (!in) return Status::Error("cannot open key file " + path, "IO");
  Certificate cert;
  std::string line, section;
  while (std::getline(in, line)) {
    // Only whole-line comments: '#' is a Z85 digit, so it may appear in keys.
    if (trim(line).empty() || trim(line).front() == '#') continue;
    bool indented = line[0] == ' ' || line[0] == '\t';
    std::string text = trim(line);
    if (!indented) {
      section = text;
      continue;
    }
    std::size_t eq = text.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(text.substr(0, eq));
    std::string value = unquote(trim(text.substr(eq + 1)));
    if (section == "curve" && key == "public-key")
      cert.keys.public_key = value;
    else if (section == "curve" && key == "secret-key")
      cert.keys.secret_key = value;
    else if (section == "metadata")
      cert.metadata[key] = value;
  }
  if (!is_z85_key(cert.keys.public_key))
    return Status::Error(path + " holds no valid public-key (Z85, 40 characters)", "INVALID");
  if (need_secret) {
    if (cert.keys.secret_key.empty())
      return Status::Error(path + " holds no secret key (use the NAME_secret file)", "INVALID");
    if (!is_z85_key(cert.keys.secret_key) ||
        public_from_secret(cert.keys.secret_key) != cert.keys.public_key)
      return Status::Error(path + " holds a secret key that does not match its public key",
                           "INVALID");
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return Status::Error("secret key " + path + " is accessible by group or others (mode " +
                               mode + "); run: chmod 600 " + path,
                           "INSECURE");
    }
  }
  return cert;
}

Result<std::string> resolve_public_key(const std::string& key_or_path) {
  if (is_z85_key(key_or_path)) return key_or_path;
  auto cert = read_certificate(key_or_path, false);
  if (!cert) return cert.status();
  return cert->keys.public_key;
}

std::string key_fingerprint(const std::string& public_key_z85) {
  std::uint8_t raw[32];
  if (public_key_z85.size() != 40 || !zmq_z85_decode(raw, public_key_z85.c_str()))
    return "b2:invalid";
  std::uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, raw, sizeof raw, nullptr, 0);
  static const char* hex = "0123456789abcdef";
  std::string out = "b2:";
  for (int i = 0; i < 8; ++i) {
    out.push_back(hex[hash[i] >> 4]);
    out.push_back(hex[hash[i] & 15]);
  }
  return out;
}

}  // namespace curvebus
