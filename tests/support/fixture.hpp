// Fixtures for integration tests: a private temporary directory, and a real
// curvebus-broker process on 127.0.0.1 (ephemeral port) with keys and an
// allow-list generated for the test.  Nothing secret is ever committed: every
// key is made here, at test time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "curvebus/certificate.hpp"
#include "process.hpp"

namespace curvebus::test {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "curvebus");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ClientSpec {
  std::string name;
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
  bool admin = false;
  std::string role = "client";
};

class BrokerHarness {
 public:
  // `broker_bin` is the curvebus-broker executable; files go under `dir`.
  BrokerHarness(std::string broker_bin, std::string dir);
  ~BrokerHarness();

  // Generates a key pair for `spec.name` in keys/ and adds it to the allow-list.
  KeyPair add_client(const ClientSpec& spec);
  // A key pair that is NOT in the allow-list.
  KeyPair stranger(const std::string& name);
  // (Re)writes acl.toml from the clients added so far.
  void write_acl();

  // Starts the broker (writes the allow-list first) and waits until it has
  // bound and written its endpoint.  `bind` defaults to an ephemeral port on
  // 127.0.0.1; a restart reuses the endpoint of the previous run.
  bool start(const std::vector<std::string>& extra_args = {});
  bool restart(const std::vector<std::string>& extra_args = {});
  void kill(int sig);  // signals the broker process
  int stop();

  Process& process() { return *process_; }
  const std::string& endpoint() const { return endpoint_; }
  const std::string& server_public_key() const { return server_keys_.public_key; }
  const std::string& dir() const { return dir_; }
  std::string keys_dir() const { return dir_ + "/keys"; }
  std::string acl_path() const { return dir_ + "/acl.toml"; }
  std::string secret_file(const std::string& name) const {
    return keys_dir() + "/" + name + "_secret";
  }
  std::string public_file(const std::string& name) const { return keys_dir() + "/" + name; }
  const KeyPair& keys_of(const std::string& name) const { return keys_.at(name); }
  // Environment for the `curvebus` CLI acting as `name`.
  std::map<std::string, std::string> client_env(const std::string& name) const;
  // Common broker flags used by start(): short heartbeat so liveness tests are quick.
  std::vector<std::string> default_args;

 private:
  std::string broker_bin_;
  std::string dir_;
  std::string endpoint_;
  KeyPair server_keys_;
  std::vector<ClientSpec> clients_;
  std::map<std::string, KeyPair> keys_;
  std::unique_ptr<Process> process_;
  int runs_ = 0;
};

// True when `s`'s message contains `text`.
inline bool mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

}  // namespace curvebus::test
