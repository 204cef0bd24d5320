// Where a client finds the broker and its own key: flags, then environment,
// then the curvebus home folder the broker's embedded default writes.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "curvebus/certificate.hpp"
#include "curvebus/client.hpp"
#include "curvebus/codec.hpp"

namespace curvebus {

namespace {
std::string pick(const std::string& flag, const char* env_name) {
  if (!flag.empty()) return flag;
  const char* v = std::getenv(env_name);
  return v && *v ? std::string(v) : std::string();
}
bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}
std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}
}  // namespace

Result<ClientOptions> resolve_client_options(const ClientSettings& settings) {
  ClientOptions o;
  std::string home = pick(settings.home, "CURVEBUS_HOME");
  if (home.empty()) home = "./.curvebus";

  o.endpoint = pick(settings.endpoint, "CURVEBUS_ENDPOINT");
  if (o.endpoint.empty()) {
    std::ifstream in(home + "/endpoint");
    std::string line;
    if (in && std::getline(in, line)) o.endpoint = trim(line);
    if (o.endpoint.empty()) o.endpoint = kDefaultEndpoint;
  }

  std::string server = pick(settings.server_key, "CURVEBUS_SERVER_KEY");
  if (server.empty()) {
    server = home + "/keys/broker";
    if (!exists(server))
      return Status::Error(
          "no broker public key: give --server-key, set CURVEBUS_SERVER_KEY, or start the broker "
          "once to create " +
              server,
          "USAGE");
  }
  auto server_key = resolve_public_key(server);
  if (!server_key) return Status::Error("broker key: " + server_key.status().message(), "USAGE");
  o.server_public_key = *server_key;

  std::string key = pick(settings.key, "CURVEBUS_KEY");
  if (key.empty()) {
    key = home + "/keys/" + settings.default_key_name + "_secret";
    if (!exists(key))
      return Status::Error("no key of your own: give --key, set CURVEBUS_KEY, or create " + key +
                               " (curvebus keygen NAME)",
                           "USAGE");
  }
  auto cert = read_certificate(key, true);
  if (!cert) return Status::Error(cert.status().message(), "USAGE");
  o.public_key = cert->keys.public_key;
  o.secret_key = cert->keys.secret_key;
  return o;
}

}  // namespace curvebus
