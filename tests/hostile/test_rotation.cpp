// The broker key rotation procedure of docs/operations.md ("Rotate the
// broker's key"), run step by step the way an operator does it: the real
// curvebus-broker with a config file, keys made with `curvebus keygen`, and
// clients that are the `curvebus` tool with the documented variables.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "fixture.hpp"
#include "process.hpp"

using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

struct Operator {
  TempDir dir{"curvebus-rotation"};
  std::unique_ptr<Process> broker;
  int runs = 0;

  RunResult cli(std::vector<std::string> args, const std::string& endpoint,
                const std::string& server_key_file) {
    args.insert(args.begin(), CURVEBUS_CLI_BIN);
    return run(args, dir / ("cli-" + std::to_string(++runs)),
               {{"CURVEBUS_ENDPOINT", endpoint},
                {"CURVEBUS_SERVER_KEY", server_key_file},
                {"CURVEBUS_KEY", dir / "keys/dev_secret"},
                {"CURVEBUS_HOME", dir / "client-home"}},
               20000ms);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  std::string line_of(const std::string& file) {
    std::string s = read_file(dir / file);
    return s.substr(0, s.find('\n'));
  }
  bool start() {
    if (broker) broker->stop();
    std::remove((dir / "endpoint").c_str());
    std::remove((dir / "endpoint.next").c_str());
    broker = std::make_unique<Process>(
        std::vector<std::string>{CURVEBUS_BROKER_BIN, "--config", dir / "broker.toml"},
        dir / ("broker-" + std::to_string(++runs)));
    return wait_until([&] { return !line_of("endpoint").empty(); }, 10000ms);
  }
};

}  // namespace

TEST_CASE("broker key rotation over two endpoints, step by step as docs/operations.md says",
          "[hostile][keys][rotation]") {
  Operator op;
  REQUIRE(op.cli({"keygen", "broker", "--dir", op.dir / "keys"}, "", "").status == 0);
  REQUIRE(op.cli({"keygen", "dev", "--dir", op.dir / "keys"}, "", "").status == 0);
  op.write("acl.toml",
           "[[client]]\nname = \"dev\"\npublic_key_file = \"keys/dev\"\nadmin = true\n"
           "publish = [\"#\"]\nsubscribe = [\"#\", \"$SYS/#\"]\n");
  const std::string base =
      "[broker]\nkeys = \"keys\"\nacl = \"acl.toml\"\nendpoint_file = \"endpoint\"\n"
      "retained_file = \"retained.pb\"\n";
  op.write("broker.toml", base + "bind = \"tcp://127.0.0.1:*\"\n");
  REQUIRE(op.start());
  const std::string old_endpoint = op.line_of("endpoint");
  const std::string old_key = op.dir / "keys/broker";
  // The operator's broker binds a fixed port: keep the one it got.
  op.write("broker.toml", base + "bind = \"" + old_endpoint + "\"\n");
  REQUIRE(op.cli({"pub", "lab/x", "before"}, old_endpoint, old_key).status == 0);

  // 1. A new key pair on the broker.
  REQUIRE(op.cli({"keygen", "broker-next", "--dir", op.dir / "keys"}, "", "").status == 0);
  // 2. Serve it on a second endpoint; restart.
  op.write("broker.toml", base + "bind = \"" + old_endpoint +
                              "\"\nnext_bind = \"tcp://127.0.0.1:*\"\n"
                              "next_key = \"keys/broker-next_secret\"\n");
  REQUIRE(op.start());
  REQUIRE(op.line_of("endpoint") == old_endpoint);
  REQUIRE(wait_until([&] { return !op.line_of("endpoint.next").empty(); }, 5000ms));
  const std::string new_endpoint = op.line_of("endpoint.next");
  const std::string new_key = op.dir / "keys/broker-next";
  CHECK(new_endpoint != old_endpoint);

  // 3. Both keys are served during the change: old clients go on, moved
  //    clients use the new key and endpoint, and the sessions list says who is where.
  Process old_sub({CURVEBUS_CLI_BIN, "sub", "lab/#", "--count", "2", "--timeout", "15"},
                  op.dir / "old-sub",
                  {{"CURVEBUS_ENDPOINT", old_endpoint},
                   {"CURVEBUS_SERVER_KEY", old_key},
                   {"CURVEBUS_KEY", op.dir / "keys/dev_secret"},
                   {"CURVEBUS_HOME", op.dir / "client-home"}});
  REQUIRE(wait_until(
      [&] {
        auto r = op.cli({"admin", "clients", "--json"}, new_endpoint, new_key);
        return r.status == 0 && r.out.find("\"lab/#\"") != std::string::npos;
      },
      10000ms, 100ms));
  auto clients = op.cli({"admin", "clients", "--json"}, new_endpoint, new_key);
  REQUIRE(clients.status == 0);
  CHECK(clients.out.find(old_endpoint) != std::string::npos);  // the old subscriber
  CHECK(clients.out.find(new_endpoint) != std::string::npos);  // this admin, moved over
  CHECK(op.cli({"pub", "lab/x", "via-new"}, new_endpoint, new_key).status == 0);
  CHECK(op.cli({"pub", "lab/x", "via-old"}, old_endpoint, old_key).status == 0);
  CHECK(old_sub.wait(15000ms) == 0);
  CHECK(old_sub.out().find("via-new") != std::string::npos);
  CHECK(old_sub.out().find("via-old") != std::string::npos);
  // A key is bound to its endpoint: the new key does not open the old one.
  CHECK(op.cli({"pub", "lab/x", "mixed"}, old_endpoint, new_key).status != 0);

  // 4. Retire the old key: the new one becomes the broker's key on its endpoint.
  std::filesystem::rename(op.dir / "keys/broker-next_secret", op.dir / "keys/broker_secret");
  std::filesystem::rename(op.dir / "keys/broker-next", op.dir / "keys/broker");
  op.write("broker.toml", base + "bind = \"" + new_endpoint + "\"\n");
  REQUIRE(op.start());
  REQUIRE(op.line_of("endpoint") == new_endpoint);
  const std::string current_key = op.dir / "keys/broker";  // the former broker-next
  auto after = op.cli({"pub", "lab/x", "after", "--timeout", "5"}, new_endpoint, current_key);
  INFO(after.err);
  CHECK(after.status == 0);
  CHECK(op.cli({"pull", "lab/x"}, new_endpoint, current_key).out.find("after") !=
        std::string::npos);
  // Nothing answers on the retired endpoint any more.
  auto retired = op.cli({"pub", "lab/x", "late", "--timeout", "2"}, old_endpoint, current_key);
  CHECK(retired.status == 2);
}
