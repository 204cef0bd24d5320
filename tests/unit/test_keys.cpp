#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "curvebus/certificate.hpp"
#include "fixture.hpp"
#include "process.hpp"

using namespace curvebus;

TEST_CASE("key pairs are valid Z85 and the public key derives from the secret", "[keys]") {
  KeyPair kp = generate_keypair();
  CHECK(kp.public_key.size() == 40);
  CHECK(is_z85_key(kp.public_key));
  CHECK(is_z85_key(kp.secret_key));
  CHECK(public_from_secret(kp.secret_key) == kp.public_key);
  CHECK_FALSE(is_z85_key("short"));
  CHECK_FALSE(is_z85_key(std::string(40, '"')));
}

TEST_CASE("certificates round-trip in CZMQ's format with safe modes", "[keys]") {
  test::TempDir dir;
  KeyPair kp = generate_keypair();
  REQUIRE(write_certificate(dir.path(), "alice", kp));
  struct stat st {};
  REQUIRE(::stat((dir / "alice_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((dir / "alice").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);

  std::string pub_text = test::read_file(dir / "alice");
  CHECK(pub_text.find("curve\n    public-key = \"" + kp.public_key + "\"") != std::string::npos);
  CHECK(pub_text.find(kp.secret_key) == std::string::npos);

  auto pub = read_certificate(dir / "alice", false);
  REQUIRE(pub);
  CHECK(pub->keys.public_key == kp.public_key);
  CHECK(pub->keys.secret_key.empty());
  CHECK(pub->metadata.at("name") == "alice");

  auto sec = read_certificate(dir / "alice_secret", true);
  REQUIRE(sec);
  CHECK(sec->keys.secret_key == kp.secret_key);

  // The public file is not a secret certificate.
  auto wrong = read_certificate(dir / "alice", true);
  CHECK_FALSE(wrong);

  // Never overwrite silently.
  Status again = write_certificate(dir.path(), "alice", generate_keypair());
  CHECK_FALSE(again);
  CHECK(again.code() == "EXISTS");
}

TEST_CASE("a secret key readable by group or others is refused", "[keys]") {
  test::TempDir dir;
  REQUIRE(write_certificate(dir.path(), "bob", generate_keypair()));
  REQUIRE(::chmod((dir / "bob_secret").c_str(), 0640) == 0);
  auto r = read_certificate(dir / "bob_secret", true);
  REQUIRE_FALSE(r);
  CHECK(r.status().code() == "INSECURE");
  CHECK(r.status().message().find("chmod 600") != std::string::npos);
  REQUIRE(::chmod((dir / "bob_secret").c_str(), 0604) == 0);
  CHECK_FALSE(read_certificate(dir / "bob_secret", true));
  REQUIRE(::chmod((dir / "bob_secret").c_str(), 0400) == 0);
  CHECK(read_certificate(dir / "bob_secret", true));
}

TEST_CASE("a hand-written CZMQ certificate is readable", "[keys]") {
  test::TempDir dir;
  KeyPair kp = generate_keypair();
  {
    std::ofstream out(dir / "czmq");
    out << "#   ZeroMQ CURVE Public Certificate\n\nmetadata\n    name = \"x\"\ncurve\n"
        << "    public-key = \"" << kp.public_key << "\"\n";
  }
  auto r = read_certificate(dir / "czmq", false);
  REQUIRE(r);
  CHECK(r->keys.public_key == kp.public_key);
  CHECK(resolve_public_key(dir / "czmq").value() == kp.public_key);
  CHECK(resolve_public_key(kp.public_key).value() == kp.public_key);
  CHECK_FALSE(resolve_public_key(dir / "missing"));
}

TEST_CASE("fingerprints are short, stable and not the key", "[keys]") {
  KeyPair kp = generate_keypair();
  std::string f = key_fingerprint(kp.public_key);
  CHECK(f.size() == 19);
  CHECK(f == key_fingerprint(kp.public_key));
  CHECK(f.find(kp.public_key.substr(0, 8)) == std::string::npos);
}
