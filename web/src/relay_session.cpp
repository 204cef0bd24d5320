#include "relay_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>

#include "curvebus/text.hpp"
#include "responses.hpp"

namespace curvebus::web {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// A close frame's reason holds at most 123 bytes; ours are ASCII.
websocket::close_reason close_reason(std::uint16_t code, const std::string& text) {
  websocket::close_reason cr;
  cr.code = code;
  std::string ascii;
  for (char c : text)
    if (c >= 0x20 && c < 0x7f) ascii += c;
  if (ascii.size() > cr.reason.max_size()) ascii.resize(cr.reason.max_size());
  // Not assign(data, size): a char* picks static_string's (string_view, pos) overload.
  cr.reason = beast::string_view(ascii);
  return cr;
}

std::string seconds(std::chrono::milliseconds ms) {
  const auto whole = ms.count() / 1000, tenths = (ms.count() % 1000) / 100;
  return std::to_string(whole) + (tenths ? "." + std::to_string(tenths) : "") + " s";
}

}  // namespace

template <class Stream>
RelaySession<Stream>::RelaySession(Server& server, Stream&& stream, Peer peer)
    : server_(server),
      ws_(std::move(stream)),
      broker_(ws_.get_executor()),
      peer_(std::move(peer)),
      idle_timer_(ws_.get_executor()),
      deadline_(ws_.get_executor()) {
  server_.track(this);
}

template <class Stream>
RelaySession<Stream>::~RelaySession() {
  Stats& st = server_.stats();
  st.remove_buffered(up_.size() + down_.size());
  if (counted_) --st.relays_open;
  server_.untrack(this);
}

template <class Stream>
void RelaySession<Stream>::start(beast::http::request<beast::http::empty_body> request) {
  const Limits& limits = server_.options().limits;
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = limits.handshake_timeout;
  timeouts.idle_timeout = websocket::stream_base::none();  // ours counts both directions
  timeouts.keep_alive_pings = false;
  ws_.set_option(timeouts);
  const bool tls = kIsTls<Stream>;
  ws_.set_option(websocket::stream_base::decorator(
      [tls](websocket::response_type& res) { add_security_headers(res, tls); }));
  ws_.read_message_max(limits.max_message);
  ws_.binary(true);
  ws_.auto_fragment(false);
  ws_.async_accept(request,
                   beast::bind_front_handler(&RelaySession::on_accept, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::start_refused(beast::http::request<beast::http::empty_body> request) {
  ended_ = true;  // never relays: on_accept closes with the cap's reason
  start(std::move(request));
}

template <class Stream>
void RelaySession<Stream>::on_accept(const error_code& ec) {
  const Limits& limits = server_.options().limits;
  if (ec) {
    if (ec == beast::error::timeout)
      server_.refuse(Refusal::kHandshakeTimeout, peer_, "WebSocket upgrade not completed");
    spdlog::debug("#{} peer={} WebSocket upgrade failed: {}", peer_.id, peer_.endpoint,
                  ec.message());
    cut();
    return;
  }
  if (ended_) {  // admitted over a cap: say so in the close frame
    ws_closing_ = true;
    deadline_.expires_after(limits.handshake_timeout);
    deadline_.async_wait([self = this->shared_from_this()](const error_code& e) {
      if (!e) self->cut();
    });
    ws_.async_close(close_reason(websocket::close_code::policy_error,
                                 cap_reason(peer_.refusal.value_or(Refusal::kConnectionCap))),
                    beast::bind_front_handler(&RelaySession::on_close, this->shared_from_this()));
    return;
  }
  Stats& st = server_.stats();
  ++st.relays_open;
  ++st.relays_total;
  counted_ = true;
  opened_ = last_activity_ = Clock::now();
  spdlog::info("#{} relay open peer={} to broker {}", peer_.id, peer_.endpoint,
               server_.options().broker_endpoint);
  if (server_.stopping()) {
    end(websocket::close_code::going_away, "relay shutting down");
    return;
  }
  const std::size_t half = std::max<std::size_t>(1, limits.max_buffered / 2);
  up_.allocate(half);
  down_.allocate(std::max<std::size_t>(1, limits.max_buffered - half));
  deadline_.expires_after(limits.handshake_timeout);
  deadline_.async_wait([self = this->shared_from_this()](const error_code& e) {
    if (e || self->connected_ || self->ended_) return;
    error_code ignored;
    self->broker_.close(ignored);  // on_connect sees operation_aborted
  });
  net::async_connect(broker_, server_.broker_endpoints(),
                     [self = this->shared_from_this()](const error_code& e, const tcp::endpoint&) {
                       self->on_connect(e);
                     });
}

template <class Stream>
void RelaySession<Stream>::on_connect(const error_code& ec) {
  deadline_.cancel();
  if (ended_) return;
  if (ec) {
    const std::string why =
        ec == net::error::operation_aborted
            ? "no answer within " + seconds(server_.options().limits.handshake_timeout)
            : ec.message();
    server_.refuse(Refusal::kBrokerUnreachable, peer_, why);
    // 1011, not IANA's 1014 "Bad Gateway": RFC 6455 clients (Beast among
    // them) refuse 1014 as reserved and would report no reason at all.
    end(websocket::close_code::internal_error, "broker unreachable: " + why);
    return;
  }
  connected_ = true;
  error_code ignored;
  broker_.set_option(tcp::no_delay(true), ignored);
  last_activity_ = Clock::now();
  arm_idle();
  read_browser();
  read_broker();
}

// ---------------------------------------------------------------- browser -> broker

template <class Stream>
void RelaySession<Stream>::read_browser() {
  if (ended_ || !connected_ || ws_done_ || ws_closing_ || ws_reading_) return;
  up_.rewind_if_empty();
  const net::mutable_buffer space = up_.writable();
  if (space.size() == 0) {
    if (!up_paused_) ++server_.stats().paused_to_broker;
    up_paused_ = true;
    return;
  }
  up_paused_ = false;
  ws_reading_ = true;
  ws_.async_read_some(
      space, beast::bind_front_handler(&RelaySession::on_browser_read, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_browser_read(const error_code& ec, std::size_t n) {
  ws_reading_ = false;
  if (ended_) return;
  if (n > 0) {
    up_.commit(n);
    server_.stats().add_buffered(n);
    last_activity_ = Clock::now();
  }
  if (ec) {
    ws_done_ = true;
    if (ec == websocket::error::closed) {
      browser_eof_ = true;
      const auto& r = ws_.reason();
      end_reason_ =
          "closed by the browser (" + std::to_string(r.code) +
          (r.reason.empty() ? ""
                            : " " + printable(std::string(r.reason.data(), r.reason.size()), 123)) +
          ")";
      drained();
    } else if (ec == websocket::error::message_too_big) {
      // Beast has sent the close frame (1009) already.
      const std::string why =
          "message over " + std::to_string(server_.options().limits.max_message) + " bytes";
      server_.refuse(Refusal::kMessageTooBig, peer_, why);
      end(websocket::close_code::too_big, why);
    } else {
      end(websocket::close_code::none, "browser connection lost: " + ec.message());
    }
    return;
  }
  write_broker();
  read_browser();
}

template <class Stream>
void RelaySession<Stream>::write_broker() {
  if (ended_ || !connected_ || broker_writing_ || up_.empty()) return;
  broker_writing_ = true;
  net::async_write(
      broker_, up_.readable(),
      beast::bind_front_handler(&RelaySession::on_broker_write, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_broker_write(const error_code& ec, std::size_t n) {
  broker_writing_ = false;
  up_.consume(n);
  Stats& st = server_.stats();
  st.remove_buffered(n);
  st.bytes_to_broker += n;
  up_bytes_ += n;
  if (n > 0) last_activity_ = Clock::now();
  if (ended_) return;
  if (ec) {
    end(websocket::close_code::internal_error, "broker connection lost: " + ec.message());
    return;
  }
  write_broker();
  read_browser();
  if (browser_eof_) drained();
}

// ---------------------------------------------------------------- broker -> browser

template <class Stream>
void RelaySession<Stream>::read_broker() {
  if (ended_ || !connected_ || broker_eof_ || broker_reading_) return;
  down_.rewind_if_empty();
  const net::mutable_buffer space = down_.writable();
  if (space.size() == 0) {
    if (!down_paused_) ++server_.stats().paused_to_browser;
    down_paused_ = true;
    return;
  }
  down_paused_ = false;
  broker_reading_ = true;
  broker_.async_read_some(
      space, beast::bind_front_handler(&RelaySession::on_broker_read, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_broker_read(const error_code& ec, std::size_t n) {
  broker_reading_ = false;
  if (ended_) return;
  if (n > 0) {
    down_.commit(n);
    server_.stats().add_buffered(n);
    last_activity_ = Clock::now();
  }
  if (ec == net::error::eof) {
    broker_eof_ = true;
    drained();
    return;
  }
  if (ec) {
    end(websocket::close_code::internal_error, "broker connection lost: " + ec.message());
    return;
  }
  write_browser();
  read_broker();
}

template <class Stream>
void RelaySession<Stream>::write_browser() {
  if (ended_ || ws_done_ || ws_closing_ || ws_writing_ || down_.empty()) return;
  ws_writing_ = true;
  ws_.async_write(down_.readable(), beast::bind_front_handler(&RelaySession::on_browser_write,
                                                              this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_browser_write(const error_code& ec, std::size_t n) {
  ws_writing_ = false;
  down_.consume(n);
  Stats& st = server_.stats();
  st.remove_buffered(n);
  st.bytes_to_browser += n;
  down_bytes_ += n;
  if (n > 0) last_activity_ = Clock::now();
  if (ended_) return;
  if (ec) {
    ws_done_ = true;
    end(websocket::close_code::none, "browser connection lost: " + ec.message());
    return;
  }
  write_browser();
  read_broker();
  if (broker_eof_) drained();
}

// ---------------------------------------------------------------- ends

template <class Stream>
void RelaySession<Stream>::drained() {
  if (ended_) return;
  if (browser_eof_ && up_.empty() && !broker_writing_) {
    end(websocket::close_code::none, end_reason_);
  } else if (broker_eof_ && down_.empty() && !ws_writing_) {
    end(websocket::close_code::normal, "broker closed the connection");
  }
}

template <class Stream>
void RelaySession<Stream>::arm_idle() {
  idle_timer_.expires_at(last_activity_ + server_.options().limits.idle_timeout);
  idle_timer_.async_wait(
      beast::bind_front_handler(&RelaySession::on_idle, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_idle(const error_code& ec) {
  if (ec || ended_) return;
  const auto idle = server_.options().limits.idle_timeout;
  if (Clock::now() - last_activity_ >= idle) {
    const std::string why = "idle for " + seconds(idle);
    server_.refuse(Refusal::kIdleTimeout, peer_, why);
    end(websocket::close_code::policy_error, why);
    return;
  }
  arm_idle();
}

template <class Stream>
void RelaySession<Stream>::end(std::uint16_t code, const std::string& reason) {
  if (ended_) return;
  ended_ = true;
  idle_timer_.cancel();
  error_code ignored;
  broker_.shutdown(tcp::socket::shutdown_both, ignored);
  broker_.close(ignored);
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - opened_);
  spdlog::info("#{} relay closed peer={} after {}: {} B to broker, {} B to browser ({})", peer_.id,
               peer_.endpoint, seconds(age), up_bytes_, down_bytes_, reason);
  if (ws_done_ || ws_closing_ || code == websocket::close_code::none) {
    cut();
    return;
  }
  // A close frame queued behind a write that never completes (a browser
  // that does not read) would wait forever: the deadline cuts it.
  ws_closing_ = true;
  deadline_.expires_after(server_.options().limits.handshake_timeout);
  deadline_.async_wait([self = this->shared_from_this()](const error_code& e) {
    if (!e) self->cut();
  });
  ws_.async_close(close_reason(code, reason),
                  beast::bind_front_handler(&RelaySession::on_close, this->shared_from_this()));
}

template <class Stream>
void RelaySession<Stream>::on_close(const error_code& ec) {
  if (ec && ec != net::error::operation_aborted)
    spdlog::debug("#{} peer={} close handshake: {}", peer_.id, peer_.endpoint, ec.message());
  cut();
}

template <class Stream>
void RelaySession<Stream>::cut() {
  deadline_.cancel();
  idle_timer_.cancel();
  error_code ignored;
  broker_.close(ignored);
  beast::get_lowest_layer(ws_).close();
}

template <class Stream>
void RelaySession<Stream>::shutdown(bool hard) {
  if (hard || !counted_) {
    ended_ = true;
    cut();
    return;
  }
  end(websocket::close_code::going_away, "relay shutting down");
}

template class RelaySession<PlainStream>;
template class RelaySession<TlsStream>;

}  // namespace curvebus::web
