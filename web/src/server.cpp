#include "server.hpp"

#include <sys/stat.h>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/v6_only.hpp>

#include <algorithm>
#include <vector>

#include "curvebus/certificate.hpp"
#include "http_session.hpp"

namespace curvebus::web {

using boost::system::error_code;

namespace {

// The per-address cap's key: an IPv4 address, or the /64 an IPv6 address is
// in (one subscriber usually holds a whole /64).
std::string address_key(const net::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_string();
  if (a.is_v4()) return a.to_string();
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return net::ip::address_v6(bytes).to_string() + "/64";
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto a = e.address();
  if (a.is_v6() && !a.to_v6().is_v4_mapped())
    return "[" + a.to_string() + "]:" + std::to_string(e.port());
  const std::string host = a.is_v6()
                               ? net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).to_string()
                               : a.to_string();
  return host + ":" + std::to_string(e.port());
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

ConnectionSlot::ConnectionSlot(Server& server, std::string address, bool refusing)
    : server_(server), address_(std::move(address)), refusing_(refusing) {
  if (refusing_) {
    ++server_.refusing_;
  } else {
    ++server_.per_address_[address_];
    ++server_.stats_.connections_open;
  }
}

ConnectionSlot::~ConnectionSlot() {
  server_.release(address_, refusing_);
}

Server::Server(net::io_context& ioc, Options options)
    : ioc_(ioc), options_(std::move(options)), acceptor_(ioc), stop_timer_(ioc) {}

Server::~Server() = default;

std::string Server::url() const {
  std::string host = options_.listen_host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(options_.tls() ? "https://" : "http://") + host + ":" + std::to_string(port_) +
         "/";
}

Status Server::start() {
  error_code ec;
  tcp::resolver resolver(ioc_);
  broker_endpoints_ = resolver.resolve(options_.broker_host, options_.broker_port, ec);
  if (ec)
    return Status::Error("cannot resolve the broker's host " + options_.broker_host + ": " +
                         ec.message());
  broker_fingerprint_ = key_fingerprint(options_.broker_key);

  if (options_.tls()) {
    tls_ = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    tls_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                      net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
    tls_->use_certificate_chain_file(options_.tls_cert, ec);
    if (ec) return Status::Error("--tls-cert " + options_.tls_cert + ": " + ec.message());
    tls_->use_private_key_file(options_.tls_key, net::ssl::context::pem, ec);
    if (ec) return Status::Error("--tls-key " + options_.tls_key + ": " + ec.message());
  }

  const auto listen = resolver.resolve(options_.listen_host, std::to_string(options_.listen_port),
                                       tcp::resolver::passive, ec);
  if (ec || listen.empty())
    return Status::Error("cannot resolve --listen host " + options_.listen_host + ": " +
                         ec.message());
  const tcp::endpoint endpoint = listen.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(1024, ec);
  if (ec)
    return Status::Error("cannot listen on " + options_.listen_host + ":" +
                         std::to_string(options_.listen_port) + ": " + ec.message());
  port_ = acceptor_.local_endpoint().port();
  origins_ = OriginPolicy(options_.tls(), options_.listen_host, port_, options_.allow_origins,
                          options_.require_origin);

  spdlog::info("listening on {} (single thread); /bus relays to {}; broker key {}", url(),
               options_.broker_endpoint, broker_fingerprint_);
  spdlog::info("static root {}{}", options_.static_dir,
               options_.from_build_tree ? " (source tree)" : "");
  if (!is_dir(options_.static_dir))
    spdlog::warn("static root {} does not exist: every page answers 404", options_.static_dir);
  std::string origins;
  for (const auto& o : origins_.origins()) origins += (origins.empty() ? "" : " ") + o;
  spdlog::info("WebSocket origins allowed: {}{}{}", origins,
               options_.require_origin ? "" : " and programs that send no Origin",
               std::find(options_.allow_origins.begin(), options_.allow_origins.end(), "*") !=
                       options_.allow_origins.end()
                   ? " and ANY page (--allow-origin '*')"
                   : "");
  const Limits& l = options_.limits;
  spdlog::info(
      "limits: {} connections, {} per address, {} B buffered per relay, {} B per message, "
      "handshake {} ms, idle {} ms",
      l.max_connections, l.max_per_address, l.max_buffered, l.max_message,
      l.handshake_timeout.count(), l.idle_timeout.count());
  accept();
  return Status::Ok();
}

void Server::accept() {
  acceptor_.async_accept(
      [this](const error_code& ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void Server::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopping_ || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors and the like: wait a little rather than spin.
    spdlog::warn("accept failed: {}", ec.message());
    stop_timer_.expires_after(std::chrono::milliseconds(100));
    stop_timer_.async_wait([this](const error_code& e) {
      if (!e && !stopping_) accept();
    });
    return;
  }
  error_code e;
  const tcp::endpoint remote = socket.remote_endpoint(e);
  if (e) {
    accept();
    return;
  }
  socket.set_option(tcp::no_delay(true), e);
  Peer peer;
  peer.id = ++next_id_;
  peer.endpoint = endpoint_text(remote);
  peer.address = address_key(remote.address());
  ++stats_.connections_total;

  std::optional<Refusal> cause;
  if (per_address_[peer.address] >= options_.limits.max_per_address)
    cause = Refusal::kAddressCap;
  else if (stats_.connections_open >= options_.limits.max_connections)
    cause = Refusal::kConnectionCap;
  if (per_address_[peer.address] == 0) per_address_.erase(peer.address);
  if (cause && refusing_ >= kMaxRefusing) {
    refuse(Refusal::kOverflow, peer, "closed without an answer");
    socket.close(e);
    accept();
    return;
  }
  if (cause) {
    refuse(*cause, peer, "");
    peer.refusal = cause;
  }
  spdlog::debug("#{} connection from {}", peer.id, peer.endpoint);
  peer.slot = std::make_unique<ConnectionSlot>(*this, peer.address, cause.has_value());
  if (tls_) {
    std::make_shared<HttpSession<TlsStream>>(*this, TlsStream(std::move(socket), *tls_),
                                             std::move(peer))
        ->start();
  } else {
    std::make_shared<HttpSession<PlainStream>>(*this, PlainStream(std::move(socket)),
                                               std::move(peer))
        ->start();
  }
  accept();
}

void Server::release(const std::string& address, bool refusing) {
  if (refusing) {
    --refusing_;
    return;
  }
  --stats_.connections_open;
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

void Server::untrack(Connection* c) {
  connections_.erase(c);
  if (stopping_ && connections_.empty()) stop_timer_.cancel();
}

void Server::stop() {
  if (stopping_) return;
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  stop_timer_.cancel();
  spdlog::info("stopping: closing {} connection(s)", connections_.size());
  const std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) c->shutdown(false);
  if (connections_.empty()) return;
  stop_timer_.expires_after(
      std::min(options_.limits.handshake_timeout, std::chrono::milliseconds(5000)));
  stop_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    const std::vector<Connection*> left(connections_.begin(), connections_.end());
    for (Connection* c : left) c->shutdown(true);
  });
}

void Server::warn_missing_vendor(const std::string& name, const std::string& hint) {
  if (!vendor_warned_.insert(name).second) return;
  spdlog::warn("/vendor/{} is missing: it comes from {} (answering 404)", name, hint);
}

void Server::refuse(Refusal cause, const Peer& peer, const std::string& detail) {
  stats_.refuse(cause);
  const std::int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now().time_since_epoch())
                                  .count();
  if (second != log_second_) {
    if (log_skipped_ > 0)
      spdlog::warn("{} more refusal(s) not logged (at most 20 lines a second)", log_skipped_);
    log_second_ = second;
    log_lines_ = 0;
    log_skipped_ = 0;
  }
  if (log_lines_ >= 20) {
    ++log_skipped_;
    return;
  }
  ++log_lines_;
  spdlog::warn("#{} refused peer={} cause={}{}{}", peer.id, peer.endpoint, refusal_name(cause),
               detail.empty() ? "" : ": ", detail);
}

}  // namespace curvebus::web
