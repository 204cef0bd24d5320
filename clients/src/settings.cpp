// Where a client finds the broker and its own key: flags, then environment,
// then the curvebus home folder the broker's embedded default writes.
#include "curvebus/certificate.hpp"
#include "curvebus/client.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/locate.hpp"

namespace curvebus {

Result<ClientOptions> resolve_client_options(const ClientSettings& settings) {
  ClientOptions o;
  auto where = locate_broker(settings.endpoint, settings.server_key, settings.home);
  if (!where) return where.status();
  o.endpoint = where->endpoint;
  const std::string& home = where->home;
  const std::string& server = where->server_key;
  auto server_key = resolve_public_key(server);
  if (!server_key) return Status::Error("broker key: " + server_key.status().message(), "USAGE");
  o.server_public_key = *server_key;

  std::string key = flag_or_env(settings.key, "CURVEBUS_KEY");
  if (key.empty()) {
    key = home + "/keys/" + settings.default_key_name + "_secret";
    if (!path_exists(key))
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
