#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <fstream>
#include <string>
#include <vector>

#include "curvebus/acl.hpp"
#include "curvebus/certificate.hpp"
#include "curvebus/revocations.hpp"
#include "fixture.hpp"
#include "process.hpp"

using namespace curvebus;
using curvebus::test::mentions;

namespace {

using Kind = Revocation::Kind;

Revocation key_rev(const std::string& key, const std::string& reason = "") {
  Revocation r;
  r.kind = Kind::kKey;
  r.value = key;
  r.by = "ops";
  r.at_us = 1798761600LL * 1000000;
  r.reason = reason;
  return r;
}

Revocation name_rev(const std::string& name) {
  Revocation r;
  r.kind = Kind::kName;
  r.value = name;
  return r;
}

std::vector<std::string> dir_names(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d);
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

Status revocation_parse_error(const std::string& text) {
  auto list = RevocationList::parse(text, "revoked.toml");
  CHECK_FALSE(list);
  return list ? Status::Ok() : list.status();
}

}  // namespace

TEST_CASE("add and remove keep one entry per kind and value", "[revocations]") {
  RevocationList list;
  KeyPair a = generate_keypair();
  CHECK_FALSE(list.key_revoked(a.public_key));
  CHECK(list.add(key_rev(a.public_key)));
  CHECK(list.key_revoked(a.public_key));
  CHECK_FALSE(list.add(key_rev(a.public_key, "again")));  // already there: unchanged
  REQUIRE(list.entries().size() == 1);
  CHECK(list.entries()[0].reason.empty());

  // A name and a key are different kinds, even with equal text.
  CHECK(list.add(name_rev("laptop")));
  CHECK(list.name_revoked("laptop"));
  CHECK_FALSE(list.key_revoked("laptop"));
  CHECK_FALSE(list.name_revoked(a.public_key));
  CHECK_FALSE(list.add(name_rev("laptop")));
  CHECK(list.entries().size() == 2);

  // Values the file could not hold again are refused.
  CHECK_FALSE(list.add(key_rev("not-a-key")));
  CHECK_FALSE(list.add(name_rev("robot/alex")));
  CHECK_FALSE(list.add(name_rev("")));
  CHECK(list.entries().size() == 2);

  CHECK_FALSE(list.remove(Kind::kName, a.public_key));
  CHECK(list.remove(Kind::kKey, a.public_key));
  CHECK_FALSE(list.key_revoked(a.public_key));
  CHECK_FALSE(list.remove(Kind::kKey, a.public_key));
  REQUIRE(list.entries().size() == 1);
  CHECK(list.entries()[0].value == "laptop");
  CHECK(list.add(key_rev(a.public_key)));  // can be revoked again after lifting
  CHECK(list.entries().back().value == a.public_key);
}

TEST_CASE("a missing revocation file is an empty list", "[revocations]") {
  test::TempDir dir;
  auto list = RevocationList::load_file(dir / "revoked.toml");
  REQUIRE(list);
  CHECK(list->entries().empty());
  CHECK(dir_names(dir.path()).empty());  // loading creates nothing
}

TEST_CASE("revocations round-trip through the file", "[revocations]") {
  test::TempDir dir;
  KeyPair a = generate_keypair(), b = generate_keypair();
  RevocationList list;
  REQUIRE(list.add(key_rev(a.public_key, "laptop stolen \"at the airport\"\n\\ twice\t\x01")));
  REQUIRE(list.add(name_rev("alex")));
  Revocation precise = key_rev(b.public_key, "caf\xc3\xa9");
  precise.at_us += 123456;
  precise.by = "ops (admin)";
  REQUIRE(list.add(precise));
  REQUIRE(list.save_file(dir / "revoked.toml"));

  const std::string text = test::read_file(dir / "revoked.toml");
  CHECK(text.rfind("# curvebus revocations", 0) == 0);  // a header says what the file is
  CHECK(text.find("[[revoked]]") != std::string::npos);
  CHECK(text.find("at = 2027-01-01T00:00:00Z") != std::string::npos);
  CHECK(text.find("name = \"alex\"") != std::string::npos);
  CHECK(text.find(key_fingerprint(a.public_key)) != std::string::npos);

  auto loaded = RevocationList::load_file(dir / "revoked.toml");
  REQUIRE(loaded);
  REQUIRE(loaded->entries().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const Revocation& want = list.entries()[i];
    const Revocation& got = loaded->entries()[i];
    CAPTURE(i);
    CHECK((got.kind == want.kind));
    CHECK(got.value == want.value);
    CHECK(got.by == want.by);
    CHECK(got.at_us == want.at_us);
    CHECK(got.reason == want.reason);
  }
  CHECK(loaded->key_revoked(a.public_key));
  CHECK(loaded->key_revoked(b.public_key));
  CHECK(loaded->name_revoked("alex"));
  CHECK(loaded->to_toml() == text);

  // An empty list saves and loads as empty.
  REQUIRE(RevocationList().save_file(dir / "empty.toml"));
  auto empty = RevocationList::load_file(dir / "empty.toml");
  REQUIRE(empty);
  CHECK(empty->entries().empty());
}

TEST_CASE("text that is not UTF-8 is saved as U+FFFD so the file stays loadable", "[revocations]") {
  test::TempDir dir;
  RevocationList list;
  Revocation r = key_rev(generate_keypair().public_key, std::string("bad \xff\xc3 end\x7f"));
  r.by = std::string("\xed\xa0\x80", 3);  // an encoded surrogate is not UTF-8 either
  REQUIRE(list.add(r));
  REQUIRE(list.save_file(dir / "revoked.toml"));
  auto loaded = RevocationList::load_file(dir / "revoked.toml");
  REQUIRE(loaded);
  REQUIRE(loaded->entries().size() == 1);
  CHECK(loaded->entries()[0].reason == "bad \xef\xbf\xbd\xef\xbf\xbd end\x7f");
  CHECK(loaded->entries()[0].by == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("save replaces the file atomically with mode 0600 and leaves no temp file",
          "[revocations]") {
  test::TempDir dir;
  const std::string path = dir / "revoked.toml";
  write(path, "# an older list\n");
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  RevocationList list;
  KeyPair a = generate_keypair();
  REQUIRE(list.add(key_rev(a.public_key)));
  REQUIRE(list.save_file(path));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(dir_names(dir.path()) == std::vector<std::string>{"revoked.toml"});
  auto loaded = RevocationList::load_file(path);
  REQUIRE(loaded);
  CHECK(loaded->key_revoked(a.public_key));

  // A save that cannot finish leaves the old file as it was and no temp file.
  const std::string before = test::read_file(path);
  REQUIRE(::mkdir((dir / "taken").c_str(), 0700) == 0);
  write(dir / "taken/x", "x");  // a non-empty directory cannot be renamed over
  Status blocked = list.save_file(dir / "taken");
  CHECK_FALSE(blocked);
  CHECK(blocked.code() == "IO");
  CHECK(test::read_file(path) == before);
  std::vector<std::string> names = dir_names(dir.path());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"revoked.toml", "taken"});

  Status no_dir = list.save_file(dir / "missing/revoked.toml");
  CHECK_FALSE(no_dir);
  CHECK(no_dir.code() == "IO");
}

TEST_CASE("a malformed revocation file is an error naming file:line", "[revocations]") {
  KeyPair a = generate_keypair();
  const std::string key = "key = \"" + a.public_key + "\"\n";

  Status typo_key = revocation_parse_error("# header\n[[revoked]]\nkey = \"" +
                                           a.public_key.substr(0, 39) + "\"\n");
  CHECK(mentions(typo_key, "revoked.toml:3"));
  CHECK(mentions(typo_key, "Z85"));

  Status bad_z85 = revocation_parse_error("[[revoked]]\nkey = \"" + std::string(40, '~') + "\"\n");
  CHECK(mentions(bad_z85, "revoked.toml:2"));

  Status bad_name = revocation_parse_error("[[revoked]]\nname = \"robot/alex\"\n");
  CHECK(mentions(bad_name, "revoked.toml:2"));

  Status misspelt = revocation_parse_error("[[revoked]]\nkye = \"" + a.public_key + "\"\n");
  CHECK(mentions(misspelt, "revoked.toml:2"));
  CHECK(mentions(misspelt, "kye"));

  Status neither = revocation_parse_error("[[revoked]]\nby = \"ops\"\n");
  CHECK(mentions(neither, "revoked.toml:1"));

  Status both = revocation_parse_error("\n[[revoked]]\n" + key + "name = \"alex\"\n");
  CHECK(mentions(both, "revoked.toml:2"));
  CHECK(mentions(both, "not both"));

  Status key_type = revocation_parse_error("[[revoked]]\nkey = 42\n");
  CHECK(mentions(key_type, "revoked.toml:2"));

  Status by_type = revocation_parse_error("[[revoked]]\n" + key + "by = 1\n");
  CHECK(mentions(by_type, "revoked.toml:3"));

  Status at_local =
      revocation_parse_error("[[revoked]]\n" + key + "reason = \"x\"\nat = 2027-01-01T00:00:00\n");
  CHECK(mentions(at_local, "revoked.toml:4"));
  CHECK(mentions(at_local, "offset"));

  Status dup = revocation_parse_error("[[revoked]]\n" + key + "[[revoked]]\n" + key);
  CHECK(mentions(dup, "revoked.toml:3"));
  CHECK(mentions(dup, "revoked.toml:1"));

  Status other_table = revocation_parse_error("[revoked]\n" + key);
  CHECK(mentions(other_table, "revoked.toml:1"));

  Status stray = revocation_parse_error("version = 1\n");
  CHECK(mentions(stray, "revoked.toml:1"));

  Status syntax = revocation_parse_error("[[revoked]]\n" + key + "reason = \"unterminated\n");
  CHECK(mentions(syntax, "revoked.toml:3"));

  // load_file names the path it read.
  test::TempDir dir;
  write(dir / "revoked.toml", "[[revoked]]\nname = \"\"\n");
  auto loaded = RevocationList::load_file(dir / "revoked.toml");
  REQUIRE_FALSE(loaded);
  CHECK(mentions(loaded.status(), dir / "revoked.toml:2"));

  // A directory where the file should be is an error, not an empty list.
  REQUIRE(::mkdir((dir / "d").c_str(), 0700) == 0);
  CHECK_FALSE(RevocationList::load_file(dir / "d"));

  // The optional fields may be left out; `at` also takes a date.
  auto minimal = RevocationList::parse(
      "[[revoked]]\nname = \"alex\"\n[[revoked]]\n" + key + "at = 2027-01-01\n", "revoked.toml");
  REQUIRE(minimal);
  REQUIRE(minimal->entries().size() == 2);
  CHECK(minimal->entries()[0].at_us == 0);
  CHECK(minimal->entries()[1].at_us == 1798761600LL * 1000000);
}

TEST_CASE("resolve_key turns a key or a fingerprint into the Z85 key", "[revocations]") {
  KeyPair a = generate_keypair(), b = generate_keypair(), gone = generate_keypair();
  auto acl = AllowList::parse("[[client]]\nname = \"x\"\nkeys = [{ public_key = \"" + a.public_key +
                                  "\" }, { public_key = \"" + b.public_key + "\" }]\n",
                              "acl.toml", ".");
  REQUIRE(acl);
  RevocationList revoked;
  REQUIRE(revoked.add(key_rev(gone.public_key)));  // revoked and no longer in the allow-list

  // A full key passes through, listed or not.
  KeyPair stranger = generate_keypair();
  CHECK(resolve_key(*acl, revoked, a.public_key).value() == a.public_key);
  CHECK(resolve_key(*acl, revoked, stranger.public_key).value() == stranger.public_key);

  // A fingerprint finds the allow-list's keys and the revoked keys.
  CHECK(resolve_key(*acl, revoked, key_fingerprint(b.public_key)).value() == b.public_key);
  CHECK(resolve_key(*acl, revoked, key_fingerprint(gone.public_key)).value() == gone.public_key);
  std::string upper = key_fingerprint(a.public_key);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(resolve_key(*acl, revoked, upper).value() == a.public_key);

  // A key both listed and revoked is one match, not an ambiguity.
  REQUIRE(revoked.add(key_rev(a.public_key)));
  CHECK(resolve_key(*acl, revoked, key_fingerprint(a.public_key)).value() == a.public_key);

  auto unknown = resolve_key(*acl, revoked, key_fingerprint(stranger.public_key));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.status().code() == "NOT_FOUND");
  CHECK(mentions(unknown.status(), key_fingerprint(stranger.public_key)));

  for (const std::string& bad :
       {std::string("x"), std::string("b2:123"), key_fingerprint(a.public_key) + "0",
        std::string("b2:invalid"), key_fingerprint(a.public_key).substr(3), a.public_key + " "}) {
    CAPTURE(bad);
    auto r = resolve_key(*acl, revoked, bad);
    REQUIRE_FALSE(r);
    CHECK(r.status().code() == "INVALID");
  }
}
