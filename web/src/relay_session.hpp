// One relayed WebSocket: the browser's /bus connection joined, byte for
// byte, to a new TCP connection to the broker.  The bytes are a ZMTP stream
// with CurveZMQ boxes inside; the relay never looks at them, so message
// boundaries on either side mean nothing (the browser may split or merge
// bytes across WebSocket messages as it likes).
//
// Memory is bounded: each direction has one RingBuffer of half of
// --max-buffered, allocated when the relay starts.  A side is read only
// while the buffer towards the other side has room; when the other side does
// not drain it (a browser or a broker that stops reading), the relay stops
// reading and TCP flow control pushes back to the sender (counted as
// back-pressure in /healthz).  A WebSocket message larger than --max-message
// is closed with 1009; a relay that moves no byte either way for
// --idle-timeout is closed with 1008.
//
// Close codes sent to the browser: 1000 when the broker closed the
// connection (after everything it sent was delivered), 1001 when the relay
// shuts down, 1008 for a policy (idle, caps), 1009 for a message too big,
// 1011 when the broker cannot be reached or its connection failed (the
// reason says which).  When the browser closes, what it sent is delivered to the broker
// before the broker connection is closed.  A close that cannot be delivered
// (a peer that does not read) is cut after the handshake timeout.
//
// Ownership: kept alive by its pending operations (shared_from_this()).
// Thread: the server's one thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "ring_buffer.hpp"
#include "server.hpp"
#include "streams.hpp"

namespace curvebus::web {

template <class Stream>
class RelaySession : public std::enable_shared_from_this<RelaySession<Stream>>, public Connection {
 public:
  RelaySession(Server& server, Stream&& stream, Peer peer);
  ~RelaySession() override;

  // Completes the WebSocket handshake of `request`, then connects to the broker.
  void start(boost::beast::http::request<boost::beast::http::empty_body> request);
  // Completes the handshake and closes at once with 1008 and the cap's reason.
  void start_refused(boost::beast::http::request<boost::beast::http::empty_body> request);
  void shutdown(bool hard) override;

 private:
  void on_accept(const boost::system::error_code& ec);
  void on_connect(const boost::system::error_code& ec);
  void read_browser();
  void on_browser_read(const boost::system::error_code& ec, std::size_t n);
  void write_broker();
  void on_broker_write(const boost::system::error_code& ec, std::size_t n);
  void read_broker();
  void on_broker_read(const boost::system::error_code& ec, std::size_t n);
  void write_browser();
  void on_browser_write(const boost::system::error_code& ec, std::size_t n);
  void arm_idle();
  void on_idle(const boost::system::error_code& ec);
  void drained();  // a side ended: close once what it sent is delivered
  // Ends the relay: closes the broker connection and the WebSocket (with
  // `code` and `reason` unless the WebSocket is already closed); logs once.
  void end(std::uint16_t code, const std::string& reason);
  void on_close(const boost::system::error_code& ec);
  void cut();  // closes both sockets at once

  Server& server_;
  boost::beast::websocket::stream<Stream> ws_;
  tcp::socket broker_;
  Peer peer_;
  RingBuffer up_, down_;  // browser -> broker, broker -> browser
  boost::asio::steady_timer idle_timer_, deadline_;
  std::chrono::steady_clock::time_point opened_, last_activity_;
  std::uint64_t up_bytes_ = 0, down_bytes_ = 0;
  bool counted_ = false;  // counted in relays_open
  bool connected_ = false;
  bool ws_reading_ = false, ws_writing_ = false, ws_done_ = false, ws_closing_ = false;
  bool broker_reading_ = false, broker_writing_ = false;
  bool browser_eof_ = false, broker_eof_ = false;
  bool up_paused_ = false, down_paused_ = false;
  bool ended_ = false;
  std::string end_reason_;
};

extern template class RelaySession<PlainStream>;
extern template class RelaySession<TlsStream>;

}  // namespace curvebus::web
