#include "curvebus/locate.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "curvebus/codec.hpp"
#include "trim.hpp"

namespace curvebus {

using keys_detail::trim;

std::string flag_or_env(const std::string& flag, const char* env_name) {
  if (!flag.empty()) return flag;
  const char* v = std::getenv(env_name);
  return v && *v ? std::string(v) : std::string();
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<BrokerLocation> locate_broker(const std::string& endpoint_flag,
                                     const std::string& server_key_flag,
                                     const std::string& home_flag) {
  BrokerLocation b;
  b.home = flag_or_env(home_flag, "CURVEBUS_HOME");
  if (b.home.empty()) b.home = "./.curvebus";

  b.endpoint = flag_or_env(endpoint_flag, "CURVEBUS_ENDPOINT");
  if (b.endpoint.empty()) {
    std::ifstream in(b.home + "/endpoint");
    std::string line;
    if (in && std::getline(in, line)) b.endpoint = trim(line);
    if (b.endpoint.empty()) b.endpoint = kDefaultEndpoint;
  }

  b.server_key = flag_or_env(server_key_flag, "CURVEBUS_SERVER_KEY");
  if (b.server_key.empty()) {
    b.server_key = b.home + "/keys/broker";
    if (!path_exists(b.server_key))
      return Status::Error(
          "no broker public key: give --server-key, set CURVEBUS_SERVER_KEY, or start the broker "
          "once to create " +
              b.server_key,
          "USAGE");
  }
  return b;
}

}  // namespace curvebus
