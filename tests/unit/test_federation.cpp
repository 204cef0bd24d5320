// The federation wire layer (curvebus/federation.hpp): reversible subjects,
// key files, sealed and signed envelopes, the replay window.
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "curvebus/federation.hpp"
#include "curvebus/topic.hpp"
#include "federation.pb.h"
#include "fixture.hpp"
#include "process.hpp"

using namespace curvebus;
using namespace curvebus::fed;
namespace pb = curvebus::fed::v1;

namespace {

// NATS subject matching: '*' one token, a last '>' one or more tokens.
std::vector<std::string> tokens(const std::string& subject) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = subject.find('.', start);
    out.push_back(
        subject.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

bool nats_matches(const std::string& interest, const std::string& subject) {
  const auto want = tokens(interest);
  const auto have = tokens(subject);
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i] == ">") return i + 1 == want.size() && have.size() > i;
    if (i >= have.size()) return false;
    if (want[i] != "*" && want[i] != have[i]) return false;
  }
  return want.size() == have.size();
}

bool subject_chars_only(const std::string& subject) {
  for (char c : subject)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '~' ||
          c == '.'))
      return false;
  return true;
}

void check_round_trip(std::string_view prefix, char klass, const std::string& topic) {
  INFO("topic '" << topic << "'");
  const std::string subject = subject_for(prefix, klass, "site-a", topic);
  INFO("subject '" << subject << "'");
  REQUIRE_FALSE(subject.empty());
  CHECK(subject_chars_only(subject));
  for (const std::string& t : tokens(subject)) CHECK_FALSE(t.empty());
  ParsedSubject parsed;
  const Status s = parse_subject(prefix, subject, parsed);
  INFO(s.message());
  REQUIRE(s);
  CHECK(parsed.klass == klass);
  CHECK(parsed.origin == "site-a");
  CHECK(parsed.topic == topic);
}

struct Federation {
  SigningKeys site_a = generate_signing_keys();
  FederationKey key = generate_federation_key();
  std::map<std::string, std::array<std::uint8_t, 32>, std::less<>> peers{
      {"site-a", site_a.public_key}};
  PeerKeyLookup lookup = [this](std::string_view origin) -> const std::array<std::uint8_t, 32>* {
    auto it = peers.find(origin);
    return it == peers.end() ? nullptr : &it->second;
  };

  static Envelope sample(Class klass = Class::kCommand) {
    Envelope e;
    e.origin = "site-a";
    e.publisher = "dev";
    e.topic = "robot/alex.1/cmd";
    e.epoch = 1700000000000000;
    e.seq = 42;
    e.publish_time_us = 1700000000123456;
    e.retained = klass == Class::kRetained;
    e.payload = std::string("\0\x01payload \xff", 11);
    e.content_type = "application/x-protobuf; curvebus.robot.v1.Command";
    e.klass = klass;
    return e;
  }
  static std::string subject_of(const Envelope& e) {
    return subject_for("curvebus", class_letter(e.klass), e.origin, e.topic);
  }
  Refusal open_as_b(const std::string& sealed, const std::string& subject, Envelope& out,
                    const std::vector<FederationKey>& keys) const {
    return fed::open(sealed, "curvebus", subject, keys, lookup, out);
  }
  Refusal open_as_b(const std::string& sealed, const std::string& subject, Envelope& out) const {
    return open_as_b(sealed, subject, out, {key});
  }
};

void check_same(const Envelope& a, const Envelope& b) {
  CHECK(a.origin == b.origin);
  CHECK(a.publisher == b.publisher);
  CHECK(a.topic == b.topic);
  CHECK(a.epoch == b.epoch);
  CHECK(a.seq == b.seq);
  CHECK(a.publish_time_us == b.publish_time_us);
  CHECK(a.retained == b.retained);
  CHECK(a.payload == b.payload);
  CHECK(a.content_type == b.content_type);
  CHECK(a.klass == b.klass);
}

// A Sealed around arbitrary plaintext, made with libsodium directly (what a
// holder of the federation key could send).
std::string seal_raw(const std::string& plain, const FederationKey& key,
                     const std::string& subject) {
  pb::Sealed sealed;
  sealed.set_key_id(key.id);
  std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES> nonce{};
  randombytes_buf(nonce.data(), nonce.size());
  sealed.set_nonce(nonce.data(), nonce.size());
  std::string box(plain.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES, '\0');
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<std::uint8_t*>(box.data()), &n,
                                             reinterpret_cast<const std::uint8_t*>(plain.data()),
                                             plain.size(),
                                             reinterpret_cast<const std::uint8_t*>(subject.data()),
                                             subject.size(), nullptr, nonce.data(), key.key.data());
  box.resize(n);
  sealed.set_box(box);
  return sealed.SerializeAsString();
}

std::string signed_raw(const pb::Envelope& env, const SigningKeys& keys) {
  pb::Signed s;
  s.set_envelope(env.SerializeAsString());
  std::array<std::uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr,
                       reinterpret_cast<const std::uint8_t*>(s.envelope().data()),
                       s.envelope().size(), keys.secret_key.data());
  s.set_signature(sig.data(), sig.size());
  return s.SerializeAsString();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

// ------------------------------------------------------------------ subjects

TEST_CASE("a topic maps to <prefix>.<class>.<origin>.<escaped levels>", "[federation][subject]") {
  CHECK(subject_for("curvebus", 's', "site-a", "robot/alex1/telemetry") ==
        "curvebus.s.site-a.robot.alex1.telemetry");
  CHECK(subject_for("curvebus", 'c', "lab_2", "robot/a.b/cmd") ==
        "curvebus.c.lab_2.robot.a~2Eb.cmd");
  CHECK(subject_for("lab.curvebus", 'r', "x", "a b/*/>") == "lab.curvebus.r.x.a~20b.~2A.~3E");
  CHECK(subject_for("curvebus", 's', "x", "a//b/") == "curvebus.s.x.a.~.b.~");
  CHECK(subject_for("curvebus", 's', "x", "~/$SYS/\xC3\xA9") == "curvebus.s.x.~7E.~24SYS.~C3~A9");
  CHECK(escape_level("") == "~");
  CHECK(escape_level("Az09_-") == "Az09_-");
}

TEST_CASE("subject_for refuses an invalid class, origin or prefix with an empty subject",
          "[federation][subject]") {
  CHECK(subject_for("curvebus", 'x', "site-a", "a").empty());
  CHECK(subject_for("curvebus", 's', "", "a").empty());
  CHECK(subject_for("curvebus", 's', "site.a", "a").empty());
  CHECK(subject_for("curvebus", 's', "*", "a").empty());
  CHECK(subject_for("", 's', "site-a", "a").empty());
  CHECK(subject_for("curve..bus", 's', "site-a", "a").empty());
  CHECK(subject_for("curvebus.", 's', "site-a", "a").empty());
  CHECK(subject_for("curve*", 's', "site-a", "a").empty());
}

TEST_CASE("nasty topics survive the subject round trip", "[federation][subject]") {
  const std::vector<std::string> nasty = {"a",
                                          "robot/alex1/cmd",
                                          "a.b",
                                          "a.b/c.d",
                                          "*",
                                          ">",
                                          "a/*/>",
                                          " ",
                                          "a b/c d",
                                          "~",
                                          "~41",
                                          "~~",
                                          "~/~/~",
                                          "$SYS/broker/x",
                                          "$",
                                          "",
                                          "/",
                                          "//",
                                          "a//b",
                                          "/a",
                                          "a/",
                                          "\xC3\xA9",
                                          "日本/語",
                                          "😀/x",
                                          ".",
                                          "..",
                                          "a.>",
                                          "+",
                                          "#",
                                          "a/+/#",
                                          "%",
                                          "\x7F",
                                          "\xFF",
                                          "\t\r\n",
                                          "A~2EB",
                                          "-_-",
                                          "a.b.c.d.e.f.g",
                                          "*.*",
                                          "x/~",
                                          "~2E",
                                          "\x01\x1F"};
  for (const std::string& topic : nasty)
    for (char klass : {'s', 'c', 'r'}) check_round_trip("curvebus", klass, topic);
  check_round_trip("lab.curvebus", 's', "a.b/c");
  check_round_trip("lab.curvebus", 'r', "");
}

TEST_CASE("2,000 random topics of dots, wildcards, tildes, spaces, dollars and UTF-8 round trip",
          "[federation][subject]") {
  const std::vector<std::string> pieces = {"a",
                                           "Z",
                                           "0",
                                           "_",
                                           "-",
                                           ".",
                                           "*",
                                           ">",
                                           "~",
                                           " ",
                                           "$",
                                           "\xC3\xA9",
                                           "~2",
                                           "~41",
                                           "\xF0\x9F\x98\x80",
                                           "\xE6\x97\xA5",
                                           "\x80",
                                           "\t"};
  std::mt19937 rng(14);
  std::set<std::string> subjects;
  std::set<std::string> topics;
  for (int n = 0; n < 2000; ++n) {
    std::string topic;
    const int levels = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int l = 0; l < levels; ++l) {
      if (l > 0) topic.push_back('/');
      const int len = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int i = 0; i < len; ++i)
        topic += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
    }
    check_round_trip("curvebus", "scr"[n % 3], topic);
    topics.insert(topic);
    subjects.insert(subject_for("curvebus", 's', "site-a", topic));
  }
  // Reversible implies one subject per topic: no two topics collide.
  CHECK(subjects.size() == topics.size());
}

TEST_CASE("parse_subject refuses what the encoder never produces, saying why",
          "[federation][subject]") {
  const std::vector<std::string> bad = {
      "",
      "curvebus",
      "curvebus.",
      "curvebusx.s.o.a",
      "other.s.o.a",
      "curvebus.x.o.a",
      "curvebus.ss.o.a",
      "curvebus.s",
      "curvebus.s.",
      "curvebus.s.o",
      "curvebus.s.o.",
      "curvebus.s..a",
      "curvebus.s.o%.a",
      "curvebus.s.*.a",
      "curvebus.s.o.a..b",
      "curvebus.s.o.a.",
      "curvebus.s.o.~2e",
      "curvebus.s.o.~2",
      "curvebus.s.o.a~",
      "curvebus.s.o.~~",
      "curvebus.s.o.~G1",
      "curvebus.s.o.~41",
      "curvebus.s.o.~5F",
      "curvebus.s.o.*",
      "curvebus.s.o.>",
      "curvebus.s.o.a b",
      "curvebus.s.o.\xC3\xA9",
      "curvebus.s.o.a$",
  };
  for (const std::string& subject : bad) {
    INFO("subject '" << subject << "'");
    ParsedSubject parsed;
    const Status s = parse_subject("curvebus", subject, parsed);
    CHECK_FALSE(s);
    CHECK(s.is(StatusCode::kMalformed));
    CHECK_FALSE(s.message().empty());
  }
  std::string out;
  CHECK(unescape_level("~", out));
  CHECK(out.empty());
  CHECK(unescape_level("a~2Eb", out));
  CHECK(out == "a.b");
  CHECK_FALSE(unescape_level("", out));
}

TEST_CASE("interest patterns map + to * and a final # to >, everything else escaped",
          "[federation][subject]") {
  CHECK(interest_subject("curvebus", 'c', "*", "robot/+/cmd/#") == "curvebus.c.*.robot.*.cmd.>");
  CHECK(interest_subject("curvebus", 's', "*", "#") == "curvebus.s.*.>");
  CHECK(interest_subject("curvebus", 's', "site-a", "a.b/+") == "curvebus.s.site-a.a~2Eb.*");
  CHECK(interest_subject("curvebus", 's', "x", "a/#/b") == "curvebus.s.x.a.~23.b");
  CHECK(interest_subject("curvebus", 's', "x", "a+/b#") == "curvebus.s.x.a~2B.b~23");
  CHECK(interest_subject("curvebus", 's', "x", "a//+") == "curvebus.s.x.a.~.*");
  CHECK(interest_subject("curvebus", 's', "si.te", "a").empty());
  CHECK(interest_subject("curvebus", 'q', "*", "a").empty());

  CHECK(interest_subjects("curvebus", 's', "*", "a/#") ==
        std::vector<std::string>{"curvebus.s.*.a.>", "curvebus.s.*.a"});
  CHECK(interest_subjects("curvebus", 's', "*", "#") == std::vector<std::string>{"curvebus.s.*.>"});
  CHECK(interest_subjects("curvebus", 's', "*", "a/+") ==
        std::vector<std::string>{"curvebus.s.*.a.*"});
  CHECK(interest_subjects("curvebus", 's', "*.", "a").empty());
}

TEST_CASE("interest subjects match on NATS exactly the subjects of the topics the pattern matches",
          "[federation][subject]") {
  const std::vector<std::string> levels = {"a", "b.c", "*", "\xC3\xA9 x"};
  std::vector<std::string> topics;
  for (const auto& l1 : levels) {
    topics.push_back(l1);
    for (const auto& l2 : levels) {
      topics.push_back(l1 + "/" + l2);
      for (const auto& l3 : levels) topics.push_back(l1 + "/" + l2 + "/" + l3);
    }
  }
  std::vector<std::string> patterns;
  std::vector<std::string> pattern_levels = levels;
  pattern_levels.push_back("+");
  for (const auto& p1 : pattern_levels) {
    patterns.push_back(p1);
    patterns.push_back(p1 + "/#");
    for (const auto& p2 : pattern_levels) {
      patterns.push_back(p1 + "/" + p2);
      patterns.push_back(p1 + "/" + p2 + "/#");
    }
  }
  patterns.push_back("#");
  int matches = 0;
  for (const auto& pattern : patterns) {
    REQUIRE(check_pattern(pattern).empty());
    const auto interest = interest_subjects("curvebus", 's', "*", pattern);
    for (const auto& topic : topics) {
      REQUIRE(check_topic(topic).empty());
      const std::string subject = subject_for("curvebus", 's', "site-a", topic);
      bool nats = false;
      for (const auto& i : interest) nats = nats || nats_matches(i, subject);
      INFO("pattern '" << pattern << "' topic '" << topic << "' subject " << subject);
      CHECK(nats == topic_matches(pattern, topic));
      matches += nats;
    }
  }
  CHECK(matches > 100);
}

// ------------------------------------------------------------------ keys

TEST_CASE("a federation key's id is the first 4 bytes, little endian, of its BLAKE2b-256",
          "[federation][keys]") {
  const FederationKey k = generate_federation_key();
  std::uint8_t hash[32];
  crypto_generichash(hash, sizeof hash, k.key.data(), k.key.size(), nullptr, 0);
  const std::uint32_t expected =
      hash[0] | hash[1] << 8 | hash[2] << 16 | static_cast<std::uint32_t>(hash[3]) << 24;
  CHECK(k.id == expected);
  CHECK(federation_key_id(k.key) == expected);
  CHECK(make_federation_key(k.key).id == expected);
  CHECK(generate_federation_key().key != k.key);
}

TEST_CASE("hex encodes lower case and decodes exactly the expected length", "[federation][keys]") {
  const std::uint8_t bytes[] = {0x00, 0x7f, 0xab, 0xff};
  CHECK(hex_encode(bytes, 4) == "007fabff");
  std::uint8_t out[4] = {};
  CHECK(hex_decode("007FaBff", out, 4));
  CHECK(std::equal(out, out + 4, bytes));
  CHECK_FALSE(hex_decode("007fab", out, 4));
  CHECK_FALSE(hex_decode("007fabff00", out, 4));
  CHECK_FALSE(hex_decode("007fabfg", out, 4));
  CHECK_FALSE(hex_decode("007fab f", out, 4));
}

TEST_CASE("signing keys are written as NAME.sign (0644) and NAME.sign_secret (0600) and read back",
          "[federation][keys]") {
  test::TempDir dir;
  const std::string keys_dir = dir / "keys";
  const SigningKeys keys = generate_signing_keys();
  REQUIRE(write_signing_keys(keys_dir, "site-a", keys));
  CHECK(mode_of(keys_dir + "/site-a.sign") == 0644);
  CHECK(mode_of(keys_dir + "/site-a.sign_secret") == 0600);
  CHECK(test::read_file(keys_dir + "/site-a.sign") ==
        hex_encode(keys.public_key.data(), keys.public_key.size()) + "\n");

  auto pub = read_signing_public_key(keys_dir + "/site-a.sign");
  REQUIRE(pub);
  CHECK(*pub == keys.public_key);
  auto pair = read_signing_keys(keys_dir + "/site-a.sign_secret");
  REQUIRE(pair);
  CHECK(pair->public_key == keys.public_key);
  CHECK(pair->secret_key == keys.secret_key);

  // Never overwritten silently; the message names the file.
  const SigningKeys other = generate_signing_keys();
  Status s = write_signing_keys(keys_dir, "site-a", other);
  CHECK(s.is(StatusCode::kExists));
  CHECK(s.message().find("site-a.sign") != std::string::npos);
  CHECK(*read_signing_public_key(keys_dir + "/site-a.sign") == keys.public_key);
  REQUIRE(write_signing_keys(keys_dir, "site-a", other, true));
  CHECK(*read_signing_public_key(keys_dir + "/site-a.sign") == other.public_key);
  CHECK(mode_of(keys_dir + "/site-a.sign_secret") == 0600);
  CHECK(write_signing_keys(keys_dir, "../x", other).is(StatusCode::kInvalid));
}

TEST_CASE("key files that are missing, malformed or readable by others are refused by name",
          "[federation][keys]") {
  test::TempDir dir;
  const std::string missing = dir / "nope.sign";
  auto r = read_signing_public_key(missing);
  REQUIRE_FALSE(r);
  CHECK(r.status().is(StatusCode::kNotFound));
  CHECK(r.status().message().find(missing) != std::string::npos);

  const std::string garbage = dir / "garbage.sign";
  write_text(garbage, "not hex at all\n");
  r = read_signing_public_key(garbage);
  REQUIRE_FALSE(r);
  CHECK(r.status().is(StatusCode::kInvalid));
  CHECK(r.status().message().find(garbage) != std::string::npos);

  const std::string short_key = dir / "short.key";
  write_text(short_key, std::string(62, 'a'));
  ::chmod(short_key.c_str(), 0600);
  auto k = read_federation_key(short_key);
  REQUIRE_FALSE(k);
  CHECK(k.status().is(StatusCode::kInvalid));

  const SigningKeys keys = generate_signing_keys();
  REQUIRE(write_signing_keys(dir.path(), "site-a", keys));
  const std::string secret = dir / "site-a.sign_secret";
  REQUIRE(::chmod(secret.c_str(), 0640) == 0);
  auto pair = read_signing_keys(secret);
  REQUIRE_FALSE(pair);
  CHECK(pair.status().is(StatusCode::kInsecure));
  CHECK(pair.status().message().find(secret) != std::string::npos);
}

TEST_CASE("a federation key file is 64 hex digits, mode 0600, never overwritten by default",
          "[federation][keys]") {
  test::TempDir dir;
  const std::string path = dir / "federation.key";
  const FederationKey key = generate_federation_key();
  REQUIRE(write_federation_key(path, key));
  CHECK(mode_of(path) == 0600);
  const std::string text = test::read_file(path);
  CHECK(text == hex_encode(key.key.data(), key.key.size()) + "\n");
  auto back = read_federation_key(path);
  REQUIRE(back);
  CHECK(back->key == key.key);
  CHECK(back->id == key.id);

  const Status s = write_federation_key(path, generate_federation_key());
  CHECK(s.is(StatusCode::kExists));
  CHECK(s.message().find(path) != std::string::npos);
  CHECK(test::read_file(path) == text);

  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto open_to_all = read_federation_key(path);
  REQUIRE_FALSE(open_to_all);
  CHECK(open_to_all.status().is(StatusCode::kInsecure));
}

// ------------------------------------------------------------------ envelopes

TEST_CASE("a sealed envelope opens to the same envelope for each class", "[federation][envelope]") {
  Federation f;
  for (Class klass : {Class::kStream, Class::kCommand, Class::kRetained}) {
    const Envelope sent = Federation::sample(klass);
    const std::string subject = Federation::subject_of(sent);
    const std::string sealed = seal(sent, f.site_a, f.key, subject);
    Envelope got;
    REQUIRE(f.open_as_b(sealed, subject, got) == Refusal::kNone);
    check_same(sent, got);
    // The backbone sees neither the payload nor the publisher in clear.
    CHECK(sealed.find("payload") == std::string::npos);
    CHECK(sealed.find("curvebus.robot.v1.Command") == std::string::npos);
  }
}

TEST_CASE("two seals of the same envelope use different nonces", "[federation][envelope]") {
  Federation f;
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  const std::string one = seal(e, f.site_a, f.key, subject);
  const std::string two = seal(e, f.site_a, f.key, subject);
  pb::Sealed a, b;
  REQUIRE(a.ParseFromString(one));
  REQUIRE(b.ParseFromString(two));
  CHECK(a.nonce().size() == 24);
  CHECK(a.nonce() != b.nonce());
  CHECK(a.box() != b.box());
  Envelope out;
  CHECK(f.open_as_b(one, subject, out) == Refusal::kNone);
  CHECK(f.open_as_b(two, subject, out) == Refusal::kNone);
}

TEST_CASE("any federation key configured opens, so keys can rotate", "[federation][envelope]") {
  Federation f;
  const FederationKey next = generate_federation_key();
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  Envelope out;
  CHECK(f.open_as_b(seal(e, f.site_a, f.key, subject), subject, out, {next, f.key}) ==
        Refusal::kNone);
  CHECK(f.open_as_b(seal(e, f.site_a, next, subject), subject, out, {next, f.key}) ==
        Refusal::kNone);
}

TEST_CASE("bytes that are not a sealed envelope are refused as malformed",
          "[federation][envelope]") {
  Federation f;
  Envelope out;
  const std::string subject = "curvebus.c.site-a.robot.x.cmd";
  CHECK(f.open_as_b("not a sealed envelope", subject, out) == Refusal::kMalformed);
  CHECK(f.open_as_b("", subject, out) == Refusal::kMalformed);  // no nonce
  pb::Sealed short_nonce;
  short_nonce.set_key_id(f.key.id);
  short_nonce.set_nonce("12345678");
  short_nonce.set_box(std::string(64, 'x'));
  CHECK(f.open_as_b(short_nonce.SerializeAsString(), subject, out) == Refusal::kMalformed);
}

TEST_CASE("a box holding no valid signed envelope is refused as malformed",
          "[federation][envelope]") {
  Federation f;
  const std::string subject = "curvebus.c.site-a.robot.x.cmd";
  Envelope out;
  CHECK(f.open_as_b(seal_raw("\xff\xff\xff\xff", f.key, subject), subject, out) ==
        Refusal::kMalformed);

  pb::Envelope env;
  env.set_origin("site-a");
  env.set_topic("robot/x/cmd");
  env.set_klass(pb::CLASS_COMMAND);
  pb::Signed short_signature;
  short_signature.set_envelope(env.SerializeAsString());
  short_signature.set_signature("short");
  CHECK(f.open_as_b(seal_raw(short_signature.SerializeAsString(), f.key, subject), subject, out) ==
        Refusal::kMalformed);

  // Properly signed, but without a class.
  env.clear_klass();
  CHECK(f.open_as_b(seal_raw(signed_raw(env, f.site_a), f.key, subject), subject, out) ==
        Refusal::kMalformed);
  // The same with the class set opens: the refusals above are the fields'.
  env.set_klass(pb::CLASS_COMMAND);
  CHECK(f.open_as_b(seal_raw(signed_raw(env, f.site_a), f.key, subject), subject, out) ==
        Refusal::kNone);
}

TEST_CASE("an envelope under an unknown key id is refused as unknown_key",
          "[federation][envelope]") {
  Federation f;
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  const std::string sealed = seal(e, f.site_a, f.key, subject);
  Envelope out;
  CHECK(f.open_as_b(sealed, subject, out, {generate_federation_key()}) == Refusal::kUnknownKey);
  CHECK(f.open_as_b(sealed, subject, out, {}) == Refusal::kUnknownKey);
}

TEST_CASE("a flipped byte in the box, a wrong key or a moved subject is refused as bad_box",
          "[federation][envelope]") {
  Federation f;
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  const std::string sealed = seal(e, f.site_a, f.key, subject);
  Envelope out;
  out.topic = "untouched";

  pb::Sealed tampered;
  REQUIRE(tampered.ParseFromString(sealed));
  for (std::size_t at : {std::size_t{0}, tampered.box().size() / 2, tampered.box().size() - 1}) {
    pb::Sealed t = tampered;
    (*t.mutable_box())[at] ^= 0x01;
    CHECK(f.open_as_b(t.SerializeAsString(), subject, out) == Refusal::kBadBox);
  }
  pb::Sealed other_nonce = tampered;
  (*other_nonce.mutable_nonce())[3] ^= 0x80;
  CHECK(f.open_as_b(other_nonce.SerializeAsString(), subject, out) == Refusal::kBadBox);
  pb::Sealed truncated = tampered;
  truncated.mutable_box()->resize(10);
  CHECK(f.open_as_b(truncated.SerializeAsString(), subject, out) == Refusal::kBadBox);

  // A key that claims the same id but is not the key.
  FederationKey impostor = generate_federation_key();
  impostor.id = f.key.id;
  CHECK(f.open_as_b(sealed, subject, out, {impostor}) == Refusal::kBadBox);

  // The backbone moves the envelope to another subject (another robot).
  const std::string moved = subject_for("curvebus", 'c', "site-a", "robot/alex.2/cmd");
  CHECK(f.open_as_b(sealed, moved, out) == Refusal::kBadBox);
  CHECK(out.topic == "untouched");
}

TEST_CASE("an envelope from an origin that is not a configured peer is refused as unknown_origin",
          "[federation][envelope]") {
  Federation f;
  Envelope e = Federation::sample();
  e.origin = "site-z";
  const std::string subject = Federation::subject_of(e);
  const std::string sealed = seal(e, f.site_a, f.key, subject);
  Envelope out;
  CHECK(f.open_as_b(sealed, subject, out) == Refusal::kUnknownOrigin);
  CHECK(fed::open(sealed, "curvebus", subject, {f.key}, nullptr, out) == Refusal::kUnknownOrigin);
}

TEST_CASE("an envelope signed by another key than its origin's is refused as bad_signature",
          "[federation][envelope]") {
  Federation f;
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  // A holder of the federation key (the key leaked, or another peer) forging
  // site-a's command.
  const SigningKeys forger = generate_signing_keys();
  Envelope out;
  CHECK(f.open_as_b(seal(e, forger, f.key, subject), subject, out) == Refusal::kBadSignature);

  // A valid signature over other bytes than the envelope's.
  pb::Envelope env;
  env.set_origin("site-a");
  env.set_topic("robot/alex.1/cmd");
  env.set_klass(pb::CLASS_COMMAND);
  pb::Signed s;
  REQUIRE(s.ParseFromString(signed_raw(env, f.site_a)));
  env.set_payload("stop");
  s.set_envelope(env.SerializeAsString());
  CHECK(f.open_as_b(seal_raw(s.SerializeAsString(), f.key, subject), subject, out) ==
        Refusal::kBadSignature);
}

TEST_CASE("an envelope sealed for a subject that is not its own is refused as subject_mismatch",
          "[federation][envelope]") {
  Federation f;
  const Envelope e = Federation::sample(Class::kCommand);
  Envelope out;
  for (const std::string& subject :
       {subject_for("curvebus", 'c', "site-a", "robot/alex.2/cmd"),  // another topic
        subject_for("curvebus", 's', "site-a", e.topic),             // another class
        subject_for("curvebus", 'c', "site-b", e.topic),             // another origin
        subject_for("other", 'c', "site-a", e.topic),                // another prefix
        std::string("curvebus.c.site-a.robot.alex~2e1.cmd")}) {      // not canonical
    INFO(subject);
    CHECK(f.open_as_b(seal(e, f.site_a, f.key, subject), subject, out) ==
          Refusal::kSubjectMismatch);
  }
}

TEST_CASE("every refusal has its own name", "[federation][envelope]") {
  std::set<std::string> names;
  for (std::size_t i = 0; i < kRefusalCount; ++i) {
    const std::string name = refusal_name(static_cast<Refusal>(i));
    CHECK(name != "unknown");
    names.insert(name);
  }
  CHECK(names.size() == kRefusalCount);
  CHECK(std::string(refusal_name(Refusal::kBadBox)) == "bad_box");
  CHECK(std::string(refusal_name(Refusal::kSubjectMismatch)) == "subject_mismatch");
}

TEST_CASE("keys read from files sign and open envelopes", "[federation][envelope][keys]") {
  test::TempDir dir;
  REQUIRE(write_signing_keys(dir.path(), "site-a", generate_signing_keys()));
  REQUIRE(write_federation_key(dir / "fed.key", generate_federation_key()));
  auto signing = read_signing_keys(dir / "site-a.sign_secret");
  auto pub = read_signing_public_key(dir / "site-a.sign");
  auto key = read_federation_key(dir / "fed.key");
  REQUIRE(signing);
  REQUIRE(pub);
  REQUIRE(key);
  const Envelope e = Federation::sample();
  const std::string subject = Federation::subject_of(e);
  Envelope out;
  CHECK(fed::open(
            seal(e, *signing, *key, subject), "curvebus", subject, {*key},
            [&](std::string_view origin) { return origin == "site-a" ? &*pub : nullptr; },
            out) == Refusal::kNone);
  check_same(e, out);
}

// ------------------------------------------------------------------ replay window

using Verdict = ReplayWindow::Verdict;

TEST_CASE("the replay window accepts each seq once, in or out of order within 4096",
          "[federation][replay]") {
  ReplayWindow w;
  CHECK(w.empty());
  for (std::uint64_t s = 1; s <= 10; ++s) CHECK(w.check_and_mark(7, s) == Verdict::kFresh);
  CHECK(w.check_and_mark(7, 10) == Verdict::kReplayed);
  CHECK(w.check_and_mark(7, 3) == Verdict::kReplayed);
  CHECK(w.check_and_mark(7, 20) == Verdict::kFresh);
  CHECK(w.check_and_mark(7, 15) == Verdict::kFresh);  // late, still in the window
  CHECK(w.check_and_mark(7, 15) == Verdict::kReplayed);
  CHECK(w.check_and_mark(7, 11) == Verdict::kFresh);
  CHECK(w.highest() == 20);
  CHECK(w.epoch() == 7);
}

TEST_CASE("the replay window refuses seqs below its 4096-wide window", "[federation][replay]") {
  ReplayWindow w;
  CHECK(w.check_and_mark(1, 5000) == Verdict::kFresh);
  CHECK(w.check_and_mark(1, 904) == Verdict::kReplayed);  // 5000 - 4096
  CHECK(w.check_and_mark(1, 905) == Verdict::kFresh);
  CHECK(w.check_and_mark(1, 0) == Verdict::kReplayed);

  // A jump past the whole window forgets every slot.
  ReplayWindow j;
  CHECK(j.check_and_mark(1, 1) == Verdict::kFresh);
  CHECK(j.check_and_mark(1, 4097) == Verdict::kFresh);
  CHECK(j.check_and_mark(1, 1) == Verdict::kReplayed);  // below
  CHECK(j.check_and_mark(1, 2) == Verdict::kFresh);
  CHECK(j.check_and_mark(1, 8193) == Verdict::kFresh);  // same slot as 4097 and 1
  CHECK(j.check_and_mark(1, 4097) == Verdict::kReplayed);
  CHECK(j.check_and_mark(1, 4098) == Verdict::kFresh);
}

TEST_CASE("a newer epoch restarts the replay window and older epochs are refused",
          "[federation][replay]") {
  ReplayWindow w;
  for (std::uint64_t s = 1; s <= 100; ++s) REQUIRE(w.check_and_mark(1000, s) == Verdict::kFresh);
  CHECK(w.check_and_mark(2000, 1) == Verdict::kFresh);  // the origin restarted
  CHECK(w.check_and_mark(2000, 5) == Verdict::kFresh);
  CHECK(w.check_and_mark(2000, 1) == Verdict::kReplayed);
  CHECK(w.check_and_mark(1000, 101) == Verdict::kStaleEpoch);
  CHECK(w.check_and_mark(999, 1) == Verdict::kStaleEpoch);
  CHECK(w.epoch() == 2000);
  CHECK(w.highest() == 5);
}

TEST_CASE("the replay window agrees with its specification over 20,000 random envelopes",
          "[federation][replay]") {
  std::mt19937_64 rng(1414);
  ReplayWindow w;
  bool started = false;
  std::uint64_t epoch = 0, highest = 0;
  std::set<std::uint64_t> seen;
  std::uint64_t frontier = 1;
  int fresh = 0, replayed = 0, stale = 0;
  for (int n = 0; n < 20000; ++n) {
    std::uint64_t e = epoch;
    const int dice = std::uniform_int_distribution<int>(0, 999)(rng);
    if (dice < 3) {
      e = epoch + 1;
      frontier = 1;
    } else if (dice < 10 && epoch > 0) {
      e = epoch - 1;
    }
    // Mostly near the frontier, sometimes far below or a big jump ahead.
    std::uint64_t s;
    if (dice % 97 == 0) {
      frontier += 5000;
      s = frontier;
    } else {
      const std::int64_t off = std::uniform_int_distribution<std::int64_t>(-6000, 40)(rng);
      s = static_cast<std::int64_t>(frontier) + off < 0 ? 0 : frontier + off;
      frontier += 1;
    }
    Verdict expected;
    if (started && e < epoch) {
      expected = Verdict::kStaleEpoch;
    } else if (!started || e > epoch) {
      expected = Verdict::kFresh;
      started = true;
      epoch = e;
      seen.clear();
      highest = s;
    } else if (seen.count(s) || s + ReplayWindow::kWidth <= highest) {
      expected = Verdict::kReplayed;
    } else {
      expected = Verdict::kFresh;
      highest = std::max(highest, s);
    }
    if (expected == Verdict::kFresh) seen.insert(s);
    INFO("n=" << n << " epoch " << e << " seq " << s);
    REQUIRE(w.check_and_mark(e, s) == expected);
    fresh += expected == Verdict::kFresh;
    replayed += expected == Verdict::kReplayed;
    stale += expected == Verdict::kStaleEpoch;
  }
  // The run covered every verdict.
  CHECK(fresh > 1000);
  CHECK(replayed > 1000);
  CHECK(stale > 10);
}

TEST_CASE("a saved replay window restores to one that answers the same", "[federation][replay]") {
  ReplayWindow empty;
  CHECK(empty.save() == "replay1");
  ReplayWindow restored_empty;
  REQUIRE(restored_empty.check_and_mark(1, 1) == Verdict::kFresh);
  REQUIRE(restored_empty.restore(empty.save()));
  CHECK(restored_empty.empty());

  // In order, the saved state stays short.
  ReplayWindow in_order;
  for (std::uint64_t s = 1; s <= 10000; ++s)
    REQUIRE(in_order.check_and_mark(5, s) == Verdict::kFresh);
  CHECK(in_order.save() == "replay1 5 10000 4096");
  ReplayWindow small;
  REQUIRE(small.check_and_mark(5, 3) == Verdict::kFresh);
  CHECK(small.save() == "replay1 5 3 1 3");

  std::mt19937_64 rng(99);
  for (int round = 0; round < 20; ++round) {
    ReplayWindow w;
    const std::uint64_t base = std::uniform_int_distribution<std::uint64_t>(0, 10000)(rng);
    for (int n = 0; n < 3000; ++n)
      w.check_and_mark(9, base + std::uniform_int_distribution<std::uint64_t>(0, 6000)(rng));
    const std::string saved = w.save();
    INFO(saved.substr(0, 60));
    ReplayWindow r;
    REQUIRE(r.restore(saved));
    CHECK(r.save() == saved);
    for (int n = 0; n < 3000; ++n) {
      const int d = std::uniform_int_distribution<int>(0, 99)(rng);
      const std::uint64_t e = d == 0 ? 8 : d == 1 ? 10 : 9;
      const std::uint64_t s = base + std::uniform_int_distribution<std::uint64_t>(0, 9000)(rng);
      REQUIRE(r.check_and_mark(e, s) == w.check_and_mark(e, s));
    }
  }
}

TEST_CASE("restoring a replay window refuses a malformed state and keeps the old one",
          "[federation][replay]") {
  ReplayWindow w;
  REQUIRE(w.check_and_mark(3, 50) == Verdict::kFresh);
  const std::string before = w.save();
  for (const char* bad : {"", "replay2", "replay1 3", "replay1 3 50", "replay1 3 50 5",
                          "replay1 3 50 0 51", "replay1 3 50 52", "replay1 x 50 51",
                          "replay1 3 50 51 junk", "replay1 3 -50 51", "replay1 3 50 50 1 0"}) {
    INFO("'" << bad << "'");
    const Status s = w.restore(bad);
    CHECK_FALSE(s);
    CHECK(s.is(StatusCode::kInvalid));
    CHECK(w.save() == before);
  }
  CHECK(w.check_and_mark(3, 50) == Verdict::kReplayed);
}
