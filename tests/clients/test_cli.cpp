// The `curvebus` command-line contract, driven as scripts drive it: real
// processes, environment variables, exit codes, stdout lines.
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "fixture.hpp"
#include "process.hpp"
#include "robot.pb.h"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

struct CliEnv {
  TempDir dir{"cli"};
  BrokerHarness broker{CURVEBUS_BROKER_BIN, dir.path()};
  bool started = false;
  int runs = 0;
  CliEnv() {
    broker.add_client({"ops", {"#"}, {"#"}, true});
    broker.add_client({"laptop", {"robot/+/cmd", "chat/#"}, {"robot/#", "chat/#"}});
    broker.add_client({"viewer", {}, {"robot/#"}});
    started = broker.start();
  }
  RunResult cli(const std::string& as, std::vector<std::string> args, const std::string& input = "",
                std::map<std::string, std::string> extra_env = {}) {
    args.insert(args.begin(), CURVEBUS_CLI_BIN);
    auto env = broker.client_env(as);
    for (auto& [k, v] : extra_env) env[k] = v;
    return run(args, dir / ("cli-" + std::to_string(++runs)), env, 20000ms, input);
  }
  Process sub(const std::string& as, std::vector<std::string> args) {
    args.insert(args.begin(), CURVEBUS_CLI_BIN);
    return Process(args, dir / ("sub-" + std::to_string(++runs)), broker.client_env(as));
  }
};

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// The subscriber is ready once the broker lists its subscription.
void wait_subscribed(CliEnv& env, const std::string& pattern) {
  wait_until(
      [&] {
        auto r = env.cli("ops", {"admin", "clients", "--json"});
        return r.out.find("\"" + pattern + "\"") != std::string::npos;
      },
      5000ms, 50ms);
}

}  // namespace

TEST_CASE("cli: keygen writes a ZeroMQ certificate pair with a private secret", "[cli]") {
  TempDir dir("keygen");
  auto r = run({CURVEBUS_CLI_BIN, "keygen", "laptop", "--dir", dir.path()}, dir / "run");
  REQUIRE(r.status == 0);
  const std::string pub = read_file(dir / "laptop"), sec = read_file(dir / "laptop_secret");
  CHECK(pub.find("curve") != std::string::npos);
  CHECK(pub.find("public-key = \"") != std::string::npos);
  CHECK(pub.find("secret") == std::string::npos);
  CHECK(sec.find("secret-key = \"") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat((dir / "laptop_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(r.out.find("public key") != std::string::npos);
  // No silent overwrite.
  auto again = run({CURVEBUS_CLI_BIN, "keygen", "laptop", "--dir", dir.path()}, dir / "run2");
  CHECK(again.status == 1);
  CHECK(lines(again.err) == 1);
}

TEST_CASE("cli: pub to sub through the broker, plain and JSON, wildcards, stdin lines", "[cli]") {
  CliEnv env;
  REQUIRE(env.started);
  Process sub = env.sub("laptop", {"sub", "chat/+", "--count", "3", "--timeout", "15"});
  Process subj = env.sub("laptop", {"sub", "chat/#", "--count", "3", "--timeout", "15", "--json"});
  wait_subscribed(env, "chat/+");
  wait_subscribed(env, "chat/#");
  auto r = env.cli("laptop", {"pub", "chat/general", "hello world"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = env.cli("laptop", {"pub", "chat/general"}, "line one\nline two\n");
  REQUIRE(r.status == 0);
  CHECK(sub.wait(10000ms) == 0);
  CHECK(subj.wait(10000ms) == 0);
  CHECK(sub.out() == "chat/general hello world\nchat/general line one\nchat/general line two\n");
  const std::string j = subj.out();
  CHECK(lines(j) == 3);
  CHECK(j.find(R"({"topic":"chat/general","seq":1,"publisher":"laptop","retained":false)") == 0);
  CHECK(j.find(R"("payload":"line two"})") != std::string::npos);
}

TEST_CASE("cli: robot commands as JSON are encoded, with id and issue time filled in", "[cli]") {
  CliEnv env;
  REQUIRE(env.started);
  Process sub =
      env.sub("ops", {"sub", "robot/alex/cmd", "--count", "1", "--timeout", "15", "--json"});
  wait_subscribed(env, "robot/alex/cmd");
  auto r = env.cli("laptop", {"pub", "--json", "robot/alex/cmd",
                              R"({"forward":{"distanceCm":30,"speedPct":60}})"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(sub.wait(10000ms) == 0);
  const std::string out = sub.out();
  CHECK(out.find(R"("payload":{"id":")") != std::string::npos);
  CHECK(out.find(R"("issuedUs":")") != std::string::npos);
  CHECK(out.find(R"("forward":{"distanceCm":30,"speedPct":60})") != std::string::npos);
  // Bad JSON: named by line, exit 1, the good lines still go.
  r = env.cli("laptop", {"pub", "--json", "robot/alex/cmd"},
              "{\"stop\":{}}\n{not json\n{\"nonsense\":1}\n");
  CHECK(r.status == 1);
  CHECK(r.err.find("line 2") != std::string::npos);
  CHECK(r.err.find("line 3") != std::string::npos);
}

TEST_CASE("cli: failures exit with the documented codes and one stderr line", "[cli]") {
  CliEnv env;
  REQUIRE(env.started);
  SECTION("denied topic: 5") {
    auto r = env.cli("viewer", {"pub", "robot/alex/cmd", "x"});
    CHECK(r.status == 5);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.rfind("curvebus: ", 0) == 0);
    auto s = env.cli("viewer", {"sub", "chat/#", "--timeout", "1"});
    CHECK(s.status == 5);
  }
  SECTION("unknown key: 2") {
    env.broker.stranger("mallory");
    auto r = env.cli("laptop", {"pub", "chat/x", "hi", "--connect-timeout", "2"}, "",
                     {{"CURVEBUS_KEY", env.broker.secret_file("mallory")}});
    CHECK(r.status == 2);
    CHECK(lines(r.err) == 1);
  }
  SECTION("no broker: 2") {
    env.broker.stop();
    auto r = env.cli("laptop", {"pub", "chat/x", "hi", "--connect-timeout", "1"});
    CHECK(r.status == 2);
    CHECK(r.err.find(env.broker.endpoint()) != std::string::npos);
  }
  SECTION("nothing within the timeout: 3") {
    auto r = env.cli("laptop", {"sub", "chat/quiet", "--timeout", "1"});
    CHECK(r.status == 3);
    CHECK(lines(r.err) == 1);
  }
  SECTION("pull of a topic never published: 4") {
    auto r = env.cli("laptop", {"pull", "chat/never"});
    CHECK(r.status == 4);
  }
  SECTION("admin without the admin right: 5") {
    auto r = env.cli("laptop", {"admin", "status"});
    CHECK(r.status == 5);
    CHECK(lines(r.err) == 1);
  }
  SECTION("usage: 1") {
    auto r = env.cli("laptop", {"pub"});
    CHECK(r.status == 1);
    r = env.cli("laptop", {"admin", "launch"});
    CHECK(r.status == 1);
  }
  SECTION("secret readable by others: 1") {
    const std::string key = env.broker.secret_file("laptop");
    ::chmod(key.c_str(), 0644);
    auto r = env.cli("laptop", {"pub", "chat/x", "hi"});
    CHECK(r.status == 1);
    CHECK(r.err.find("chmod 600") != std::string::npos);
  }
}

TEST_CASE("cli: pull, retained values and the topic directory", "[cli]") {
  CliEnv env;
  REQUIRE(env.started);
  REQUIRE(env.cli("laptop", {"pub", "chat/motd", "first", "--retain"}).status == 0);
  REQUIRE(env.cli("laptop", {"pub", "chat/motd", "second", "--retain"}).status == 0);
  auto r = env.cli("laptop", {"pull", "chat/motd"});
  CHECK(r.status == 0);
  CHECK(r.out == "chat/motd second\n");
  r = env.cli("laptop", {"pull", "chat/motd", "--since", "0", "--json"});
  CHECK(r.out.find("\"retained\":true") != std::string::npos);
  r = env.cli("laptop", {"sub", "chat/#", "--retained", "--count", "1", "--timeout", "5"});
  CHECK(r.status == 0);
  CHECK(r.out == "chat/motd second\n");
  r = env.cli("laptop", {"topics"});
  CHECK(r.status == 0);
  CHECK(r.out.find("chat/motd") != std::string::npos);
  CHECK(r.out.find("laptop") != std::string::npos);
}

TEST_CASE("cli: admin tables and JSON for an admin", "[cli]") {
  CliEnv env;
  REQUIRE(env.started);
  Process sub = env.sub("laptop", {"sub", "chat/#", "--timeout", "20"});
  wait_subscribed(env, "chat/#");
  auto r = env.cli("ops", {"admin", "clients"});
  REQUIRE(r.status == 0);
  CHECK(r.out.rfind("NAME", 0) == 0);
  CHECK(r.out.find("laptop") != std::string::npos);
  CHECK(r.out.find("chat/#") != std::string::npos);
  r = env.cli("ops", {"admin", "status"});
  CHECK(r.status == 0);
  CHECK(r.out.find("uptime") != std::string::npos);
  r = env.cli("ops", {"admin", "status", "--json"});
  CHECK(r.out.find("\"counters\"") != std::string::npos);
  r = env.cli("ops", {"admin", "kick", "laptop"});
  CHECK(r.status == 0);
  r = env.cli("ops", {"admin", "kick", "nobody"});
  CHECK(r.status == 4);
}

TEST_CASE("cli: an operator adds a key with reload, narrows it on a live session, then revokes it",
          "[cli][admin]") {
  CliEnv env;
  REQUIRE(env.started);
  // A new user makes a key; the operator puts its public half in the allow-list.
  auto r = env.cli("ops", {"keygen", "newbie", "--dir", env.broker.keys_dir()});
  REQUIRE(r.status == 0);
  std::map<std::string, std::string> as_newbie = {
      {"CURVEBUS_KEY", env.broker.secret_file("newbie")}};
  r = env.cli("laptop", {"pub", "chat/hello", "before", "--connect-timeout", "1"}, "", as_newbie);
  CHECK(r.status == 2);  // not allowed yet: no answer
  const std::string acl_before = read_file(env.broker.acl_path());
  auto write_acl = [&](const std::string& publish) {
    std::ofstream out(env.broker.acl_path());
    out << acl_before << "\n[[client]]\nname = \"newbie\"\npublic_key_file = \""
        << env.broker.public_file("newbie") << "\"\npublish = [" << publish
        << "]\nsubscribe = [\"chat/#\"]\n";
  };
  write_acl("\"chat/#\"");
  r = env.cli("ops", {"admin", "reload"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  r = env.cli("laptop", {"pub", "chat/hello", "after reload"}, "", as_newbie);
  CHECK(r.status == 0);

  // A live session (a script publishing stdin lines) loses the right on reload.
  auto env_map = env.broker.client_env("laptop");
  env_map["CURVEBUS_KEY"] = env.broker.secret_file("newbie");
  Process script({CURVEBUS_CLI_BIN, "pub", "chat/live"}, env.dir / "script", env_map, true);
  REQUIRE(script.write_stdin("one\n"));
  REQUIRE(wait_until(
      [&] {
        auto p = env.cli("ops", {"pull", "chat/live"});
        return p.out.find("one") != std::string::npos;
      },
      5000ms, 100ms));
  write_acl("");
  REQUIRE(env.cli("ops", {"admin", "reload"}).status == 0);
  REQUIRE(script.write_stdin("two\n"));
  script.close_stdin();
  CHECK(script.wait(10000ms) == 5);
  CHECK(script.err().find("line 2") != std::string::npos);
  CHECK(env.cli("ops", {"pull", "chat/live"}).out == "chat/live one\n");

  // Revoked: cut at once, refused afterwards.
  write_acl("\"chat/#\"");
  REQUIRE(env.cli("ops", {"admin", "reload"}).status == 0);
  Process live_sub({CURVEBUS_CLI_BIN, "sub", "chat/#", "--timeout", "30"}, env.dir / "newbie-sub",
                   env_map);
  REQUIRE(wait_until(
      [&] {
        auto c = env.cli("ops", {"admin", "clients"});
        return c.out.find("newbie") != std::string::npos;
      },
      5000ms, 100ms));
  REQUIRE(env.cli("ops", {"pub", "chat/before-revoke", "x"}).status == 0);
  REQUIRE(wait_until([&] { return live_sub.out().find("chat/before-revoke") != std::string::npos; },
                     5000ms));
  r = env.cli("ops", {"admin", "revoke", "newbie"});
  CHECK(r.status == 0);
  REQUIRE(env.cli("ops", {"pub", "chat/after-revoke", "x"}).status == 0);
  std::this_thread::sleep_for(500ms);
  CHECK(live_sub.out().find("chat/after-revoke") == std::string::npos);
  r = env.cli("laptop", {"pub", "chat/hello", "after revoke", "--connect-timeout", "1"}, "",
              as_newbie);
  CHECK(r.status == 2);
  r = env.cli("ops", {"admin", "status"});
  CHECK(r.out.find("keys refused") != std::string::npos);
}
