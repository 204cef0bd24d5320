#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <limits>

#include "curvebus/acl.hpp"
#include "curvebus/certificate.hpp"
#include "fixture.hpp"

using namespace curvebus;
using curvebus::test::mentions;

namespace {

std::string entry(const std::string& name, const std::string& key, const std::string& rest) {
  return "[[client]]\nname = \"" + name + "\"\npublic_key = \"" + key + "\"\n" + rest + "\n";
}

// 2027-01-01T00:00:00Z in microseconds since the Unix epoch.
constexpr std::int64_t k2027 = 1798761600LL * 1000000;

// Parses `text` and returns its error (the test fails if it parsed).
Status parse_error(const std::string& text, const std::string& base_dir = ".") {
  auto list = AllowList::parse(text, "acl.toml", base_dir);
  CHECK_FALSE(list);
  return list ? Status::Ok() : list.status();
}

// The not_after a one-key allow-list gives its key (or the parse error).
Result<std::int64_t> not_after_of(const std::string& value) {
  KeyPair kp = generate_keypair();
  auto list = AllowList::parse(entry("a", kp.public_key, "not_after = " + value), "acl.toml", ".");
  if (!list) return list.status();
  return list->by_name("a")->keys.at(0).not_after_us;
}

}  // namespace

TEST_CASE("pattern coverage decides subscription rights", "[acl]") {
  CHECK(pattern_covers("#", "robot/alex/telemetry"));
  CHECK(pattern_covers("#", "robot/#"));
  CHECK(pattern_covers("robot/#", "robot/+/telemetry"));
  CHECK(pattern_covers("robot/#", "robot/#"));
  CHECK(pattern_covers("robot/+/telemetry", "robot/alex/telemetry"));
  CHECK(pattern_covers("robot/+/telemetry", "robot/+/telemetry"));
  CHECK_FALSE(pattern_covers("robot/alex/#", "robot/+/telemetry"));
  CHECK_FALSE(pattern_covers("robot/+/telemetry", "robot/#"));
  CHECK_FALSE(pattern_covers("robot/+", "robot/+/x"));
  CHECK_FALSE(pattern_covers("robot/alex", "robot/+"));
  CHECK_FALSE(pattern_covers("#", "$SYS/presence/+"));
  CHECK(pattern_covers("$SYS/#", "$SYS/presence/+"));
}

TEST_CASE("the allow-list maps keys to names and rights, {name} expanded", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair();
  std::string text = entry("alex", a.public_key,
                           "role = \"agent\"\npublish = [\"robot/{name}/#\"]\n"
                           "subscribe = [\"robot/{name}/cmd\"]") +
                     entry("ops", b.public_key, "admin = true\nsubscribe = [\"#\", \"$SYS/#\"]");
  auto list = AllowList::parse(text, "acl.toml", ".");
  REQUIRE(list);
  CHECK(list->key_count() == 2);
  AllowList::KeyMatch match = list->by_key(a.public_key);
  REQUIRE(match.entry);
  REQUIRE(match.key);
  const AclEntry* alex = match.entry;
  CHECK(alex->name == "alex");
  CHECK(match.key->public_key == a.public_key);
  CHECK(match.key->not_before_us == 0);
  CHECK(match.key->not_after_us == 0);
  CHECK(match.key->source == "acl.toml:3");
  CHECK(alex->role == "agent");
  CHECK_FALSE(alex->admin);
  CHECK(may_publish(*alex, "robot/alex/telemetry"));
  CHECK_FALSE(may_publish(*alex, "robot/other/telemetry"));
  CHECK(may_subscribe(*alex, "robot/alex/cmd"));
  CHECK_FALSE(may_subscribe(*alex, "robot/+/cmd"));
  const AclEntry* ops = list->by_name("ops");
  REQUIRE(ops);
  CHECK(ops->admin);
  CHECK_FALSE(may_publish(*ops, "robot/alex/cmd"));
  CHECK(may_subscribe(*ops, "$SYS/presence/#"));
  AllowList::KeyMatch unknown = list->by_key(generate_keypair().public_key);
  CHECK(unknown.entry == nullptr);
  CHECK(unknown.key == nullptr);
  CHECK(list->remove("alex"));
  CHECK(list->by_key(a.public_key).entry == nullptr);
  CHECK(list->by_name("ops") != nullptr);
  CHECK(list->by_key(b.public_key).entry == list->by_name("ops"));
  CHECK(list->key_count() == 1);
  CHECK_FALSE(list->remove("alex"));
}

TEST_CASE("allow-list errors name the line", "[acl]") {
  KeyPair a = generate_keypair();
  auto unknown = AllowList::parse(entry("a", a.public_key, "publsh = [\"x\"]"), "acl.toml", ".");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.status().message().find("acl.toml:4") != std::string::npos);
  CHECK(unknown.status().message().find("publsh") != std::string::npos);

  auto badkey = AllowList::parse(entry("a", "tooshort", ""), "acl.toml", ".");
  REQUIRE_FALSE(badkey);
  CHECK(badkey.status().message().find("acl.toml:3") != std::string::npos);

  auto badtype = AllowList::parse(entry("a", a.public_key, "admin = \"yes\""), "acl.toml", ".");
  REQUIRE_FALSE(badtype);
  CHECK(badtype.status().message().find("acl.toml:4") != std::string::npos);

  auto badpattern =
      AllowList::parse(entry("a", a.public_key, "\nsubscribe = [\"a/#/b\"]"), "acl.toml", ".");
  REQUIRE_FALSE(badpattern);
  CHECK(badpattern.status().message().find("acl.toml:5") != std::string::npos);

  auto syntax = AllowList::parse("[[client]]\nname = \n", "acl.toml", ".");
  REQUIRE_FALSE(syntax);
  CHECK(syntax.status().message().find("acl.toml:2") != std::string::npos);

  auto dup = AllowList::parse(entry("a", a.public_key, "") + entry("b", a.public_key, ""),
                              "acl.toml", ".");
  REQUIRE_FALSE(dup);
  CHECK(dup.status().message().find("share one public key") != std::string::npos);
}

TEST_CASE("public_key_file reads a certificate relative to the allow-list", "[acl]") {
  test::TempDir dir;
  KeyPair kp = generate_keypair();
  REQUIRE(write_certificate(dir / "keys", "carol", kp));
  {
    std::ofstream out(dir / "acl.toml");
    out << "[[client]]\nname = \"carol\"\npublic_key_file = \"keys/carol\"\n";
  }
  auto list = AllowList::load_file(dir / "acl.toml");
  REQUIRE(list);
  REQUIRE(list->by_name("carol"));
  REQUIRE(list->by_name("carol")->keys.size() == 1);
  CHECK(list->by_name("carol")->keys[0].public_key == kp.public_key);
  CHECK(list->by_name("carol")->keys[0].source == dir / "acl.toml:3");
}

TEST_CASE("an allow-list in the documented one-key-per-client form stays valid", "[acl]") {
  test::TempDir dir;
  for (const char* name : {"ops", "laptop", "alex", "dashboard"})
    REQUIRE(write_certificate(dir / "keys", name, generate_keypair()));
  const std::string text = R"(# The allow-list
[[client]]
name = "ops"                       # a person with the admin right
public_key_file = "keys/ops"
role = "client"
admin = true
publish = ["#"]
subscribe = ["#", "$SYS/#"]

[[client]]
name = "laptop"
public_key_file = "keys/laptop"
role = "client"
publish = ["robot/+/cmd"]
subscribe = ["robot/#", "$SYS/presence/#"]

[[client]]
name = "alex"
public_key_file = "keys/alex"
role = "agent"
publish = ["robot/{name}/#"]
subscribe = ["robot/{name}/cmd", "$SYS/presence/#"]

[[client]]
name = "dashboard"
public_key_file = "keys/dashboard"
subscribe = ["robot/+/telemetry", "robot/+/status"]
)";
  auto list = AllowList::parse(text, "acl.toml", dir.path());
  REQUIRE(list);
  REQUIRE(list->entries().size() == 4);
  CHECK(list->key_count() == 4);
  CHECK(list->entries()[0].name == "ops");
  CHECK(list->entries()[3].name == "dashboard");
  CHECK(list->by_name("alex")->publish == std::vector<std::string>{"robot/alex/#"});
  CHECK(list->by_name("dashboard")->role == "client");
  for (const AclEntry& e : list->entries()) {
    REQUIRE(e.keys.size() == 1);
    CHECK(key_state(e.keys[0], 0) == KeyState::kValid);
    CHECK(list->by_key(e.keys[0].public_key).entry == &e);
  }
}

TEST_CASE("one block lists several keys, each with its own validity and source", "[acl]") {
  test::TempDir dir;
  KeyPair old_key = generate_keypair(), a = generate_keypair(), b = generate_keypair();
  REQUIRE(write_certificate(dir / "keys", "laptop-2027", b));
  const std::string text =
      "[[client]]\n"         // 1
      "name = \"laptop\"\n"  // 2
      "public_key = \"" +
      old_key.public_key +
      "\"\n"                                     // 3
      "not_before = \"2025-01-01T00:00:00Z\"\n"  // 4
      "keys = [\n"                               // 5
      "  { public_key = \"" +
      a.public_key +
      "\", not_after = 2027-01-01T00:00:00Z },\n"  // 6
      "  { public_key_file = \"keys/laptop-2027\", "
      "not_before = 2026-12-01 },\n"    // 7
      "]\n"                             // 8
      "publish = [\"robot/+/cmd\"]\n";  // 9
  auto list = AllowList::parse(text, "acl.toml", dir.path());
  REQUIRE(list);
  REQUIRE(list->entries().size() == 1);
  const AclEntry& laptop = list->entries()[0];
  REQUIRE(laptop.keys.size() == 3);
  CHECK(list->key_count() == 3);

  CHECK(laptop.keys[0].public_key == old_key.public_key);
  CHECK(laptop.keys[0].not_before_us == 1735689600LL * 1000000);  // 2025-01-01
  CHECK(laptop.keys[0].not_after_us == 0);
  CHECK(laptop.keys[0].source == "acl.toml:3");

  CHECK(laptop.keys[1].public_key == a.public_key);
  CHECK(laptop.keys[1].not_before_us == 0);  // the block's not_before is not inherited
  CHECK(laptop.keys[1].not_after_us == k2027);
  CHECK(laptop.keys[1].source == "acl.toml:6");

  CHECK(laptop.keys[2].public_key == b.public_key);
  CHECK(laptop.keys[2].not_before_us == 1796083200LL * 1000000);  // 2026-12-01
  CHECK(laptop.keys[2].source == "acl.toml:7");

  for (const KeyPair* kp : {&old_key, &a, &b}) {
    AllowList::KeyMatch m = list->by_key(kp->public_key);
    CHECK(m.entry == &laptop);
    REQUIRE(m.key);
    CHECK(m.key->public_key == kp->public_key);
  }
  CHECK(may_publish(laptop, "robot/alex/cmd"));

  CHECK(list->remove("laptop"));
  CHECK(list->key_count() == 0);
  CHECK(list->by_key(a.public_key).entry == nullptr);
}

TEST_CASE("keys may also be written as [[client.keys]] tables", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair();
  const std::string text =
      "[[client]]\nname = \"x\"\n"
      "[[client.keys]]\npublic_key = \"" +
      a.public_key +
      "\"\n"
      "[[client.keys]]\npublic_key = \"" +
      b.public_key + "\"\nnot_after = 2027-01-01\n";
  auto list = AllowList::parse(text, "acl.toml", ".");
  REQUIRE(list);
  REQUIRE(list->by_name("x")->keys.size() == 2);
  CHECK(list->by_key(b.public_key).key->not_after_us == k2027);
}

TEST_CASE("validity accepts offset date-times, local dates and RFC 3339 strings", "[acl]") {
  CHECK(not_after_of("2027-01-01T00:00:00Z").value() == k2027);
  CHECK(not_after_of("2027-01-01T02:30:00+02:30").value() == k2027);
  CHECK(not_after_of("2026-12-31T19:00:00-05:00").value() == k2027);
  CHECK(not_after_of("2027-01-01 00:00:00Z").value() == k2027);
  CHECK(not_after_of("2027-01-01T00:00:00.25Z").value() == k2027 + 250000);
  CHECK(not_after_of("2027-01-01").value() == k2027);  // a local date is midnight UTC
  CHECK(not_after_of("\"2027-01-01T00:00:00Z\"").value() == k2027);
  CHECK(not_after_of("\"2027-01-01t01:00:00+01:00\"").value() == k2027);
  CHECK(not_after_of("\"2027-01-01 00:00:00z\"").value() == k2027);
  CHECK(not_after_of("\"2026-12-31T23:59:59.999999999-00:00\"").value() == k2027 - 1);
  CHECK(not_after_of("\"2027-01-01\"").value() == k2027);
  CHECK(not_after_of("\"2028-02-29T00:00:00Z\"").value() ==
        k2027 + (365 + 31 + 28) * 86400LL * 1000000);
}

TEST_CASE("validity in any other form is an error naming file:line", "[acl]") {
  for (const char* bad : {
           "2027-01-01T00:00:00",       // local date-time: which zone?
           "12:00:00",                  // a time of day
           "1798761600",                // a number
           "true",                      // not a time at all
           "\"tomorrow\"",              // not RFC 3339
           "\"2027-01-01T00:00:00\"",   // no offset
           "\"2027-02-29T00:00:00Z\"",  // not a leap year
           "\"2027-01-01T24:00:00Z\"",  // no such hour
           "\"2027-01-01T00:00:00+24:00\"",
           "\"2027-1-1\"",  // digits missing
           "\"2027-01-01T00:00:00Z trailing\"",
           "\"2027-01-01T00:00:00.Z\"",  // empty fraction
           "1970-01-01T00:00:00Z",       // the epoch would read as "no expiry"
           "1969-12-31",
       }) {
    CAPTURE(bad);
    auto r = not_after_of(bad);
    REQUIRE_FALSE(r);
    CHECK(mentions(r.status(), "acl.toml:4"));
    CHECK(mentions(r.status(), "not_after"));
  }

  KeyPair kp = generate_keypair();
  Status inverted =
      parse_error(entry("a", kp.public_key, "not_before = 2027-01-02\nnot_after = 2027-01-01"));
  CHECK(mentions(inverted, "acl.toml:5"));
  CHECK(mentions(inverted, "before its not_before"));

  // not_before in a block whose keys are all in a keys list has no key to apply to.
  Status orphan = parse_error(
      "[[client]]\nname = \"a\"\nnot_before = 2027-01-01\nkeys = [{ "
      "public_key = \"" +
      kp.public_key + "\" }]\n");
  CHECK(mentions(orphan, "acl.toml:3"));
  CHECK(mentions(orphan, "per key"));
}

TEST_CASE("key_state is valid from not_before through not_after, both inclusive", "[acl]") {
  AclKey k;
  k.not_before_us = 1000;
  k.not_after_us = 2000;
  CHECK(key_state(k, 999) == KeyState::kNotYetValid);
  CHECK(key_state(k, 1000) == KeyState::kValid);
  CHECK(key_state(k, 2000) == KeyState::kValid);
  CHECK(key_state(k, 2001) == KeyState::kExpired);

  AclKey open;  // 0 = unbounded on both sides
  CHECK(key_state(open, 1) == KeyState::kValid);
  CHECK(key_state(open, std::numeric_limits<std::int64_t>::max()) == KeyState::kValid);

  AclKey only_after;
  only_after.not_after_us = k2027;
  CHECK(key_state(only_after, 1) == KeyState::kValid);
  CHECK(key_state(only_after, k2027) == KeyState::kValid);
  CHECK(key_state(only_after, k2027 + 1) == KeyState::kExpired);

  AclKey only_before;
  only_before.not_before_us = k2027;
  CHECK(key_state(only_before, k2027 - 1) == KeyState::kNotYetValid);
  CHECK(key_state(only_before, k2027) == KeyState::kValid);
  CHECK(key_state(only_before, std::numeric_limits<std::int64_t>::max()) == KeyState::kValid);

  CHECK(std::string(key_state_name(KeyState::kExpired)) == "expired");
  CHECK(std::string(key_state_name(KeyState::kNotYetValid)) == "not yet valid");
  CHECK(std::string(key_state_name(KeyState::kValid)) == "valid");
}

TEST_CASE("format_utc prints RFC 3339 UTC, microseconds only when present", "[acl]") {
  CHECK(format_utc(k2027) == "2027-01-01T00:00:00Z");
  CHECK(format_utc(k2027 + 250000) == "2027-01-01T00:00:00.250000Z");
  CHECK(format_utc(k2027 - 1) == "2026-12-31T23:59:59.999999Z");
  CHECK(format_utc(951782400LL * 1000000) == "2000-02-29T00:00:00Z");
}

TEST_CASE("blocks of one name with the same rights merge their keys (rotation)", "[acl]") {
  KeyPair old_key = generate_keypair(), new_key = generate_keypair(), other = generate_keypair();
  // Same rights written differently: other order, {name} versus the name itself.
  const std::string text =
      entry("laptop", old_key.public_key,
            "role = \"client\"\npublish = [\"robot/{name}/x\", \"robot/+/cmd\"]\n"
            "subscribe = [\"robot/#\"]") +
      entry("ops", other.public_key, "admin = true") +
      entry("laptop", new_key.public_key,
            "not_before = 2026-12-01\npublish = [\"robot/+/cmd\", \"robot/laptop/x\"]\n"
            "subscribe = [\"robot/#\"]\nadmin = false");
  auto list = AllowList::parse(text, "acl.toml", ".");
  REQUIRE(list);
  REQUIRE(list->entries().size() == 2);
  CHECK(list->entries()[0].name == "laptop");  // first appearance decides the order
  CHECK(list->entries()[1].name == "ops");
  const AclEntry* laptop = list->by_name("laptop");
  REQUIRE(laptop->keys.size() == 2);
  CHECK(laptop->keys[0].public_key == old_key.public_key);
  CHECK(laptop->keys[1].public_key == new_key.public_key);
  CHECK(laptop->keys[1].not_before_us != 0);
  CHECK(list->by_key(old_key.public_key).entry == laptop);
  CHECK(list->by_key(new_key.public_key).entry == laptop);
  CHECK(list->key_count() == 3);
}

TEST_CASE("a keys-only block takes the rights of its name's other blocks", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair(), c = generate_keypair();
  // Keys-only blocks before and after the one that states the rights.
  const std::string text = entry("alex", a.public_key, "") +
                           entry("alex", b.public_key,
                                 "role = \"agent\"\npublish = [\"robot/{name}/#\"]\n"
                                 "subscribe = [\"robot/{name}/cmd\"]") +
                           entry("alex", c.public_key, "not_after = 2027-01-01");
  auto list = AllowList::parse(text, "acl.toml", ".");
  REQUIRE(list);
  REQUIRE(list->entries().size() == 1);
  for (const KeyPair* kp : {&a, &b, &c}) {
    const AclEntry* e = list->by_key(kp->public_key).entry;
    REQUIRE(e);
    CHECK(e->role == "agent");
    CHECK(may_publish(*e, "robot/alex/telemetry"));
    CHECK(may_subscribe(*e, "robot/alex/cmd"));
    CHECK_FALSE(may_subscribe(*e, "robot/+/cmd"));
  }
  CHECK(list->by_key(c.public_key).key->not_after_us == k2027);

  // A name whose blocks all leave the rights out has the defaults, as one
  // block without rights always had.
  auto bare = AllowList::parse(entry("x", a.public_key, "") + entry("x", b.public_key, ""),
                               "acl.toml", ".");
  REQUIRE(bare);
  const AclEntry* x = bare->by_name("x");
  CHECK(x->keys.size() == 2);
  CHECK(x->role == "client");
  CHECK_FALSE(x->admin);
  CHECK(x->publish.empty());
  CHECK(x->subscribe.empty());
}

TEST_CASE("blocks of one name stating different rights are an error naming both", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair();
  const std::string first = entry("laptop", a.public_key, "publish = [\"robot/+/cmd\"]");  // 1-4
  for (const char* second_rights : {
           "publish = [\"robot/#\"]",                        // other patterns
           "publish = [\"robot/+/cmd\"]\nadmin = true",      // admin differs
           "publish = [\"robot/+/cmd\"]\nrole = \"agent\"",  // role differs
           "publish = [\"robot/+/cmd\"]\nsubscribe = [\"#\"]",
           "admin = false",  // states rights (defaults), which differ from the first block's
       }) {
    CAPTURE(second_rights);
    Status s = parse_error(first + entry("laptop", b.public_key, second_rights));
    CHECK(mentions(s, "acl.toml:5"));           // the second block
    CHECK(mentions(s, "than at acl.toml:1 "));  // the first block
    CHECK(mentions(s, "'laptop'"));
    CHECK(mentions(s, "other rights"));
  }
}

TEST_CASE("one key belongs to one place: duplicates are errors naming both", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair();
  Status two_names = parse_error(entry("x", a.public_key, "") + entry("y", a.public_key, ""));
  CHECK(mentions(two_names, "acl.toml:7"));
  CHECK(mentions(two_names, "acl.toml:3"));
  CHECK(mentions(two_names, "'x'"));
  CHECK(mentions(two_names, "'y'"));
  CHECK(mentions(two_names, "share one public key"));

  Status two_blocks = parse_error(entry("x", a.public_key, "") + entry("x", a.public_key, ""));
  CHECK(mentions(two_blocks, "acl.toml:7"));
  CHECK(mentions(two_blocks, "acl.toml:3"));
  CHECK(mentions(two_blocks, "twice"));

  Status one_block = parse_error(entry("x", b.public_key,
                                       "keys = [\n{ public_key = \"" + a.public_key +
                                           "\" },\n{ public_key = \"" + a.public_key + "\" }]"));
  CHECK(mentions(one_block, "acl.toml:6"));
  CHECK(mentions(one_block, "acl.toml:5"));
  CHECK(mentions(one_block, "twice"));

  // The same key through a certificate file and written out counts too.
  test::TempDir dir;
  REQUIRE(write_certificate(dir / "keys", "x", a));
  Status via_file = parse_error(
      entry("y", a.public_key, "") + "[[client]]\nname = \"x\"\npublic_key_file = \"keys/x\"\n",
      dir.path());
  CHECK(mentions(via_file, "acl.toml:7"));
  CHECK(mentions(via_file, "acl.toml:3"));
  CHECK(mentions(via_file, "share one public key"));
}

TEST_CASE("a block needs at least one well-formed key", "[acl]") {
  KeyPair a = generate_keypair(), b = generate_keypair();
  Status none = parse_error("[[client]]\nname = \"x\"\npublish = [\"a\"]\n");
  CHECK(mentions(none, "acl.toml:1"));
  CHECK(mentions(none, "needs public_key"));

  Status empty = parse_error("[[client]]\nname = \"x\"\nkeys = []\n");
  CHECK(mentions(empty, "acl.toml:1"));

  Status both = parse_error(entry("x", a.public_key, "public_key_file = \"keys/x\""));
  CHECK(mentions(both, "acl.toml:4"));
  CHECK(mentions(both, "not both"));

  Status element_empty = parse_error(
      "[[client]]\nname = \"x\"\nkeys = [\n{ not_after = "
      "2027-01-01 }]\n");
  CHECK(mentions(element_empty, "acl.toml:4"));
  CHECK(mentions(element_empty, "needs public_key"));

  Status element_both = parse_error("[[client]]\nname = \"x\"\nkeys = [\n{ public_key = \"" +
                                    a.public_key + "\", public_key_file = \"k\" }]\n");
  CHECK(mentions(element_both, "not both"));

  Status element_unknown = parse_error("[[client]]\nname = \"x\"\nkeys = [\n{ public_key = \"" +
                                       b.public_key + "\", expires = 2027-01-01 }]\n");
  CHECK(mentions(element_unknown, "acl.toml:4"));
  CHECK(mentions(element_unknown, "expires"));

  Status element_badkey =
      parse_error("[[client]]\nname = \"x\"\n\nkeys = [{ public_key = \"short\" }]\n");
  CHECK(mentions(element_badkey, "acl.toml:4"));
  CHECK(mentions(element_badkey, "Z85"));

  Status not_list = parse_error("[[client]]\nname = \"x\"\nkeys = \"" + a.public_key + "\"\n");
  CHECK(mentions(not_list, "acl.toml:3"));

  Status not_table = parse_error("[[client]]\nname = \"x\"\nkeys = [\"" + a.public_key + "\"]\n");
  CHECK(mentions(not_table, "acl.toml:3"));
  CHECK(mentions(not_table, "table"));

  Status missing_file =
      parse_error("[[client]]\nname = \"x\"\nkeys = [\n{ public_key_file = \"no/such/file\" }]\n",
                  "/nonexistent-dir");
  CHECK(mentions(missing_file, "acl.toml:4"));
}
