// One client connection while it speaks HTTP: the TLS handshake (HTTPS),
// then requests one after another (keep-alive), each answered from
// responses.hpp, until the client closes, a limit ends it, or it asks for a
// WebSocket on /bus; the connection then passes to a RelaySession.
//
// Bounds: the TLS handshake and each request head must arrive within the
// handshake timeout (slow or silent clients get 408 and are closed); a head
// over 8 KiB gets 431, a request with a body 400, a method other than GET
// and HEAD 405.  A connection admitted over a cap (Peer::refusal) gets its
// refusal as the answer to its first request.
//
// Ownership: the session keeps itself alive through shared_from_this() while
// an operation is pending.  Thread: the server's one thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <memory>
#include <optional>

#include "responses.hpp"
#include "server.hpp"
#include "streams.hpp"

namespace curvebus::web {

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>>, public Connection {
 public:
  HttpSession(Server& server, Stream stream, Peer peer);
  ~HttpSession() override;
  void start();
  void shutdown(bool hard) override;

 private:
  void on_tls_handshake(const boost::system::error_code& ec);
  void read_request();
  void on_read(const boost::system::error_code& ec);
  void route();
  void upgrade(http::request<http::empty_body> request);
  void reply(Reply r, const std::string& if_modified_since);
  template <class Response>
  void write(std::shared_ptr<Response> response, bool close_after);
  void on_write(const boost::system::error_code& ec, bool close_after);
  void close();

  Server& server_;
  Stream stream_;
  Peer peer_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  boost::asio::steady_timer deadline_;
  std::string request_line_;  // "GET /path", escaped, for the log
  bool timed_out_ = false;
  bool handed_over_ = false;  // the stream now belongs to a RelaySession
  bool head_request_ = false;
  bool answered_one_ = false;
};

extern template class HttpSession<PlainStream>;
extern template class HttpSession<TlsStream>;

}  // namespace curvebus::web
