// The broker as a program: command line, config file, embedded default,
// exit codes and clean shutdown.
#include <sys/stat.h>

#include <csignal>
#include <fstream>

#include <catch2/catch.hpp>

#include "broker_env.hpp"

using namespace curvebus;
using namespace curvebus::test;
using namespace std::chrono_literals;

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("embedded default generates keys and an ACL and serves the dev identity",
          "[broker][process]") {
  TempDir tmp("curvebus-broker-home");
  const std::string home = tmp / "home";
  Process broker({CURVEBUS_BROKER_BIN, "--bind", "tcp://127.0.0.1:*"}, tmp / "broker",
                 {{"CURVEBUS_HOME", home}});
  REQUIRE(wait_until([&] { return read_file(home + "/endpoint").find('\n') != std::string::npos; },
                     10s));
  CHECK(exists(home + "/keys/broker_secret"));
  CHECK(exists(home + "/keys/dev_secret"));
  CHECK(exists(home + "/keys/alex_secret"));
  CHECK(exists(home + "/acl.toml"));
  struct stat st {};
  REQUIRE(::stat((home + "/keys/dev_secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 077) == 0);
  const std::string endpoint =
      read_file(home + "/endpoint").substr(0, read_file(home + "/endpoint").find('\n'));
  auto server = read_certificate(home + "/keys/broker", false);
  auto dev = read_certificate(home + "/keys/dev_secret", true);
  REQUIRE(server);
  REQUIRE(dev);
  zmq::context_t ctx;
  TestPeer peer(ctx, endpoint, server->keys.public_key, dev->keys);
  auto r = peer.register_peer(v1::ROLE_CLIENT, 0, 10s);
  REQUIRE(r);
  REQUIRE(r->has_registered());
  CHECK(r->registered().name() == "dev");
  auto status = peer.admin(v1::ADMIN_STATUS);
  REQUIRE(status);
  CHECK(status->has_admin_reply());
  CHECK(broker.err().find("embedded default") != std::string::npos);
  // SIGTERM: clean exit 0.
  broker.signal(SIGTERM);
  CHECK(broker.wait(5s) == 0);
}

TEST_CASE("a second broker on a busy endpoint exits 1 with one clear line", "[broker][process]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto r = run({CURVEBUS_BROKER_BIN, "--keys", env.broker.keys_dir(), "--acl",
                env.broker.acl_path(), "--bind", env.broker.endpoint(), "--endpoint-file",
                env.tmp / "endpoint2", "--log-level", "error"},
               env.tmp / "second");
  CHECK(r.status == 1);
  CHECK(r.err.find("curvebus-broker: cannot bind " + env.broker.endpoint()) == 0);
  CHECK(r.err.find("Address already in use") != std::string::npos);
  CHECK(count_lines(r.err) == 1);
}

TEST_CASE("a config file with an unknown key exits 1 naming file and line", "[broker][process]") {
  TempDir tmp("curvebus-broker-config");
  const std::string file = tmp / "broker.toml";
  std::ofstream(file) << "[broker]\nbind = \"tcp://127.0.0.1:*\"\n\nheartbeat = 100\n";
  auto r = run({CURVEBUS_BROKER_BIN, "--config", file}, tmp / "run");
  CHECK(r.status == 1);
  CHECK(r.err.find(file + ":4:") != std::string::npos);
  CHECK(count_lines(r.err) == 1);
}

TEST_CASE("config file settings apply and flags override them", "[broker][process]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  env.broker.stop();
  const std::string file = env.tmp / "broker.toml";
  std::ofstream(file)
      << "[broker]\nkeys = \"keys\"\nacl = \"acl.toml\"\nbind = \"tcp://127.0.0.1:*\"\n"
         "endpoint_file = \"endpoint3\"\nheartbeat_ms = 700\nmax_subscriptions = 7\n";
  Process broker({CURVEBUS_BROKER_BIN, "--config", file, "--max-subscriptions", "9"},
                 env.tmp / "configured");
  REQUIRE(wait_until(
      [&] { return read_file(env.tmp / "endpoint3").find('\n') != std::string::npos; }, 10s));
  const std::string e = read_file(env.tmp / "endpoint3");
  TestPeer peer(env.ctx, e.substr(0, e.find('\n')), env.broker.server_public_key(),
                env.broker.keys_of("sub"));
  auto r = peer.register_peer(v1::ROLE_CLIENT, 0, 10s);
  REQUIRE(r);
  REQUIRE(r->has_registered());
  CHECK(r->registered().heartbeat_ms() == 700);
  CHECK(r->registered().limits().max_subscriptions() == 9);
  broker.signal(SIGINT);
  CHECK(broker.wait(5s) == 0);
}

TEST_CASE("a multi-part message is MALFORMED, and the session goes on", "[broker][process]") {
  BrokerEnv env(standard_clients());
  REQUIRE(env.started);
  auto peer = env.registered("pub");
  peer->socket().send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
  peer->socket().send(zmq::str_buffer("b"), zmq::send_flags::none);
  auto op = peer->wait_for(v1::Op::kError);
  REQUIRE(op);
  CHECK(op->error().code() == v1::ERROR_MALFORMED);
  auto ok = peer->publish("sensors/x", "1");
  REQUIRE(ok);
  CHECK(ok->has_puback());
}
