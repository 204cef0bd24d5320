// Federation wire layer: what curvebus brokers exchange over a NATS backbone
// (proto/federation.proto, docs/federation.md).  Pure functions and values:
// no NATS, no broker state, no I/O except the key-file functions.
//
// * Subjects.  A publication maps to the NATS subject
//     <prefix>.<class>.<origin>.<level1>.<level2>...
//   with class 's' (stream), 'c' (command) or 'r' (retained) and origin the
//   federation name of the origin broker ([A-Za-z0-9_-]+).  Each topic level
//   is escaped: bytes in [A-Za-z0-9_-] stay, every other byte becomes "~XX"
//   (two upper-case hex digits), and an empty level becomes "~" alone.  The
//   mapping is reversible (parse_subject), and parse_subject refuses anything
//   the encoder would not produce, so one topic has exactly one subject.
// * Keys.  Each broker signs with its own Ed25519 key pair (SigningKeys); all
//   brokers of a federation share one or more 32-byte symmetric federation
//   keys (FederationKey; the first configured seals, all open).
// * Envelopes.  seal() signs an Envelope with the origin's key, then encrypts
//   it (XChaCha20-Poly1305, random nonce) with the subject as additional data.
//   open() undoes it in the design's order and reports the first refusal.
//   The broker's own checks (publish/import patterns, replay, age) come after
//   open(); ReplayWindow is the replay part.
//
// Thread safety: every free function is safe to call from any thread (they
// share no state; libsodium is initialised once, thread-safely).  A
// ReplayWindow is a plain value: one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "curvebus/status.hpp"

namespace curvebus::fed {

// ------------------------------------------------------------------ subjects

inline constexpr std::string_view kDefaultSubjectPrefix = "curvebus";

// True when `name` is a federation name: one or more of [A-Za-z0-9_-].
bool is_valid_origin(std::string_view name);

// True when `prefix` is usable as a subject prefix: one or more NATS tokens
// of [A-Za-z0-9_-]+ separated by single dots ("curvebus", "lab.curvebus").
bool is_valid_prefix(std::string_view prefix);

// The escaped form of one topic level (see above); never empty, never
// contains '.', '*', '>' or whitespace.
std::string escape_level(std::string_view level);

// The inverse of escape_level.  Refuses (Status code MALFORMED, with the
// reason) an empty token, a '~' not followed by two upper-case hex digits
// (except a token that is exactly "~"), an escape of a byte that is kept as
// is, and any byte outside [A-Za-z0-9_-~].
Status unescape_level(std::string_view token, std::string& out);

// "<prefix>.<klass>.<origin>.<escaped levels>" for a topic (levels split on
// '/').  Returns "" when klass is not 's', 'c' or 'r', origin is not a valid
// federation name or prefix is not a valid prefix.
std::string subject_for(std::string_view prefix, char klass, std::string_view origin,
                        std::string_view topic);

// The NATS subject a subscription pattern is interested in: origin_or_star
// is an origin name or "*" (every origin); a pattern level that is exactly
// "+" becomes '*', a last level that is exactly "#" becomes '>', every other
// level is escaped as in subject_for (so a '#' that is not last matches only
// a literal "#" level).  Returns "" on an invalid klass, origin or prefix.
//
// Note: "a/#" in curvebus also matches "a" itself, which "...a.>" does not;
// interest_subjects() gives both subjects.  A pattern starting with a
// wildcard must not match "$..." topics in curvebus but the subject does:
// the importer filters those itself.
std::string interest_subject(std::string_view prefix, char klass, std::string_view origin_or_star,
                             std::string_view pattern);

// The subjects to subscribe to for `pattern` so that exactly curvebus's
// matches are covered: interest_subject(), plus, for a pattern "X/#" with a
// non-empty X, the subject of X itself.  Empty on an invalid argument.
std::vector<std::string> interest_subjects(std::string_view prefix, char klass,
                                           std::string_view origin_or_star,
                                           std::string_view pattern);

struct ParsedSubject {
  char klass = 0;      // 's', 'c' or 'r'
  std::string origin;  // a valid federation name
  std::string topic;   // levels joined by '/'
};

// Decodes a subject made by subject_for(prefix, ...).  On error (code
// MALFORMED, message says why) `out` is unspecified.  Refuses a subject that
// does not start with "<prefix>.", a class other than s/c/r, an invalid
// origin, no topic level, empty tokens and any level unescape_level refuses.
Status parse_subject(std::string_view prefix, std::string_view subject, ParsedSubject& out);

// ------------------------------------------------------------------ keys

// An Ed25519 key pair (libsodium's crypto_sign layout: the secret key is the
// 32-byte seed followed by the public key).
struct SigningKeys {
  std::array<std::uint8_t, 32> public_key{};
  std::array<std::uint8_t, 64> secret_key{};
};

SigningKeys generate_signing_keys();
// The key pair of a 32-byte seed (what NAME.sign_secret holds).
SigningKeys signing_keys_from_seed(const std::array<std::uint8_t, 32>& seed);

// A symmetric federation key and its id: the first 4 bytes, little endian,
// of BLAKE2b-256(key).
struct FederationKey {
  std::uint32_t id = 0;
  std::array<std::uint8_t, 32> key{};
};

std::uint32_t federation_key_id(const std::array<std::uint8_t, 32>& key);
FederationKey make_federation_key(const std::array<std::uint8_t, 32>& key);
FederationKey generate_federation_key();

// Lower-case hex of `size` bytes.
std::string hex_encode(const std::uint8_t* data, std::size_t size);
// Decodes exactly 2*size hex digits (either case) into out[0..size); false
// (out unspecified) on any other length or character.
bool hex_decode(std::string_view hex, std::uint8_t* out, std::size_t size);

// Key files: one line of 64 lower-case hex digits.  NAME.sign holds the
// public key (mode 0644), NAME.sign_secret the 32-byte seed (mode 0600), a
// federation key file the key (mode 0600).  Writers create DIR (mode 0700)
// when missing and refuse to overwrite an existing file (code EXISTS) unless
// `overwrite`.  Readers accept surrounding whitespace, refuse anything else
// (INVALID), a missing file (NOT_FOUND) and a secret file readable by group
// or others (INSECURE).  Every error message names the file.
Status write_signing_keys(const std::string& dir, const std::string& name, const SigningKeys& keys,
                          bool overwrite = false);
Result<std::array<std::uint8_t, 32>> read_signing_public_key(const std::string& path);
Result<SigningKeys> read_signing_keys(const std::string& secret_path);
Status write_federation_key(const std::string& path, const FederationKey& key,
                            bool overwrite = false);
Result<FederationKey> read_federation_key(const std::string& path);

// ------------------------------------------------------------------ envelopes

enum class Class : std::uint8_t { kStream = 1, kCommand = 2, kRetained = 3 };

// 's', 'c', 'r'.
char class_letter(Class klass);

// Mirrors curvebus.fed.v1.Envelope.
struct Envelope {
  std::string origin;     // federation name of the origin broker
  std::string publisher;  // the publisher's allow-list name at the origin
  std::string topic;      // curvebus topic as published at the origin
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
  std::int64_t publish_time_us = 0;
  bool retained = false;
  std::string payload;
  std::string content_type;
  Class klass = Class::kStream;
};

// Why an envelope was refused.  open() produces kMalformed..kSubjectMismatch;
// the rest are the broker's checks that follow, here so that every cause has
// one name and one counter slot (0 .. kRefusalCount-1).
enum class Refusal : std::uint8_t {
  kNone,
  kMalformed,        // not a Sealed/Signed/Envelope, or a field out of its domain
  kUnknownKey,       // no configured federation key has this key_id
  kBadBox,           // AEAD open failed: wrong key, altered bytes, other subject
  kUnknownOrigin,    // origin is not a configured peer
  kBadSignature,     // not signed by that peer's key
  kSubjectMismatch,  // the subject's class/origin/topic differ from the envelope's
  kDenied,           // topic invalid or outside the peer's publish patterns
  kNotImported,      // outside this broker's import patterns
  kReplayed,         // (epoch, seq) already seen or below the replay window
  kExpired,          // publish time older than the configured max age
};
inline constexpr std::size_t kRefusalCount = 11;

// "none", "malformed", "unknown_key", "bad_box", "unknown_origin",
// "bad_signature", "subject_mismatch", "denied", "not_imported", "replayed",
// "expired".
const char* refusal_name(Refusal refusal);

// Signs `envelope` with `origin` (whose public key the receivers know as the
// peer envelope.origin) and seals it with `key` for `subject`, which must be
// the subject it will be published on (normally subject_for(prefix,
// class_letter(envelope.klass), envelope.origin, envelope.topic)).  Returns
// the serialized Sealed; a fresh random nonce each call.
std::string seal(const Envelope& envelope, const SigningKeys& origin, const FederationKey& key,
                 std::string_view subject);

// The public signing key of a configured peer, or nullptr when `origin` is
// not one.  Called at most once per open(), from the calling thread.
using PeerKeyLookup = std::function<const std::array<std::uint8_t, 32>*(std::string_view origin)>;

// Opens `sealed`, received on `subject` under `prefix`, in this order: parse
// Sealed (kMalformed) -> find key_id in `keys` (kUnknownKey) -> AEAD open with
// the subject as additional data (kBadBox) -> parse Signed and Envelope, check
// sizes and class (kMalformed) -> peer_key(origin) (kUnknownOrigin) -> verify
// the signature (kBadSignature) -> the parsed subject's class, origin and
// topic equal the envelope's (kSubjectMismatch).  Returns kNone and fills
// `out` on success; on a refusal `out` is left untouched.
Refusal open(std::string_view sealed, std::string_view prefix, std::string_view subject,
             const std::vector<FederationKey>& keys, const PeerKeyLookup& peer_key, Envelope& out);

// ------------------------------------------------------------------ replay

// The replay check for one origin.  Accepts (epoch, seq) when epoch is newer
// than the latest seen (the window restarts there), or when epoch is the
// latest and seq was not seen yet and is within kWidth of the highest seq
// seen in that epoch (seq > highest - kWidth).  Refuses older epochs
// (kStaleEpoch), seqs seen before or below the window (kReplayed).  Only a
// kFresh answer marks (epoch, seq) as seen.
class ReplayWindow {
 public:
  static constexpr std::uint64_t kWidth = 4096;
  enum class Verdict { kFresh, kReplayed, kStaleEpoch };

  Verdict check_and_mark(std::uint64_t epoch, std::uint64_t seq);

  bool empty() const { return !started_; }
  std::uint64_t epoch() const { return epoch_; }      // latest epoch; 0 when empty
  std::uint64_t highest() const { return highest_; }  // highest seq seen in it; 0 when empty

  // The state as one short line of text ("replay1 EPOCH HIGHEST RUNS..."),
  // for persistence across restarts: restore(save()) answers every later
  // check_and_mark exactly as this window would.
  std::string save() const;
  // Replaces this window's state with a saved one; on a malformed string
  // returns INVALID and leaves the window unchanged.
  Status restore(std::string_view saved);

 private:
  bool seen(std::uint64_t seq) const;
  void mark(std::uint64_t seq);

  bool started_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t highest_ = 0;
  // Bit (seq % kWidth) says whether seq was seen, for seqs in
  // (highest_ - kWidth, highest_].
  std::array<std::uint64_t, kWidth / 64> bits_{};
};

}  // namespace curvebus::fed
