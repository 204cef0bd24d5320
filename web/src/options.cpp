#include "options.hpp"

#include <CLI/CLI.hpp>

#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"
#include "curvebus/locate.hpp"
#include "data_dirs.hpp"

namespace curvebus::web {

namespace {

// "HOST:PORT" or "[V6]:PORT" -> host, port.  False when it is neither.
bool split_host_port(const std::string& text, std::string& host, std::string& port) {
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return false;  // a bare IPv6 needs brackets
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535)
    return false;
  return true;
}

std::string fail_text(const std::string& message) {
  return "curvebus-web: " + message;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine out;
  Options& o = out.options;
  CLI::App app{
      "curvebus-web: serves the browser page and relays each WebSocket on /bus, byte for byte, "
      "to a new TCP connection to the broker (it holds no key and sees no plaintext)",
      "curvebus-web"};
  app.set_version_flag("--version", std::string("curvebus-web ") + CURVEBUS_VERSION);
  std::string listen = "127.0.0.1:7691", broker, server_key, home, static_dir;
  double handshake_s = 10, idle_s = 60;
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--broker", broker,
                 "Broker endpoint tcp://HOST:PORT (env CURVEBUS_ENDPOINT, else HOME/endpoint, "
                 "else tcp://127.0.0.1:7690)");
  app.add_option("--server-key", server_key,
                 "Broker PUBLIC key for /config.json: Z85 or certificate file (env "
                 "CURVEBUS_SERVER_KEY, else HOME/keys/broker)");
  app.add_option("--home", home, "curvebus home folder (env CURVEBUS_HOME, default ./.curvebus)");
  app.add_option("--static", static_dir,
                 "Folder of the page's files (default: web/static of the source tree when run "
                 "from the build tree, PREFIX/share/curvebus/web when installed)");
  app.add_option("--vendor-dir", o.vendor_dir,
                 "Folder looked at first for /vendor/NAME (see web/src/vendor_files.txt)");
  app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve HTTPS and wss://");
  app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
  app.add_option("--allow-origin", o.allow_origins,
                 "Also accept WebSockets from pages of this origin (repeatable; 'null' for "
                 "pages opened from a file, '*' for any page)");
  app.add_flag("--require-origin", o.require_origin,
               "Refuse WebSocket handshakes that carry no Origin (non-browser programs)");
  app.add_option("--max-connections", o.limits.max_connections,
                 "TCP connections held at once, HTTP and WebSocket")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-per-address", o.limits.max_per_address,
                 "Connections from one IPv4 address or IPv6 /64")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-buffered", o.limits.max_buffered,
                 "Bytes a relay buffers, both directions together; a full side stops reading")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 30));
  app.add_option("--max-message", o.limits.max_message,
                 "Largest WebSocket message a browser may send (bytes; more: close 1009)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--handshake-timeout", handshake_s,
                 "Seconds for TLS, the request head, the WebSocket upgrade and the broker connect")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--idle-timeout", idle_s,
                 "Seconds a relay may move no byte either way before it is closed (1008)")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 86400.0));
  app.add_option("--log-level", o.log_level, "trace | debug | info | warn | error | off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (!reversed.empty()) reversed.pop_back();  // argv[0]
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.exit_code = 0;
    out.output = app.help();
    return out;
  } catch (const CLI::CallForVersion& v) {
    out.exit_code = 0;
    out.output = v.what();
    return out;
  } catch (const CLI::ParseError& e) {
    out.exit_code = 1;
    out.output = fail_text(e.what());
    return out;
  }
  auto fail = [&](const std::string& message) {
    out.exit_code = 1;
    out.output = fail_text(message);
    return out;
  };

  o.limits.handshake_timeout = std::chrono::milliseconds(static_cast<long>(handshake_s * 1000));
  o.limits.idle_timeout = std::chrono::milliseconds(static_cast<long>(idle_s * 1000));

  std::string port;
  if (!split_host_port(listen, o.listen_host, port))
    return fail("--listen must be HOST:PORT or [IPV6]:PORT (got '" + listen + "')");
  o.listen_port = static_cast<std::uint16_t>(std::stoul(port));

  if (o.tls_cert.empty() != o.tls_key.empty()) return fail("--tls-cert and --tls-key go together");

  // The broker, found as the curvebus tool finds it.
  auto where = locate_broker(broker, server_key, home);
  if (!where) return fail(where.status().message());
  o.broker_endpoint = where->endpoint;
  const std::string tcp = "tcp://";
  if (o.broker_endpoint.compare(0, tcp.size(), tcp) != 0 ||
      !split_host_port(o.broker_endpoint.substr(tcp.size()), o.broker_host, o.broker_port))
    return fail("the broker endpoint must be tcp://HOST:PORT (got '" + o.broker_endpoint + "')");
  // A broker bound to every interface is reached on this machine's loopback.
  if (o.broker_host == "*" || o.broker_host == "0.0.0.0") o.broker_host = "127.0.0.1";
  if (o.broker_host == "::") o.broker_host = "::1";

  const std::string& key_source = where->server_key;
  const std::string secret_suffix = "_secret";
  if (key_source.size() >= secret_suffix.size() &&
      key_source.compare(key_source.size() - secret_suffix.size(), secret_suffix.size(),
                         secret_suffix) == 0)
    return fail("--server-key must be the broker's PUBLIC certificate, not " + key_source +
                " (the relay never reads a secret key)");
  auto key = resolve_public_key(key_source);
  if (!key) return fail("broker key: " + key.status().message());
  o.broker_key = *key;

  const DataDirs dirs = default_data_dirs();
  o.from_build_tree = dirs.from_build_tree;
  o.static_dir = static_dir.empty() ? dirs.static_dir : static_dir;
  o.proto_dir = dirs.proto_dir;
  o.web_dir = dirs.web_dir;
  o.installed_vendor_dir = dirs.installed_vendor_dir;
  return out;
}

}  // namespace curvebus::web
