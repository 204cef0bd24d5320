#include "curvebus/federation.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "federation.pb.h"

namespace curvebus::fed {

namespace {

void ensure_sodium() {
  // sodium_init() is idempotent and thread-safe; it only fails without a
  // usable random source, where nothing here could work.
  static const int once = sodium_init();
  (void)once;
}

bool is_kept_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

int upper_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int any_hex_value(char c) {
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return upper_hex_value(c);
}

bool is_valid_class(char klass) {
  return klass == 's' || klass == 'c' || klass == 'r';
}

Status malformed(std::string message) {
  return Status::Error(std::move(message), StatusCode::kMalformed);
}

// Calls f(level) for each '/'-separated level of `s` (one empty level for "").
template <typename F>
void for_each_level(std::string_view s, F&& f) {
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      f(s.substr(start), true);
      return;
    }
    f(s.substr(start, slash - start), false);
    start = slash + 1;
  }
}

std::string subject_head(std::string_view prefix, char klass, std::string_view origin) {
  std::string out;
  out.reserve(prefix.size() + origin.size() + 4);
  out.append(prefix).append(1, '.').append(1, klass).append(1, '.').append(origin);
  return out;
}

// ---- key files

Status write_key_file(const std::string& path, const std::string& text, mode_t mode,
                      bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return Status::Error(path + " already exists (refusing to overwrite a key)",
                           StatusCode::kExists);
    return Status::Error("cannot write " + path + ": " + std::strerror(errno), StatusCode::kIo);
  }
  // open()'s mode only applies to a new file; an overwritten one gets it too.
  if (::fchmod(fd, mode) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::Error("cannot set mode of " + path + ": " + std::strerror(e), StatusCode::kIo);
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return Status::Error("cannot write " + path + ": " + std::strerror(e), StatusCode::kIo);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0)
    return Status::Error("cannot write " + path + ": " + std::strerror(errno), StatusCode::kIo);
  return Status::Ok();
}

Status ensure_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::Error("cannot create " + dir + ": " + std::strerror(errno), StatusCode::kIo);
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::Error(dir + " is not a directory", StatusCode::kIo);
  }
  return Status::Ok();
}

// Reads a file of 64 hex digits (whitespace around them allowed) into `out`.
Status read_key_file(const std::string& path, bool secret, const char* what,
                     std::array<std::uint8_t, 32>& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Status::Error(
        std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno),
        StatusCode::kNotFound);
  if (!S_ISREG(st.st_mode)) return Status::Error(path + " is not a regular file", StatusCode::kIo);
  if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::Error(std::string(what) + " " + path +
                             " is accessible by group or others (mode " + mode +
                             "); run: chmod 600 " + path,
                         StatusCode::kInsecure);
  }
  if (st.st_size > 4096)
    return Status::Error(path + " is too large for a " + what, StatusCode::kInvalid);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("cannot open " + path, StatusCode::kIo);
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  const char* space = " \t\r\n";
  const std::size_t first = s.find_first_not_of(space);
  const std::size_t last = s.find_last_not_of(space);
  const std::string_view hex = first == std::string::npos
                                   ? std::string_view()
                                   : std::string_view(s).substr(first, last - first + 1);
  const bool ok = hex_decode(hex, out.data(), out.size());
  sodium_memzero(s.data(), s.size());
  if (!ok)
    return Status::Error(path + " does not hold a " + what + " (64 hex digits)",
                         StatusCode::kInvalid);
  return Status::Ok();
}

// ---- envelopes

v1::Class to_proto(Class klass) {
  switch (klass) {
    case Class::kStream:
      return v1::CLASS_STREAM;
    case Class::kCommand:
      return v1::CLASS_COMMAND;
    case Class::kRetained:
      return v1::CLASS_RETAINED;
  }
  return v1::CLASS_UNSPECIFIED;
}

bool from_proto(int klass, Class& out) {
  switch (klass) {
    case v1::CLASS_STREAM:
      out = Class::kStream;
      return true;
    case v1::CLASS_COMMAND:
      out = Class::kCommand;
      return true;
    case v1::CLASS_RETAINED:
      out = Class::kRetained;
      return true;
    default:
      return false;
  }
}

const std::uint8_t* bytes_of(std::string_view s) {
  return reinterpret_cast<const std::uint8_t*>(s.data());
}

}  // namespace

// ------------------------------------------------------------------ subjects

bool is_valid_origin(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!is_kept_byte(static_cast<unsigned char>(c))) return false;
  return true;
}

bool is_valid_prefix(std::string_view prefix) {
  if (prefix.empty()) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = prefix.find('.', start);
    const std::string_view token =
        prefix.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_valid_origin(token)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string escape_level(std::string_view level) {
  if (level.empty()) return "~";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(level.size());
  for (char ch : level) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_kept_byte(c)) {
      out.push_back(ch);
    } else {
      out.push_back('~');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

Status unescape_level(std::string_view token, std::string& out) {
  out.clear();
  if (token.empty()) return malformed("empty subject token");
  if (token == "~") return Status::Ok();
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (is_kept_byte(c)) {
      out.push_back(token[i]);
      continue;
    }
    if (c != '~') return malformed("unescaped byte in subject token '" + std::string(token) + "'");
    if (i + 2 >= token.size())
      return malformed("truncated escape in subject token '" + std::string(token) + "'");
    const int hi = upper_hex_value(token[i + 1]);
    const int lo = upper_hex_value(token[i + 2]);
    if (hi < 0 || lo < 0)
      return malformed("bad escape (not two upper-case hex digits) in subject token '" +
                       std::string(token) + "'");
    const auto byte = static_cast<unsigned char>(hi * 16 + lo);
    if (is_kept_byte(byte))
      return malformed("needless escape of '" + std::string(1, static_cast<char>(byte)) +
                       "' in subject token '" + std::string(token) + "'");
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return Status::Ok();
}

std::string subject_for(std::string_view prefix, char klass, std::string_view origin,
                        std::string_view topic) {
  if (!is_valid_class(klass) || !is_valid_origin(origin) || !is_valid_prefix(prefix)) return {};
  std::string out = subject_head(prefix, klass, origin);
  for_each_level(topic, [&](std::string_view level, bool) {
    out.push_back('.');
    out += escape_level(level);
  });
  return out;
}

std::string interest_subject(std::string_view prefix, char klass, std::string_view origin_or_star,
                             std::string_view pattern) {
  if (!is_valid_class(klass) || !is_valid_prefix(prefix) ||
      !(origin_or_star == "*" || is_valid_origin(origin_or_star)))
    return {};
  std::string out = subject_head(prefix, klass, origin_or_star);
  for_each_level(pattern, [&](std::string_view level, bool last) {
    out.push_back('.');
    if (level == "+")
      out.push_back('*');
    else if (last && level == "#")
      out.push_back('>');
    else
      out += escape_level(level);
  });
  return out;
}

std::vector<std::string> interest_subjects(std::string_view prefix, char klass,
                                           std::string_view origin_or_star,
                                           std::string_view pattern) {
  std::vector<std::string> out;
  std::string main = interest_subject(prefix, klass, origin_or_star, pattern);
  if (main.empty()) return out;
  out.push_back(std::move(main));
  if (pattern.size() > 2 && pattern.substr(pattern.size() - 2) == "/#")
    out.push_back(
        interest_subject(prefix, klass, origin_or_star, pattern.substr(0, pattern.size() - 2)));
  return out;
}

Status parse_subject(std::string_view prefix, std::string_view subject, ParsedSubject& out) {
  if (prefix.empty() || subject.size() <= prefix.size() ||
      subject.substr(0, prefix.size()) != prefix || subject[prefix.size()] != '.')
    return malformed("subject does not start with '" + std::string(prefix) + ".'");
  std::string_view rest = subject.substr(prefix.size() + 1);
  // class
  if (rest.size() < 2 || !is_valid_class(rest[0]) || rest[1] != '.')
    return malformed("subject has no class s, c or r after the prefix");
  out.klass = rest[0];
  rest.remove_prefix(2);
  // origin
  const std::size_t dot = rest.find('.');
  const std::string_view origin = rest.substr(0, dot);
  if (!is_valid_origin(origin)) return malformed("subject has no valid origin name");
  if (dot == std::string_view::npos) return malformed("subject has no topic level");
  out.origin.assign(origin);
  rest.remove_prefix(dot + 1);
  // topic levels
  out.topic.clear();
  std::string level;
  bool first = true;
  while (true) {
    const std::size_t next = rest.find('.');
    if (Status s = unescape_level(rest.substr(0, next), level); !s) return s;
    if (!first) out.topic.push_back('/');
    out.topic += level;
    first = false;
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next + 1);
  }
  return Status::Ok();
}

// ------------------------------------------------------------------ keys

SigningKeys generate_signing_keys() {
  ensure_sodium();
  SigningKeys keys;
  crypto_sign_keypair(keys.public_key.data(), keys.secret_key.data());
  return keys;
}

SigningKeys signing_keys_from_seed(const std::array<std::uint8_t, 32>& seed) {
  ensure_sodium();
  SigningKeys keys;
  crypto_sign_seed_keypair(keys.public_key.data(), keys.secret_key.data(), seed.data());
  return keys;
}

std::uint32_t federation_key_id(const std::array<std::uint8_t, 32>& key) {
  ensure_sodium();
  std::uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, key.data(), key.size(), nullptr, 0);
  return static_cast<std::uint32_t>(hash[0]) | static_cast<std::uint32_t>(hash[1]) << 8 |
         static_cast<std::uint32_t>(hash[2]) << 16 | static_cast<std::uint32_t>(hash[3]) << 24;
}

FederationKey make_federation_key(const std::array<std::uint8_t, 32>& key) {
  FederationKey k;
  k.key = key;
  k.id = federation_key_id(key);
  return k;
}

FederationKey generate_federation_key() {
  ensure_sodium();
  std::array<std::uint8_t, 32> key;
  randombytes_buf(key.data(), key.size());
  FederationKey k = make_federation_key(key);
  sodium_memzero(key.data(), key.size());
  return k;
}

std::string hex_encode(const std::uint8_t* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xF]);
  }
  return out;
}

bool hex_decode(std::string_view hex, std::uint8_t* out, std::size_t size) {
  if (hex.size() != size * 2) return false;
  for (std::size_t i = 0; i < size; ++i) {
    const int hi = any_hex_value(hex[2 * i]);
    const int lo = any_hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

Status write_signing_keys(const std::string& dir, const std::string& name, const SigningKeys& keys,
                          bool overwrite) {
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.')
    return Status::Error("invalid key name '" + name + "' (no '/', not starting with '.')",
                         StatusCode::kInvalid);
  if (Status s = ensure_dir(dir); !s) return s;
  const std::string base = dir + "/" + name;
  if (!overwrite) {
    for (const std::string& path : {base + ".sign", base + ".sign_secret"})
      if (::access(path.c_str(), F_OK) == 0)
        return Status::Error(path + " already exists (refusing to overwrite a key)",
                             StatusCode::kExists);
  }
  std::string seed = hex_encode(keys.secret_key.data(), 32) + "\n";
  Status s = write_key_file(base + ".sign_secret", seed, 0600, overwrite);
  sodium_memzero(seed.data(), seed.size());
  if (!s) return s;
  return write_key_file(base + ".sign",
                        hex_encode(keys.public_key.data(), keys.public_key.size()) + "\n", 0644,
                        overwrite);
}

Result<std::array<std::uint8_t, 32>> read_signing_public_key(const std::string& path) {
  std::array<std::uint8_t, 32> key{};
  if (Status s = read_key_file(path, false, "signing public key", key); !s) return s;
  if (crypto_core_ed25519_is_valid_point(key.data()) != 1)
    return Status::Error(path + " does not hold a valid Ed25519 public key", StatusCode::kInvalid);
  return key;
}

Result<SigningKeys> read_signing_keys(const std::string& secret_path) {
  std::array<std::uint8_t, 32> seed{};
  if (Status s = read_key_file(secret_path, true, "signing secret key", seed); !s) return s;
  SigningKeys keys = signing_keys_from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return keys;
}

Status write_federation_key(const std::string& path, const FederationKey& key, bool overwrite) {
  std::string text = hex_encode(key.key.data(), key.key.size()) + "\n";
  Status s = write_key_file(path, text, 0600, overwrite);
  sodium_memzero(text.data(), text.size());
  return s;
}

Result<FederationKey> read_federation_key(const std::string& path) {
  std::array<std::uint8_t, 32> key{};
  if (Status s = read_key_file(path, true, "federation key", key); !s) return s;
  FederationKey k = make_federation_key(key);
  sodium_memzero(key.data(), key.size());
  return k;
}

// ------------------------------------------------------------------ envelopes

char class_letter(Class klass) {
  switch (klass) {
    case Class::kStream:
      return 's';
    case Class::kCommand:
      return 'c';
    case Class::kRetained:
      return 'r';
  }
  return '?';
}

const char* refusal_name(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNone:
      return "none";
    case Refusal::kMalformed:
      return "malformed";
    case Refusal::kUnknownKey:
      return "unknown_key";
    case Refusal::kBadBox:
      return "bad_box";
    case Refusal::kUnknownOrigin:
      return "unknown_origin";
    case Refusal::kBadSignature:
      return "bad_signature";
    case Refusal::kSubjectMismatch:
      return "subject_mismatch";
    case Refusal::kDenied:
      return "denied";
    case Refusal::kNotImported:
      return "not_imported";
    case Refusal::kReplayed:
      return "replayed";
    case Refusal::kExpired:
      return "expired";
  }
  return "unknown";
}

std::string seal(const Envelope& envelope, const SigningKeys& origin, const FederationKey& key,
                 std::string_view subject) {
  ensure_sodium();
  v1::Envelope env;
  env.set_origin(envelope.origin);
  env.set_publisher(envelope.publisher);
  env.set_topic(envelope.topic);
  env.set_epoch(envelope.epoch);
  env.set_seq(envelope.seq);
  env.set_publish_time_us(envelope.publish_time_us);
  env.set_retained(envelope.retained);
  env.set_payload(envelope.payload);
  env.set_content_type(envelope.content_type);
  env.set_klass(to_proto(envelope.klass));

  v1::Signed signed_envelope;
  std::string* env_bytes = signed_envelope.mutable_envelope();
  env.SerializeToString(env_bytes);
  std::array<std::uint8_t, crypto_sign_BYTES> signature{};
  crypto_sign_detached(signature.data(), nullptr, bytes_of(*env_bytes), env_bytes->size(),
                       origin.secret_key.data());
  signed_envelope.set_signature(signature.data(), signature.size());
  std::string plain = signed_envelope.SerializeAsString();

  v1::Sealed sealed;
  sealed.set_key_id(key.id);
  std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  sealed.set_nonce(nonce.data(), nonce.size());
  std::string* box = sealed.mutable_box();
  box->resize(plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long box_size = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<std::uint8_t*>(box->data()), &box_size, bytes_of(plain), plain.size(),
      bytes_of(subject), subject.size(), nullptr, nonce.data(), key.key.data());
  box->resize(static_cast<std::size_t>(box_size));
  sodium_memzero(plain.data(), plain.size());
  return sealed.SerializeAsString();
}

Refusal open(std::string_view sealed_bytes, std::string_view prefix, std::string_view subject,
             const std::vector<FederationKey>& keys, const PeerKeyLookup& peer_key, Envelope& out) {
  ensure_sodium();
  v1::Sealed sealed;
  if (!sealed.ParseFromArray(sealed_bytes.data(), static_cast<int>(sealed_bytes.size())) ||
      sealed.nonce().size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    return Refusal::kMalformed;
  const FederationKey* key = nullptr;
  for (const FederationKey& k : keys)
    if (k.id == sealed.key_id()) {
      key = &k;
      break;
    }
  if (!key) return Refusal::kUnknownKey;

  const std::string& box = sealed.box();
  if (box.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES) return Refusal::kBadBox;
  std::string plain(box.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long plain_size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<std::uint8_t*>(plain.data()),
                                                 &plain_size, nullptr, bytes_of(box), box.size(),
                                                 bytes_of(subject), subject.size(),
                                                 bytes_of(sealed.nonce()), key->key.data()) != 0)
    return Refusal::kBadBox;
  plain.resize(static_cast<std::size_t>(plain_size));

  v1::Signed signed_envelope;
  v1::Envelope env;
  Class klass = Class::kStream;
  if (!signed_envelope.ParseFromString(plain) ||
      signed_envelope.signature().size() != crypto_sign_BYTES ||
      !env.ParseFromString(signed_envelope.envelope()) || !from_proto(env.klass(), klass))
    return Refusal::kMalformed;

  const std::array<std::uint8_t, 32>* origin_key = peer_key ? peer_key(env.origin()) : nullptr;
  if (!origin_key) return Refusal::kUnknownOrigin;
  const std::string& env_bytes = signed_envelope.envelope();
  if (crypto_sign_verify_detached(bytes_of(signed_envelope.signature()), bytes_of(env_bytes),
                                  env_bytes.size(), origin_key->data()) != 0)
    return Refusal::kBadSignature;

  ParsedSubject parsed;
  if (!parse_subject(prefix, subject, parsed) || parsed.klass != class_letter(klass) ||
      parsed.origin != env.origin() || parsed.topic != env.topic())
    return Refusal::kSubjectMismatch;

  out.origin = env.origin();
  out.publisher = env.publisher();
  out.topic = env.topic();
  out.epoch = env.epoch();
  out.seq = env.seq();
  out.publish_time_us = env.publish_time_us();
  out.retained = env.retained();
  out.payload = std::move(*env.mutable_payload());
  out.content_type = env.content_type();
  out.klass = klass;
  return Refusal::kNone;
}

// ------------------------------------------------------------------ replay

bool ReplayWindow::seen(std::uint64_t seq) const {
  const std::uint64_t bit = seq % kWidth;
  return (bits_[bit / 64] >> (bit % 64)) & 1U;
}

void ReplayWindow::mark(std::uint64_t seq) {
  const std::uint64_t bit = seq % kWidth;
  bits_[bit / 64] |= std::uint64_t{1} << (bit % 64);
}

ReplayWindow::Verdict ReplayWindow::check_and_mark(std::uint64_t epoch, std::uint64_t seq) {
  if (started_ && epoch < epoch_) return Verdict::kStaleEpoch;
  if (!started_ || epoch > epoch_) {
    started_ = true;
    epoch_ = epoch;
    highest_ = seq;
    bits_.fill(0);
    mark(seq);
    return Verdict::kFresh;
  }
  if (seq > highest_) {
    // Slide: the seqs between the old and the new highest are unseen.
    if (seq - highest_ >= kWidth) {
      bits_.fill(0);
    } else {
      for (std::uint64_t s = highest_ + 1; s <= seq; ++s) {
        const std::uint64_t bit = s % kWidth;
        bits_[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
      }
    }
    highest_ = seq;
    mark(seq);
    return Verdict::kFresh;
  }
  if (seq + kWidth <= highest_) return Verdict::kReplayed;  // below the window
  if (seen(seq)) return Verdict::kReplayed;
  mark(seq);
  return Verdict::kFresh;
}

// "replay1" when empty, else "replay1 EPOCH HIGHEST R1 R2 ...": run lengths
// over the window from HIGHEST downwards (min(kWidth, HIGHEST + 1) seqs),
// alternating seen / unseen, starting with seen (HIGHEST always is).
std::string ReplayWindow::save() const {
  std::string out = "replay1";
  if (!started_) return out;
  out += " " + std::to_string(epoch_) + " " + std::to_string(highest_);
  const std::uint64_t span = highest_ + 1 < kWidth ? highest_ + 1 : kWidth;
  bool state = true;
  std::uint64_t run = 0;
  for (std::uint64_t i = 0; i < span; ++i) {
    const bool s = seen(highest_ - i);
    if (s == state) {
      ++run;
    } else {
      out += " " + std::to_string(run);
      state = s;
      run = 1;
    }
  }
  out += " " + std::to_string(run);
  return out;
}

Status ReplayWindow::restore(std::string_view saved) {
  auto invalid = [&] {
    return Status::Error("not a saved replay window: '" + std::string(saved.substr(0, 80)) + "'",
                         StatusCode::kInvalid);
  };
  std::vector<std::uint64_t> numbers;
  std::size_t pos = 0;
  auto next_word = [&](std::string_view& word) {
    while (pos < saved.size() && saved[pos] == ' ') ++pos;
    if (pos >= saved.size()) return false;
    const std::size_t end = saved.find(' ', pos);
    word = saved.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? saved.size() : end;
    return true;
  };
  std::string_view word;
  if (!next_word(word) || word != "replay1") return invalid();
  while (next_word(word)) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), n);
    if (ec != std::errc() || end != word.data() + word.size()) return invalid();
    numbers.push_back(n);
  }
  if (numbers.empty()) {
    *this = ReplayWindow();
    return Status::Ok();
  }
  if (numbers.size() < 3) return invalid();
  ReplayWindow w;
  w.started_ = true;
  w.epoch_ = numbers[0];
  w.highest_ = numbers[1];
  const std::uint64_t span = w.highest_ + 1 < kWidth ? w.highest_ + 1 : kWidth;
  std::uint64_t i = 0;
  bool state = true;
  for (std::size_t r = 2; r < numbers.size(); ++r, state = !state) {
    const std::uint64_t run = numbers[r];
    if (run == 0 || run > span - i) return invalid();
    if (state)
      for (std::uint64_t k = 0; k < run; ++k) w.mark(w.highest_ - (i + k));
    i += run;
  }
  if (i != span || !w.seen(w.highest_)) return invalid();
  *this = w;
  return Status::Ok();
}

}  // namespace curvebus::fed
