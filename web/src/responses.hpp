// What curvebus-web answers to a GET or HEAD, decided without touching a
// socket: the static files, /vendor/*, /proto/*, /config.json, /healthz, and
// the error answers.  http_session.cpp turns a Reply into a Beast response.
//
// Every response, including the WebSocket upgrade's, carries the headers of
// add_security_headers(): a Content-Security-Policy that allows scripts,
// styles and connections from the relay's own origin only (no inline script
// or style; eval only for protobuf.js, see responses.cpp), nosniff,
// no-referrer, no framing.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/status.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stats.hpp"

namespace curvebus::web {

class Server;
namespace http = boost::beast::http;

// The Content-Security-Policy of every response.
extern const char* const kContentSecurityPolicy;

void add_security_headers(http::fields& fields, bool tls);

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;  // the body, unless `file` is set
  std::string file;  // a file to send as the body
  std::string cache_control = "no-store";
  std::vector<std::pair<http::field, std::string>> headers;  // Allow, Retry-After, ...
  bool close = false;              // close the connection after this answer
  std::optional<Refusal> refusal;  // counted and logged by the session
};

// A short plain-text answer ("curvebus-web: ..." and a newline).
Reply text_reply(http::status status, const std::string& text);

// The answer to GET/HEAD `path` (the target without its query string).
Reply answer_get(Server& server, std::string_view path);

// The answer to a connection admitted only to be refused (over a cap).
Reply cap_reply(Refusal cause);
// The reason in the WebSocket close frame (1008) for the same refusal.
std::string cap_reason(Refusal cause);

// An HTTP date (RFC 9110 IMF-fixdate) for a file's modification time.
std::string http_date(long seconds_since_epoch);

}  // namespace curvebus::web
