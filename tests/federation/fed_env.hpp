// The federation test bench (docs/federation.md): a real 3-node NATS cluster
// with JetStream (tests/support/nats_cluster.hpp) and three real curvebus
// brokers, lab-a, lab-b and lab-c, each federated over it; lab-c serves the
// robot (alex-sim behind the real agent, tests/agent/robot_env.hpp).
// Everything on 127.0.0.1, every key made at test time.
//
// Contract:
//  * FedEnv's constructor starts everything and sets `ok`; on failure `error`
//    says what did not start.  The destructor stops what it started (brokers,
//    agent, simulator, NATS nodes) and removes its temporary directory.
//  * lab-a and lab-b allow "dev" (publishes and subscribes everything, admin)
//    and "op1" (may command alex, sees robot/alex/# and $SYS/#); lab-c has the
//    robot's allow-list (tests/agent/robot_env.cpp) plus "fedadmin" (sees
//    everything, admin).
//  * Keys: with KeySource::kInProcess the federation and signing keys are
//    made by the library (fed::generate_*), peers' public keys inlined in the
//    configuration; with KeySource::kCli they are made by `curvebus keygen
//    --sign` and `curvebus keygen --federation-key` (CURVEBUS_CLI_BIN) and
//    peers are configured by `sign_public_key_file`.  Either way `fkey` and
//    `sign` hold the keys in use, for tests that forge envelopes.
//  * Not thread-safe: one test thread drives a FedEnv.
//
// Needs the compile definitions CURVEBUS_BROKER_BIN, CURVEBUS_AGENT_BIN,
// ALEX_SIM_BIN and CURVEBUS_CLI_BIN.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "curvebus/client.hpp"
#include "curvebus/federation.hpp"
#include "inbox.hpp"
#include "nats_cluster.hpp"
#include "robot_env.hpp"

namespace curvebus::test {

inline const std::vector<std::string> kSites = {"lab-a", "lab-b", "lab-c"};

// Client options for `name` on `broker`: its keys, short heartbeat and
// reconnect intervals.
ClientOptions options_for(const BrokerHarness& broker, const std::string& name);

// ADMIN FEDERATION of `broker`, asked as `admin` (FedEnv's lab-c: "op1" has
// no admin right, so lab-c gets a "fedadmin" of its own in the robot's
// allow-list); nullopt when the broker does not answer.
std::optional<v1::FederationStatus> federation_status(BrokerHarness& broker,
                                                      const std::string& admin = "dev");

// Publishes `payload` on `topic` every 200 ms until `got` holds it, at most
// 20 s: the import side subscribes once its backbone connection is up, so a
// first message that arrives proves the path.
bool publish_until_seen(Client& pub, const std::string& topic, const std::string& payload,
                        Inbox& got);

// Three sites over one NATS cluster; lab-c has the robot.
class FedEnv {
 public:
  enum class KeySource { kInProcess, kCli };

  explicit FedEnv(int nats_nodes = 3, KeySource keys = KeySource::kInProcess);

  BrokerHarness& a() { return *brokers["lab-a"]; }
  BrokerHarness& b() { return *brokers["lab-b"]; }
  BrokerHarness& c() { return robot->broker; }

  // Writes DIR/<site>.toml (the [federation] section for `site`) and returns
  // its path.
  std::string write_config(const std::string& site);

  NatsCluster nats;
  TempDir dir{"fed"};
  fed::FederationKey fkey;
  std::map<std::string, fed::SigningKeys> sign;
  std::map<std::string, std::unique_ptr<BrokerHarness>> brokers;
  std::unique_ptr<RobotEnv> robot;
  bool ok = false;
  std::string error;

 private:
  bool make_keys_in_process();
  bool make_keys_with_cli();

  KeySource key_source_;
};

}  // namespace curvebus::test
