#include "http_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/file_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>

#include "curvebus/text.hpp"
#include "relay_session.hpp"

namespace curvebus::web {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;

namespace {

constexpr std::size_t kHeaderLimit = 8192;
// A connection admitted only to hear its refusal gets little time.
constexpr std::chrono::milliseconds kRefusalTime{2000};

bool is_http_error(const error_code& ec) {
  return &ec.category() == &beast::http::make_error_code(http::error::bad_target).category();
}

std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

}  // namespace

template <class Stream>
HttpSession<Stream>::HttpSession(Server& server, Stream stream, Peer peer)
    : server_(server),
      stream_(std::move(stream)),
      peer_(std::move(peer)),
      deadline_(stream_.get_executor()) {
  server_.track(this);
}

template <class Stream>
HttpSession<Stream>::~HttpSession() {
  server_.untrack(this);
}

template <class Stream>
void HttpSession<Stream>::start() {
  if constexpr (kIsTls<Stream>) {
    auto limit = server_.options().limits.handshake_timeout;
    if (peer_.refusal) limit = std::min(limit, kRefusalTime);
    beast::get_lowest_layer(stream_).expires_after(limit);
    stream_.async_handshake(
        net::ssl::stream_base::server,
        beast::bind_front_handler(&HttpSession::on_tls_handshake, this->shared_from_this()));
  } else {
    read_request();
  }
}

template <class Stream>
void HttpSession<Stream>::on_tls_handshake(const error_code& ec) {
  beast::get_lowest_layer(stream_).expires_never();
  if (ec) {
    if (ec == beast::error::timeout)
      server_.refuse(Refusal::kHandshakeTimeout, peer_, "no TLS handshake in time");
    else if (!peer_.refusal)
      server_.refuse(Refusal::kTls, peer_, printable(ec.message()));
    close();
    return;
  }
  read_request();
}

template <class Stream>
void HttpSession<Stream>::read_request() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  timed_out_ = false;
  auto limit = server_.options().limits.handshake_timeout;
  if (peer_.refusal) limit = std::min(limit, kRefusalTime);
  deadline_.expires_after(limit);
  deadline_.async_wait([self = this->shared_from_this()](const error_code& ec) {
    if (ec || self->handed_over_) return;
    self->timed_out_ = true;
    error_code ignored;
    beast::get_lowest_layer(self->stream_).socket().cancel(ignored);
  });
  http::async_read(
      stream_, buffer_, *parser_,
      [self = this->shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
}

template <class Stream>
void HttpSession<Stream>::on_read(const error_code& ec) {
  deadline_.cancel();
  const bool got_some = parser_->got_some() || buffer_.size() > 0;
  if (timed_out_) {
    if (answered_one_ && !got_some) {  // an idle keep-alive connection
      close();
      return;
    }
    const std::string why = "no complete request within " +
                            std::to_string(server_.options().limits.handshake_timeout.count()) +
                            " ms";
    server_.refuse(Refusal::kHandshakeTimeout, peer_, why);
    Reply r = text_reply(http::status::request_timeout, why);
    r.close = true;
    reply(std::move(r), {});
    return;
  }
  if (ec) {
    if (is_http_error(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      const bool too_big = ec == http::error::header_limit;
      const std::string why = too_big ? "request head over 8 KiB" : "bad request: " + ec.message();
      Reply r = text_reply(
          too_big ? http::status::request_header_fields_too_large : http::status::bad_request, why);
      r.close = true;
      r.refusal = Refusal::kBadRequest;
      reply(std::move(r), {});
      return;
    }
    close();  // the client went away
    return;
  }
  route();
}

template <class Stream>
void HttpSession<Stream>::route() {
  http::request<http::empty_body> req = parser_->release();
  const std::string path = path_of(req.target());
  head_request_ = req.method() == http::verb::head;
  const bool upgrade_bus = websocket::is_upgrade(req) && path == "/bus";
  request_line_ = printable(req.method_string(), 16) + " " + printable(req.target(), 200);
  spdlog::debug("#{} peer={} {}", peer_.id, peer_.endpoint, request_line_);

  if (peer_.refusal) {  // admitted over a cap, counted at accept: answer and close
    if (upgrade_bus) {
      upgrade(std::move(req));
      return;
    }
    reply(cap_reply(*peer_.refusal), {});
    return;
  }
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    Reply r = text_reply(http::status::method_not_allowed, "only GET and HEAD");
    r.headers.emplace_back(http::field::allow, "GET, HEAD");
    r.refusal = Refusal::kMethod;
    r.close = true;
    reply(std::move(r), {});
    return;
  }
  if (websocket::is_upgrade(req)) {
    if (!upgrade_bus) {
      Reply r = text_reply(http::status::not_found, "the WebSocket is /bus");
      r.close = true;
      reply(std::move(r), {});
      return;
    }
    std::optional<std::string_view> origin;
    if (auto it = req.find(http::field::origin); it != req.end()) origin = it->value();
    if (!server_.origins().allows(origin)) {
      const std::string shown = origin ? printable(*origin, 100) : std::string("(none)");
      request_line_ += " origin=" + shown;
      Reply r = text_reply(http::status::forbidden, "origin not allowed: " + shown);
      r.refusal = Refusal::kOrigin;
      r.close = true;
      reply(std::move(r), {});
      return;
    }
    if (server_.stopping()) {
      Reply r = text_reply(http::status::service_unavailable, "relay shutting down");
      r.close = true;
      reply(std::move(r), {});
      return;
    }
    upgrade(std::move(req));
    return;
  }
  Reply r = answer_get(server_, path);
  if (!req.keep_alive()) r.close = true;
  std::string if_modified_since;
  if (auto it = req.find(http::field::if_modified_since); it != req.end())
    if_modified_since = std::string(it->value());
  if (r.refusal) r.close = true;
  reply(std::move(r), if_modified_since);
}

template <class Stream>
void HttpSession<Stream>::upgrade(http::request<http::empty_body> request) {
  handed_over_ = true;
  deadline_.cancel();
  const bool refused = peer_.refusal.has_value();
  auto relay =
      std::make_shared<RelaySession<Stream>>(server_, std::move(stream_), std::move(peer_));
  if (refused)
    relay->start_refused(std::move(request));
  else
    relay->start(std::move(request));
}

template <class Stream>
void HttpSession<Stream>::reply(Reply r, const std::string& if_modified_since) {
  if (r.refusal)
    server_.refuse(*r.refusal, peer_,
                   std::to_string(static_cast<unsigned>(r.status)) + " to " +
                       (request_line_.empty() ? std::string("(no request)") : request_line_));
  const bool tls = kIsTls<Stream>;
  auto fill = [&](auto& res) {
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, r.cache_control);
    for (const auto& [field, value] : r.headers) res.set(field, value);
    add_security_headers(res, tls);
    res.keep_alive(!r.close);
  };
  if (!r.file.empty()) {
    // If-Modified-Since: the browser sends back the Last-Modified it got.
    for (const auto& [field, value] : r.headers) {
      if (field == http::field::last_modified && value == if_modified_since) {
        auto res =
            std::make_shared<http::response<http::empty_body>>(http::status::not_modified, 11);
        fill(*res);
        res->erase(http::field::content_type);
        write(res, r.close);
        return;
      }
    }
    http::file_body::value_type body;
    error_code ec;
    body.open(r.file.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      r = text_reply(http::status::not_found, "not found");
    } else {
      const auto size = body.size();
      if (head_request_) {
        auto res = std::make_shared<http::response<http::empty_body>>(r.status, 11);
        fill(*res);
        res->content_length(size);
        write(res, r.close);
      } else {
        auto res = std::make_shared<http::response<http::file_body>>(
            std::piecewise_construct, std::make_tuple(std::move(body)),
            std::make_tuple(r.status, 11));
        fill(*res);
        res->content_length(size);
        write(res, r.close);
      }
      return;
    }
  }
  if (head_request_) {
    auto res = std::make_shared<http::response<http::empty_body>>(r.status, 11);
    fill(*res);
    res->content_length(r.body.size());
    write(res, r.close);
    return;
  }
  auto res = std::make_shared<http::response<http::string_body>>(r.status, 11);
  fill(*res);
  res->body() = std::move(r.body);
  res->prepare_payload();
  write(res, r.close);
}

template <class Stream>
template <class Response>
void HttpSession<Stream>::write(std::shared_ptr<Response> response, bool close_after) {
  // A client that does not read its answer is cut after the idle timeout.
  beast::get_lowest_layer(stream_).expires_after(server_.options().limits.idle_timeout);
  http::async_write(stream_, *response,
                    [self = this->shared_from_this(), response, close_after](
                        const error_code& ec, std::size_t) { self->on_write(ec, close_after); });
}

template <class Stream>
void HttpSession<Stream>::on_write(const error_code& ec, bool close_after) {
  beast::get_lowest_layer(stream_).expires_never();
  answered_one_ = true;
  if (ec || close_after || server_.stopping()) {
    close();
    return;
  }
  read_request();
}

template <class Stream>
void HttpSession<Stream>::close() {
  deadline_.cancel();
  error_code ignored;
  auto& socket = beast::get_lowest_layer(stream_).socket();
  if constexpr (!kIsTls<Stream>) socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

template <class Stream>
void HttpSession<Stream>::shutdown(bool) {
  if (handed_over_) return;
  close();
}

template class HttpSession<PlainStream>;
template class HttpSession<TlsStream>;

}  // namespace curvebus::web
