#include "relay_env.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <functional>
#include <sstream>

namespace curvebus::web::test {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `ioc` until `done()` or `timeout`; false on timeout.
bool run_until(net::io_context& ioc, const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (ioc.stopped()) ioc.restart();
    if (ioc.run_one_for(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)) == 0)
      std::this_thread::sleep_for(1ms);  // nothing pending: let time pass
  }
  return true;
}

// A socket of `ioc`, bound to `source` (a 127.0.0.x) when given.
tcp::socket client_socket(net::io_context& ioc, const std::string& source) {
  tcp::socket s(ioc);
  if (!source.empty()) {
    s.open(tcp::v4());
    s.bind(tcp::endpoint(net::ip::make_address(source), 0));
  }
  return s;
}

tcp::endpoint relay_endpoint(std::uint16_t port) {
  return tcp::endpoint(net::ip::make_address("127.0.0.1"), port);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void flatten(const boost::property_tree::ptree& tree, const std::string& prefix,
             std::map<std::string, std::uint64_t>& out) {
  for (const auto& [key, child] : tree) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    if (child.empty()) {
      const std::string& v = child.data();
      if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos)
        out[name] = std::stoull(v);
    } else {
      flatten(child, name, out);
    }
  }
}

}  // namespace

// ------------------------------------------------------------------ relay process

RelayProcess::RelayProcess(const std::string& dir, std::vector<std::string> args,
                           const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {CURVEBUS_WEB_BIN};
  auto given = [&](const std::string& flag) {
    return std::find(args.begin(), args.end(), flag) != args.end();
  };
  if (!given("--listen")) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  if (!given("--log-level")) argv.insert(argv.end(), {"--log-level", "debug"});
  tls_ = given("--tls-cert");
  argv.insert(argv.end(), args.begin(), args.end());
  static int runs = 0;
  process_ = Process(argv, dir + "/web." + std::to_string(++runs), env);
  const std::string marker = "listening on http";
  curvebus::test::wait_until(
      [&] { return log().find(marker) != std::string::npos || !process_.running(); }, 10000ms);
  const std::string text = log();
  const auto at = text.find(marker);
  if (at == std::string::npos) return;
  const auto scheme_end = text.find("://", at);
  const auto path = text.find('/', scheme_end + 3);
  const std::string host_port = text.substr(scheme_end + 3, path - scheme_end - 3);
  port_ = static_cast<std::uint16_t>(std::stoul(host_port.substr(host_port.rfind(':') + 1)));
}

std::map<std::string, std::uint64_t> RelayProcess::healthz(const std::string& source_address) {
  HttpRequest r;
  r.target = "/healthz";
  // The relay frees this connection's place as soon as it has answered.
  r.headers["Connection"] = "close";
  r.source_address = source_address;
  r.tls = tls_;
  const HttpResponse res = fetch(port_, r);
  std::map<std::string, std::uint64_t> out;
  if (res.status != 200) return out;
  boost::property_tree::ptree tree;
  std::istringstream in(res.body);
  try {
    boost::property_tree::read_json(in, tree);
  } catch (const std::exception&) {
    return out;
  }
  flatten(tree, "", out);
  return out;
}

// ------------------------------------------------------------------ HTTP

namespace {

template <class Stream>
HttpResponse exchange(net::io_context& ioc, Stream& stream, std::uint16_t port,
                      const HttpRequest& request) {
  HttpResponse out;
  http::request<http::string_body> req;
  req.method_string(request.method);
  req.target(request.target);
  req.version(11);
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [k, v] : request.headers) req.set(k, v);
  req.prepare_payload();
  error_code ec;
  bool done = false;
  http::async_write(stream, req, [&](const error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  run_until(
      ioc, [&] { return done; }, 10000ms);
  if (!done || ec) {
    out.error = done ? ec.message() : "write timed out";
    return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  parser.skip(request.method == "HEAD");
  done = false;
  http::async_read(stream, buffer, parser, [&](const error_code& e, std::size_t) {
    ec = e;
    done = true;
  });
  run_until(
      ioc, [&] { return done; }, 10000ms);
  if (!done || ec) {
    out.error = done ? ec.message() : "read timed out";
    return out;
  }
  const auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res)
    out.headers[lower(std::string(f.name_string()))] = std::string(f.value());
  out.body = res.body();
  return out;
}

}  // namespace

HttpResponse fetch(std::uint16_t port, const HttpRequest& request) {
  net::io_context ioc;
  HttpResponse out;
  error_code ec;
  beast::tcp_stream tcp_stream(client_socket(ioc, request.source_address));
  tcp_stream.expires_after(10s);
  bool done = false;
  tcp_stream.async_connect(relay_endpoint(port), [&](const error_code& e) {
    ec = e;
    done = true;
  });
  run_until(
      ioc, [&] { return done; }, 10000ms);
  if (!done || ec) {
    out.error = done ? ec.message() : "connect timed out";
    return out;
  }
  if (!request.tls) return exchange(ioc, tcp_stream, port, request);
  ssl::context ctx(ssl::context::tls_client);
  ctx.set_verify_mode(ssl::verify_none);
  beast::ssl_stream<beast::tcp_stream> tls(std::move(tcp_stream), ctx);
  done = false;
  tls.async_handshake(ssl::stream_base::client, [&](const error_code& e) {
    ec = e;
    done = true;
  });
  run_until(
      ioc, [&] { return done; }, 10000ms);
  if (!done || ec) {
    out.error = done ? ec.message() : "TLS handshake timed out";
    return out;
  }
  return exchange(ioc, tls, port, request);
}

RawResult raw_exchange(std::uint16_t port, const std::string& bytes,
                       std::chrono::milliseconds timeout) {
  RawResult out;
  const auto start = Clock::now();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return out;
  }
  if (!bytes.empty()) (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  char buf[4096];
  for (;;) {
    const auto left =
        timeout - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      out.closed_by_peer = true;
      break;
    }
    out.received.append(buf, static_cast<std::size_t>(n));
  }
  out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  ::close(fd);
  return out;
}

// ------------------------------------------------------------------ WebSocket

struct WsClient::Impl {
  net::io_context ioc;
  ssl::context ssl_ctx{ssl::context::tls_client};
  std::unique_ptr<websocket::stream<beast::tcp_stream>> plain;
  std::unique_ptr<websocket::stream<beast::ssl_stream<beast::tcp_stream>>> tls;
  Options options;
  bool open = false;
  int status = 0;
  std::string error;
  // What the read loop collected; shared with its handlers, which may
  // outlive a call that timed out.
  struct ReadState {
    beast::flat_buffer buffer;
    std::string received;
    bool reading = false, ended = false;
    bool discard = false;  // count, do not keep
    std::uint64_t count = 0;
    int close_code = -1;
    std::string close_reason;
  };
  std::shared_ptr<ReadState> rs = std::make_shared<ReadState>();

  template <class F>
  void with(F&& f) {
    if (tls)
      f(*tls);
    else
      f(*plain);
  }

  void read_next() {
    with([this](auto& ws) {
      auto state = rs;
      ws.async_read(state->buffer, [this, state, &ws](const error_code& ec, std::size_t n) {
        if (!ec) {
          state->count += n;
          if (!state->discard) state->received += beast::buffers_to_string(state->buffer.data());
          state->buffer.consume(n);
          read_next();
          return;
        }
        state->ended = true;
        // As a browser reports it: the code of the close frame received, even
        // when the TCP connection then ended abruptly (Boost 1.74's teardown
        // closes a socket that still receives, so the peer may see a reset).
        if (ec == websocket::error::closed || ws.reason().code != websocket::close_code::none) {
          state->close_code = ws.reason().code;
          state->close_reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
        } else {
          state->close_code = 0;
          state->close_reason = ec.message();
        }
      });
    });
  }
};

WsClient::WsClient(std::uint16_t port, Options options) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.options = options;
  error_code ec;
  bool done = false;
  beast::tcp_stream stream(client_socket(im.ioc, options.source_address));
  stream.expires_after(10s);
  stream.async_connect(relay_endpoint(port), [&](const error_code& e) {
    ec = e;
    done = true;
  });
  if (!run_until(
          im.ioc, [&] { return done; }, 10000ms) ||
      ec) {
    im.error = ec ? ec.message() : "connect timed out";
    return;
  }
  if (options.tls) {
    im.ssl_ctx.set_verify_mode(ssl::verify_none);
    im.tls = std::make_unique<websocket::stream<beast::ssl_stream<beast::tcp_stream>>>(
        std::move(stream), im.ssl_ctx);
    done = false;
    im.tls->next_layer().async_handshake(ssl::stream_base::client, [&](const error_code& e) {
      ec = e;
      done = true;
    });
    if (!run_until(
            im.ioc, [&] { return done; }, 10000ms) ||
        ec) {
      im.error = ec ? ec.message() : "TLS handshake timed out";
      return;
    }
  } else {
    im.plain = std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(stream));
  }
  websocket::response_type res;
  im.with([&](auto& ws) {
    const std::string origin = options.origin;
    ws.set_option(websocket::stream_base::decorator([origin](websocket::request_type& req) {
      if (!origin.empty()) req.set(http::field::origin, origin);
    }));
    ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    done = false;
    ws.async_handshake(res, "127.0.0.1:" + std::to_string(port), options.target,
                       [&](const error_code& e) {
                         ec = e;
                         done = true;
                       });
  });
  if (!run_until(
          im.ioc, [&] { return done; }, 10000ms)) {
    im.error = "handshake timed out";
    return;
  }
  im.status = static_cast<int>(res.result_int());
  if (ec) {
    im.error = ec.message();
    return;
  }
  im.with([](auto& ws) {
    beast::get_lowest_layer(ws).expires_never();
    ws.binary(true);
  });
  im.open = true;
  if (options.read) start_reading();
}

WsClient::~WsClient() {
  impl_->with([](auto& ws) { beast::get_lowest_layer(ws).close(); });
}

bool WsClient::open() const {
  return impl_->open;
}
int WsClient::handshake_status() const {
  return impl_->status;
}
const std::string& WsClient::error() const {
  return impl_->error;
}

bool WsClient::send(const std::string& bytes, std::chrono::milliseconds timeout) {
  if (!impl_->open) return false;
  struct Write {
    std::string bytes;
    bool done = false;
    error_code ec;
  };
  auto w = std::make_shared<Write>();
  w->bytes = bytes;
  impl_->with([&](auto& ws) {
    ws.async_write(net::buffer(w->bytes), [w](const error_code& e, std::size_t) {
      w->ec = e;
      w->done = true;
    });
  });
  return run_until(
             impl_->ioc, [&] { return w->done; }, timeout) &&
         !w->ec;
}

void WsClient::start_reading() {
  if (!impl_->open || impl_->rs->reading) return;
  impl_->rs->reading = true;
  impl_->read_next();
}

std::string WsClient::read_bytes(std::size_t n, std::chrono::milliseconds timeout) {
  start_reading();
  auto rs = impl_->rs;
  run_until(
      impl_->ioc, [&] { return rs->received.size() >= n || rs->ended; }, timeout);
  return rs->received;
}

std::pair<int, std::string> WsClient::wait_close(std::chrono::milliseconds timeout) {
  if (!impl_->open) return {0, impl_->error};
  start_reading();
  auto rs = impl_->rs;
  if (!run_until(
          impl_->ioc, [&] { return rs->ended; }, timeout))
    return {-1, "timeout"};
  return {rs->close_code, rs->close_reason};
}

void WsClient::close() {
  if (!impl_->open) return;
  start_reading();
  auto done = std::make_shared<bool>(false);
  impl_->with([&](auto& ws) {
    ws.async_close(websocket::close_code::normal, [done](const error_code&) { *done = true; });
  });
  run_until(
      impl_->ioc, [&] { return *done; }, 5000ms);
}

void WsClient::idle(std::chrono::milliseconds d) {
  run_until(
      impl_->ioc, [] { return false; }, d);
}

std::uint64_t WsClient::drain(std::chrono::milliseconds d) {
  auto rs = impl_->rs;
  rs->discard = true;
  const std::uint64_t before = rs->count;
  start_reading();
  run_until(
      impl_->ioc, [] { return false; }, d);
  return rs->count - before;
}

// ------------------------------------------------------------------ broker stand-ins

TcpServer::TcpServer(Mode mode) : mode_(mode) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Small kernel buffers on the side that stops: back-pressure shows sooner.
  const int small = 64 * 1024;
  if (mode_ == Mode::kSink) ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  if (mode_ == Mode::kFlood) ::setsockopt(listen_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listen_fd_, 64);
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpServer::~TcpServer() {
  stop_ = true;
  acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // unblocks a flood's send()
  }
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listen_fd_);
}

void TcpServer::accept_loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void TcpServer::serve(int fd) {
  std::vector<char> buf(64 * 1024, 'x');
  switch (mode_) {
    case Mode::kEcho:
      while (!stop_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) return;
        read_ += static_cast<std::uint64_t>(n);
        std::size_t off = 0;
        while (off < static_cast<std::size_t>(n)) {
          const ssize_t w =
              ::send(fd, buf.data() + off, static_cast<std::size_t>(n) - off, MSG_NOSIGNAL);
          if (w <= 0) return;
          off += static_cast<std::size_t>(w);
          written_ += static_cast<std::uint64_t>(w);
        }
      }
      return;
    case Mode::kFlood:
      while (!stop_) {
        const ssize_t w = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
        if (w <= 0) return;
        written_ += static_cast<std::uint64_t>(w);
      }
      return;
    case Mode::kDiscard:
      while (!stop_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) return;
        read_ += static_cast<std::uint64_t>(n);
      }
      return;
    case Mode::kSink:
      while (!stop_) std::this_thread::sleep_for(20ms);
      return;
  }
}

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ------------------------------------------------------------------ bridge

namespace bridge_detail {  // named: WsBridge::Impl holds these

// One ZeroMQ connection joined to one WebSocket to the relay.
class BridgeConnection : public std::enable_shared_from_this<BridgeConnection> {
 public:
  using Record = std::function<void(bool to_broker, const char* data, std::size_t n)>;
  BridgeConnection(tcp::socket client, std::uint16_t relay_port, Record record)
      : client_(std::move(client)),
        ws_(client_.get_executor()),
        relay_port_(relay_port),
        record_(std::move(record)) {}

  void start() {
    beast::get_lowest_layer(ws_).expires_after(10s);
    beast::get_lowest_layer(ws_).async_connect(
        relay_endpoint(relay_port_), [self = shared_from_this()](const error_code& ec) {
          if (ec) return self->stop();
          beast::get_lowest_layer(self->ws_).expires_never();
          self->ws_.set_option(
              websocket::stream_base::timeout::suggested(beast::role_type::client));
          self->ws_.async_handshake("127.0.0.1:" + std::to_string(self->relay_port_), "/bus",
                                    [self](const error_code& e) {
                                      if (e) return self->stop();
                                      self->ws_.binary(true);
                                      self->pump_up();
                                      self->pump_down();
                                    });
        });
  }
  void stop() {
    error_code ignored;
    client_.close(ignored);
    beast::get_lowest_layer(ws_).close();
  }

 private:
  void pump_up() {
    client_.async_read_some(net::buffer(up_),
                            [self = shared_from_this()](const error_code& ec, std::size_t n) {
                              if (ec) return self->stop();
                              self->record_(true, self->up_.data(), n);
                              self->ws_.async_write(net::buffer(self->up_.data(), n),
                                                    [self](const error_code& e, std::size_t) {
                                                      if (e) return self->stop();
                                                      self->pump_up();
                                                    });
                            });
  }
  void pump_down() {
    ws_.async_read(down_, [self = shared_from_this()](const error_code& ec, std::size_t n) {
      if (ec) return self->stop();
      const std::string data = beast::buffers_to_string(self->down_.data());
      self->down_.consume(n);
      self->record_(false, data.data(), data.size());
      auto copy = std::make_shared<std::string>(data);
      net::async_write(self->client_, net::buffer(*copy),
                       [self, copy](const error_code& e, std::size_t) {
                         if (e) return self->stop();
                         self->pump_down();
                       });
    });
  }

  tcp::socket client_;
  websocket::stream<beast::tcp_stream> ws_;
  std::uint16_t relay_port_;
  Record record_;
  std::array<char, 64 * 1024> up_{};
  beast::flat_buffer down_;
};

}  // namespace bridge_detail

using bridge_detail::BridgeConnection;

struct WsBridge::Impl {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::uint16_t relay_port = 0, port = 0;
  mutable std::mutex mu;
  std::string up, down;
  int connections = 0;
  std::vector<std::weak_ptr<BridgeConnection>> open;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](const error_code& ec, tcp::socket s) {
      if (ec) return;
      auto conn = std::make_shared<BridgeConnection>(
          std::move(s), relay_port, [this](bool to_broker, const char* data, std::size_t n) {
            std::lock_guard<std::mutex> lock(mu);
            (to_broker ? up : down).append(data, n);
          });
      {
        std::lock_guard<std::mutex> lock(mu);
        ++connections;
      }
      open.push_back(conn);
      conn->start();
      accept();
    });
  }
};

WsBridge::WsBridge(std::uint16_t relay_port) : impl_(std::make_unique<Impl>()) {
  impl_->relay_port = relay_port;
  const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

WsBridge::~WsBridge() {
  net::post(impl_->ioc, [this] {
    error_code ignored;
    impl_->acceptor.close(ignored);
    for (auto& w : impl_->open)
      if (auto c = w.lock()) c->stop();
  });
  impl_->thread.join();
}

std::string WsBridge::endpoint() const {
  return "tcp://127.0.0.1:" + std::to_string(impl_->port);
}
int WsBridge::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections;
}
std::string WsBridge::to_broker() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->up;
}
std::string WsBridge::to_client() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->down;
}

bool make_test_certificate(const std::string& cert, const std::string& key) {
  const auto r = curvebus::test::run(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1"},
      cert + ".openssl");
  return r.status == 0;
}

}  // namespace curvebus::web::test
