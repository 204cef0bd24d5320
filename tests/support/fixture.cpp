#include "fixture.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace curvebus::test {

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (std::getenv("CURVEBUS_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

BrokerHarness::BrokerHarness(std::string broker_bin, std::string dir)
    : broker_bin_(std::move(broker_bin)), dir_(std::move(dir)) {
  default_args = {"--heartbeat-ms", "200", "--log-level", "debug"};
  server_keys_ = generate_keypair();
  Status s = write_certificate(keys_dir(), "broker", server_keys_, true);
  if (!s) throw std::runtime_error(s.message());
}

BrokerHarness::~BrokerHarness() {
  stop();
}

KeyPair BrokerHarness::add_client(const ClientSpec& spec) {
  KeyPair kp = generate_keypair();
  Status s = write_certificate(keys_dir(), spec.name, kp, true);
  if (!s) throw std::runtime_error(s.message());
  clients_.push_back(spec);
  keys_[spec.name] = kp;
  return kp;
}

KeyPair BrokerHarness::stranger(const std::string& name) {
  KeyPair kp = generate_keypair();
  Status s = write_certificate(keys_dir(), name, kp, true);
  if (!s) throw std::runtime_error(s.message());
  keys_[name] = kp;
  return kp;
}

namespace {
std::string toml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += "\"" + items[i] + "\"";
  }
  return out + "]";
}
}  // namespace

void BrokerHarness::write_acl() {
  std::ofstream out(acl_path());
  for (const auto& c : clients_) {
    out << "[[client]]\n"
        << "name = \"" << c.name << "\"\n"
        << "public_key = \"" << keys_.at(c.name).public_key << "\"\n"
        << "role = \"" << c.role << "\"\n"
        << "admin = " << (c.admin ? "true" : "false") << "\n"
        << "publish = " << toml_list(c.publish) << "\n"
        << "subscribe = " << toml_list(c.subscribe) << "\n\n";
  }
}

bool BrokerHarness::start(const std::vector<std::string>& extra_args) {
  write_acl();
  const std::string endpoint_file = dir_ + "/endpoint";
  ::unlink(endpoint_file.c_str());
  std::vector<std::string> argv = {broker_bin_,
                                   "--keys",
                                   keys_dir(),
                                   "--acl",
                                   acl_path(),
                                   "--bind",
                                   endpoint_.empty() ? "tcp://127.0.0.1:*" : endpoint_,
                                   "--endpoint-file",
                                   endpoint_file,
                                   "--retained-file",
                                   dir_ + "/retained.pb"};
  argv.insert(argv.end(), default_args.begin(), default_args.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  ++runs_;
  process_ = std::make_unique<Process>(argv, dir_ + "/broker." + std::to_string(runs_));
  bool ok = wait_until(
      [&] {
        std::string e = read_file(endpoint_file);
        return !e.empty() && e.back() == '\n';
      },
      std::chrono::milliseconds(10000));
  if (!ok) return false;
  std::string e = read_file(endpoint_file);
  endpoint_ = e.substr(0, e.find('\n'));
  return true;
}

bool BrokerHarness::restart(const std::vector<std::string>& extra_args) {
  if (process_) process_->stop();
  // The previous run's port may linger briefly; retry the bind for a while.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (start(extra_args)) return true;
    if (process_) process_->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

void BrokerHarness::kill(int sig) {
  if (process_) process_->signal(sig);
  if (process_) process_->wait(std::chrono::milliseconds(5000));
}

int BrokerHarness::stop() {
  return process_ ? process_->stop() : 0;
}

std::map<std::string, std::string> BrokerHarness::client_env(const std::string& name) const {
  return {{"CURVEBUS_ENDPOINT", endpoint_},
          {"CURVEBUS_SERVER_KEY", server_keys_.public_key},
          {"CURVEBUS_KEY", secret_file(name)},
          {"CURVEBUS_HOME", dir_ + "/home-" + name}};
}

}  // namespace curvebus::test
