#include <catch2/catch.hpp>

#include "curvebus/acl.hpp"
#include "curvebus/certificate.hpp"
#include "fixture.hpp"

#include <fstream>

using namespace curvebus;

namespace {
std::string entry(const std::string& name, const std::string& key, const std::string& rest) {
  return "[[client]]\nname = \"" + name + "\"\npublic_key = \"" + key + "\"\n" + rest + "\n";
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
  const AclEntry* alex = list->by_key(a.public_key);
  REQUIRE(alex);
  CHECK(alex->name == "alex");
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
  CHECK(list->by_key(generate_keypair().public_key) == nullptr);
  CHECK(list->remove("alex"));
  CHECK(list->by_key(a.public_key) == nullptr);
  CHECK(list->by_name("ops") != nullptr);
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
  CHECK(list->by_name("carol")->public_key == kp.public_key);
}
