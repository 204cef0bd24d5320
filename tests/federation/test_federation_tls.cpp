// Federation over TLS to NATS (docs/federation.md, [federation] tls_ca): a
// nats-server that speaks only TLS, with a certificate from a CA made here;
// brokers given that CA federate through it, a broker given another CA never
// connects and keeps serving locally.  127.0.0.1 only; every key made here.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "curvebus/client.hpp"
#include "curvebus/federation.hpp"
#include "fed_env.hpp"
#include "nats_cluster.hpp"

using namespace curvebus;
using namespace curvebus::test;

namespace {

bool openssl(const TempDir& dir, const std::vector<std::string>& args, const std::string& tag) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const RunResult r = run(argv, dir / tag);
  if (r.status != 0) WARN("openssl " << tag << ": " << r.err);
  return r.status == 0;
}

bool accepting(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE(
    "federation over TLS: brokers given the NATS server's CA federate through a TLS-only "
    "server, and a broker given another CA never connects and serves locally",
    "[federation][tls]") {
  TempDir dir{"fedtls"};
  // A CA, the server's certificate for 127.0.0.1 signed by it, and another CA.
  REQUIRE(openssl(dir,
                  {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir / "ca.key",
                   "-out", dir / "ca.pem", "-days", "2", "-subj", "/CN=curvebus test CA"},
                  "ca"));
  REQUIRE(openssl(dir,
                  {"req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir / "server.key", "-out",
                   dir / "server.csr", "-subj", "/CN=127.0.0.1"},
                  "csr"));
  {
    std::ofstream ext(dir / "ext.cnf");
    ext << "subjectAltName=IP:127.0.0.1\n";
  }
  REQUIRE(openssl(
      dir,
      {"x509", "-req", "-in", dir / "server.csr", "-CA", dir / "ca.pem", "-CAkey", dir / "ca.key",
       "-CAcreateserial", "-out", dir / "server.pem", "-days", "2", "-extfile", dir / "ext.cnf"},
      "sign"));
  REQUIRE(openssl(dir,
                  {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir / "other.key",
                   "-out", dir / "other-ca.pem", "-days", "2", "-subj", "/CN=another CA"},
                  "other"));

  // One nats-server node that speaks only TLS, with JetStream.
  const int port = unused_local_port();
  REQUIRE(port > 0);
  ::mkdir((dir / "js").c_str(), 0700);
  {
    std::ofstream conf(dir / "nats.conf");
    conf << "host: 127.0.0.1\nport: " << port << "\n"
         << "jetstream { store_dir: \"" << dir / "js"
         << "\" }\n"
         << "tls { cert_file: \"" << dir / "server.pem"
         << "\", key_file: \"" << dir / "server.key"
         << "\" }\n";
  }
  Process nats({"nats-server", "-c", dir / "nats.conf"}, dir / "nats");
  REQUIRE(wait_until([&] { return accepting(port); }, 15000ms, 50ms));

  // Keys, and three brokers: lab-a and lab-b with the right CA, lab-x with another.
  const auto fkey = fed::generate_federation_key();
  REQUIRE(fed::write_federation_key(dir / "federation.key", fkey));
  std::map<std::string, fed::SigningKeys> sign;
  for (const std::string site : {"lab-a", "lab-b", "lab-x"}) {
    sign[site] = fed::generate_signing_keys();
    REQUIRE(fed::write_signing_keys(dir.path(), site, sign[site]));
  }
  auto config = [&](const std::string& site, const std::string& ca) {
    const std::string path = dir / (site + ".toml");
    std::ofstream out(path);
    out << "[federation]\nname = \"" << site << "\"\n"
        << "urls = [\"tls://127.0.0.1:" << port << "\"]\n"
        << "tls_ca = \"" << ca << "\"\n"
        << "signing_key = \"" << dir / (site + ".sign_secret") << "\"\n"
        << "keys = [\"" << dir / "federation.key"
        << "\"]\n"
        << "export = [\"robot/#\"]\nimport = [\"robot/#\"]\ncommands = [\"robot/+/cmd/#\"]\n"
        << "reconnect_wait_ms = 200\n"
        << "state_file = \"" << dir / (site + ".state") << "\"\n";
    for (const std::string peer : {"lab-a", "lab-b", "lab-x"}) {
      if (peer == site) continue;
      out << "[[federation.peer]]\nname = \"" << peer << "\"\nsign_public_key = \""
          << fed::hex_encode(sign[peer].public_key.data(), sign[peer].public_key.size())
          << "\"\npublish = [\"robot/#\"]\n";
    }
    return path;
  };
  std::map<std::string, std::unique_ptr<BrokerHarness>> brokers;
  for (const auto& [site, ca] : std::map<std::string, std::string>{
           {"lab-a", dir / "ca.pem"}, {"lab-b", dir / "ca.pem"}, {"lab-x", dir / "other-ca.pem"}}) {
    ::mkdir((dir / site).c_str(), 0700);
    auto b = std::make_unique<BrokerHarness>(CURVEBUS_BROKER_BIN, dir / site);
    b->add_client({"dev", {"#"}, {"#", "$SYS/#"}, true});
    INFO(site);
    REQUIRE(b->start({"--config", config(site, ca)}));
    brokers[site] = std::move(b);
  }

  // lab-a -> lab-b through the TLS-only server.
  Client sub(options_for(*brokers["lab-b"], "dev"));
  REQUIRE(sub.connect(5000ms));
  Inbox got;
  REQUIRE(sub.subscribe({"robot/+/telemetry"}, got.handler()));
  Client pub(options_for(*brokers["lab-a"], "dev"));
  REQUIRE(pub.connect(5000ms));
  REQUIRE(publish_until_seen(pub, "robot/bravo/telemetry", "over tls", got));
  CHECK(got.snapshot().front().publisher == "lab-a/dev");
  auto st = federation_status(*brokers["lab-a"]);
  REQUIRE(st);
  CHECK(st->connected());

  // lab-x does not trust the server's certificate: never connected, and its
  // own clients are served all the same.
  std::this_thread::sleep_for(1000ms);
  auto x = federation_status(*brokers["lab-x"]);
  REQUIRE(x);
  CHECK_FALSE(x->connected());
  Client local(options_for(*brokers["lab-x"], "dev"));
  REQUIRE(local.connect(5000ms));
  PublishOptions ack;
  ack.wait_ack = true;
  CHECK(local.publish("robot/xray/telemetry", "local only", ack));
  CHECK(got.count_payload("local only") == 0);
  nats.stop();
}
