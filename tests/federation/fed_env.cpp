#include "fed_env.hpp"

#include <sys/stat.h>

#include <fstream>

namespace curvebus::test {

ClientOptions options_for(const BrokerHarness& broker, const std::string& name) {
  return client_options(broker, name, 200ms);
}

FedEnv::FedEnv(int nats_nodes, KeySource keys) : key_source_(keys) {
  if (!nats.start(nats_nodes)) {
    error = "NATS cluster: " + nats.last_error();
    return;
  }
  if (!(key_source_ == KeySource::kCli ? make_keys_with_cli() : make_keys_in_process())) return;
  for (const auto& site : {"lab-a", "lab-b"}) {
    ::mkdir((dir / site).c_str(), 0700);
    auto b = std::make_unique<BrokerHarness>(CURVEBUS_BROKER_BIN, dir / site);
    b->add_client({"dev", {"#"}, {"#", "$SYS/#"}, true});
    b->add_client(
        {"op1", {"robot/alex/cmd", "robot/alex/cmd/clear-estop"}, {"robot/alex/#", "$SYS/#"}});
    if (!b->start({"--config", write_config(site)})) {
      error = std::string("broker ") + site + " did not start";
      return;
    }
    brokers[site] = std::move(b);
  }
  RobotEnvOptions ro;
  ro.broker_args = {"--config", write_config("lab-c")};
  ro.extra_clients = {{"fedadmin", {}, {"#", "$SYS/#"}, true}};
  robot = std::make_unique<RobotEnv>(ro);
  if (!robot->ok()) {
    error = "robot site lab-c did not start";
    return;
  }
  ok = true;
}

bool FedEnv::make_keys_in_process() {
  fkey = fed::generate_federation_key();
  if (!fed::write_federation_key(dir / "federation.key", fkey)) {
    error = "cannot write the federation key";
    return false;
  }
  for (const auto& site : kSites) {
    sign[site] = fed::generate_signing_keys();
    if (!fed::write_signing_keys(dir.path(), site, sign[site])) {
      error = "cannot write the signing keys of " + site;
      return false;
    }
  }
  return true;
}

// The keys as an operator makes them; read back so that tests can forge
// envelopes with them.
bool FedEnv::make_keys_with_cli() {
  auto keygen = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{CURVEBUS_CLI_BIN, "keygen"};
    argv.insert(argv.end(), args.begin(), args.end());
    static int n = 0;
    const RunResult r = run(argv, dir / ("keygen-" + std::to_string(++n)));
    if (r.status != 0)
      error = "curvebus keygen failed (" + std::to_string(r.status) + "): " + r.err;
    return r.status == 0;
  };
  if (!keygen({"--federation-key", dir / "federation.key"})) return false;
  auto key = fed::read_federation_key(dir / "federation.key");
  if (!key) {
    error = key.status().message();
    return false;
  }
  fkey = *key;
  for (const auto& site : kSites) {
    if (!keygen({"--sign", site, "--dir", dir.path()})) return false;
    auto pair = fed::read_signing_keys(dir / (site + ".sign_secret"));
    if (!pair) {
      error = pair.status().message();
      return false;
    }
    sign[site] = *pair;
  }
  return true;
}

std::string FedEnv::write_config(const std::string& site) {
  const std::string path = dir / (site + ".toml");
  std::ofstream out(path);
  out << "[federation]\n"
      << "name = \"" << site << "\"\n"
      << "urls = [";
  for (int i = 0; i < nats.size(); ++i) out << (i ? ", " : "") << '"' << nats.url(i) << '"';
  out << "]\n"
      << "signing_key = \"" << dir / (site + ".sign_secret") << "\"\n"
      << "keys = [\"" << dir / "federation.key"
      << "\"]\n"
      << "export = [\"robot/#\", \"$SYS/presence/#\"]\n"
      << "import = [\"robot/#\", \"$SYS/#\"]\n"
      << "commands = [\"robot/+/cmd/#\"]\n"
      << "replicas = " << (nats.size() >= 3 ? 3 : 1) << "\n"
      << "command_timeout_ms = 4000\n"
      << "reconnect_wait_ms = 200\n"
      << "state_file = \"" << dir / (site + ".state") << "\"\n";
  for (const auto& peer : kSites) {
    if (peer == site) continue;
    out << "\n[[federation.peer]]\n"
        << "name = \"" << peer << "\"\n";
    if (key_source_ == KeySource::kCli)
      out << "sign_public_key_file = \"" << dir / (peer + ".sign") << "\"\n";
    else
      out << "sign_public_key = \""
          << fed::hex_encode(sign[peer].public_key.data(), sign[peer].public_key.size()) << "\"\n";
    // Narrower than the import patterns, so a peer's envelope on
    // another robot/ topic arrives here and is refused as denied.
    out << "publish = [\"robot/+/cmd/#\", \"robot/+/telemetry\", \"robot/+/status\", "
           "\"robot/+/ack\", \"$SYS/#\"]\n";
  }
  return path;
}

std::optional<v1::FederationStatus> federation_status(BrokerHarness& broker,
                                                      const std::string& admin) {
  Client cl(options_for(broker, admin));
  if (!cl.connect(5000ms)) return std::nullopt;
  auto r = cl.admin(v1::ADMIN_FEDERATION);
  if (!r) return std::nullopt;
  return r->federation();
}

bool publish_until_seen(Client& pub, const std::string& topic, const std::string& payload,
                        Inbox& got) {
  return wait_until(
      [&] {
        pub.publish(topic, payload);
        return got.count_payload(payload) > 0;
      },
      20000ms, 200ms);
}

}  // namespace curvebus::test
