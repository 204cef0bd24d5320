#include "responses.hpp"

#include <sys/stat.h>

#include <ctime>

#include "curvebus/text.hpp"
#include "data_dirs.hpp"
#include "server.hpp"
#include "vendor.hpp"

namespace curvebus::web {

// Scripts and styles only from files of the relay's own origin: no inline
// script or style, so injected markup cannot run.  'unsafe-eval' is there for
// one reason: protobuf.js (/vendor/protobuf.min.js) builds each message's
// encoder and decoder with the Function constructor from the .proto files the
// relay itself serves.  Remove it once the page uses code generated from the
// .proto files instead.
const char* const kContentSecurityPolicy =
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; "
    "img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'";

void add_security_headers(http::fields& f, bool tls) {
  f.set(http::field::server, "curvebus-web/" CURVEBUS_VERSION);
  f.set("Content-Security-Policy", kContentSecurityPolicy);
  f.set("X-Content-Type-Options", "nosniff");
  f.set("Referrer-Policy", "no-referrer");
  f.set("X-Frame-Options", "DENY");
  f.set("Cross-Origin-Opener-Policy", "same-origin");
  f.set("Cross-Origin-Resource-Policy", "same-origin");
  f.set("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
  if (tls) f.set(http::field::strict_transport_security, "max-age=31536000");
}

Reply text_reply(http::status status, const std::string& text) {
  Reply r;
  r.status = status;
  r.body = "curvebus-web: " + text + "\n";
  return r;
}

std::string http_date(long seconds_since_epoch) {
  const std::time_t t = seconds_since_epoch;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

namespace {

Reply file_reply(const std::string& file) {
  Reply r;
  r.file = file;
  r.content_type = content_type_for(file);
  // Stored, but checked again each time (Last-Modified / If-Modified-Since):
  // a new version of the page is seen at the next load.
  r.cache_control = "no-cache";
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0)
    r.headers.emplace_back(http::field::last_modified, http_date(st.st_mtime));
  return r;
}

Reply config_reply(Server& server) {
  const Options& o = server.options();
  Reply r;
  r.content_type = "application/json";
  // The key and endpoint were checked at start (Z85, tcp://host:port); the
  // endpoint is still escaped: it came from a file or the environment.
  r.body = std::string("{\"brokerKey\":\"") + o.broker_key + "\",\"brokerKeyFingerprint\":\"" +
           server.broker_fingerprint() + "\",\"brokerEndpoint\":" + json_string(o.broker_endpoint) +
           ",\"relayPath\":\"/bus\",\"version\":\"" CURVEBUS_VERSION "\"}\n";
  return r;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Reply answer_get(Server& server, std::string_view path) {
  const Options& o = server.options();
  if (path == "/healthz") {
    Reply r;
    r.content_type = "application/json";
    r.body = stats_json(server.stats(), o.limits) + "\n";
    return r;
  }
  if (path == "/config.json") return config_reply(server);
  if (path == "/bus") {
    Reply r = text_reply(http::status::upgrade_required, "/bus is a WebSocket (binary messages)");
    r.headers.emplace_back(http::field::upgrade, "websocket");
    return r;
  }
  if (starts_with(path, "/vendor/")) {
    const std::string_view name = path.substr(8);
    const VendorEntry* entry = find_vendor(name);
    if (!entry) return text_reply(http::status::not_found, "no such vendor file");
    const std::string file = vendor_file(o, *entry);
    if (file.empty()) {
      server.warn_missing_vendor(entry->name, entry->hint);
      return text_reply(http::status::not_found, std::string("/vendor/") + entry->name +
                                                     " is missing on this machine: it comes "
                                                     "from " +
                                                     entry->hint);
    }
    return file_reply(file);
  }
  if (starts_with(path, "/proto/")) {
    const std::string_view name = path.substr(7);
    if (name != "curvebus.proto" && name != "robot.proto")
      return text_reply(http::status::not_found, "no such .proto file");
    const std::string file = o.proto_dir + "/" + std::string(name);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
      return text_reply(http::status::not_found, "the .proto files are missing");
    return file_reply(file);
  }
  const ResolvedPath resolved = resolve_under(o.static_dir, path);
  switch (resolved.check) {
    case PathCheck::kOk:
      return file_reply(resolved.file);
    case PathCheck::kNotFound:
      return text_reply(http::status::not_found, "not found");
    case PathCheck::kRefused:
      break;
  }
  Reply r = text_reply(http::status::forbidden, "path refused");
  r.refusal = Refusal::kPath;
  return r;
}

Reply cap_reply(Refusal cause) {
  const bool per_address = cause == Refusal::kAddressCap;
  Reply r =
      text_reply(per_address ? http::status::too_many_requests : http::status::service_unavailable,
                 cap_reason(cause));
  r.headers.emplace_back(http::field::retry_after, "5");
  r.close = true;  // counted when the connection was admitted, not again here
  return r;
}

std::string cap_reason(Refusal cause) {
  return cause == Refusal::kAddressCap ? "too many connections from your address"
                                       : "relay full: too many connections";
}

}  // namespace curvebus::web
