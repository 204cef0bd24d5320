// curvebus-bench-nats: nats-server as a reference broker, measured like
// curvebus-bench-zmq-proxy: one publisher and N subscribers (separate
// connections, separate threads) on 127.0.0.1, delivered msg/s counted at the
// subscribers, loss reported; or latency percentiles at a fixed rate.
//
// Debian ships no NATS C client, so this is a minimal one for the text
// protocol (INFO, CONNECT, PUB, SUB, MSG, PING/PONG), over plain TCP or TLS.
// With TLS, nats-server 2.9 sends INFO in plaintext with "tls_required":true
// and the client then upgrades the socket (OpenSSL) before CONNECT.
// Like the official clients, the publisher batches: PUBs are appended to a
// buffer that is written when it reaches 32 KiB or at each pacing tick; the
// subscribers read big chunks and parse them. --sub-port puts the subscribers
// on another node of a cluster than the publisher (bench/run-federation).
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "peer_bench.hpp"

namespace {

using peer_bench::Clock;

std::string ssl_error() {
  char buf[256];
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// One connection to nats-server: TCP, optionally upgraded to TLS, non-blocking
// after the handshake.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { close(); }

  void close() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    len_ = 0;
  }

  // Connects, reads INFO, upgrades to TLS if asked, sends CONNECT and PING
  // and waits for the PONG (the server has then processed CONNECT).
  bool open(int port, bool tls, const std::string& cafile, const std::string& name) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return fail("connect");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    // INFO arrives in plaintext; read it byte by byte so that nothing of
    // the TLS handshake that follows is swallowed.
    std::string info;
    while (info.size() < 65536 && (info.size() < 2 || info.compare(info.size() - 2, 2, "\r\n"))) {
      char c;
      const ssize_t r = ::recv(fd_, &c, 1, 0);
      if (r <= 0) return fail("reading INFO");
      info.push_back(c);
    }
    if (info.rfind("INFO ", 0) != 0) {
      std::fprintf(stderr, "bench: expected INFO, got %s", info.c_str());
      return false;
    }
    const bool server_tls = info.find("\"tls_required\":true") != std::string::npos;
    if (server_tls != tls) {
      std::fprintf(stderr, "bench: the server %s TLS; %s --tls\n",
                   server_tls ? "requires" : "does not offer", server_tls ? "use" : "drop");
      return false;
    }
    if (tls && !start_tls(cafile)) return false;
    const int flags = ::fcntl(fd_, F_GETFL, 0);
    ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);

    const std::string connect = std::string("CONNECT {\"verbose\":false,\"pedantic\":false,") +
                                "\"tls_required\":" + (tls ? "true" : "false") + ",\"name\":\"" +
                                name +
                                "\",\"lang\":\"cpp\",\"version\":\"0.1\",\"protocol\":1,"
                                "\"echo\":false}\r\nPING\r\n";
    if (!write_all(connect.data(), connect.size())) return false;
    return wait_pong();
  }

  bool write_all(const char* p, std::size_t n) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (n > 0) {
      short want = POLLOUT;
      ssize_t r;
      if (ssl_ != nullptr) {
        const int w = SSL_write(ssl_, p, static_cast<int>(n));
        if (w > 0) {
          r = w;
        } else {
          const int e = SSL_get_error(ssl_, w);
          if (e == SSL_ERROR_WANT_READ)
            want = POLLIN;
          else if (e != SSL_ERROR_WANT_WRITE)
            return fail_tls("TLS write");
          r = -1;
        }
      } else {
        r = ::send(fd_, p, n, MSG_NOSIGNAL);
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return fail("send");
      }
      if (r > 0) {
        p += r;
        n -= static_cast<std::size_t>(r);
        continue;
      }
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "bench: write stalled for 10 s\n");
        return false;
      }
      pollfd pfd{fd_, want, 0};
      ::poll(&pfd, 1, 100);
    }
    return true;
  }

  // Reads what is there into the input buffer: >0 bytes read, 0 nothing
  // within `timeout_ms`, <0 connection closed or failed.
  long read_some(int timeout_ms) {
    constexpr std::size_t kChunk = 256 * 1024;
    if (in_.size() < len_ + kChunk) in_.resize(len_ + kChunk);  // grows rarely, never shrinks
    for (int attempt = 0; attempt < 2; ++attempt) {
      short want = POLLIN;
      long r;
      if (ssl_ != nullptr) {
        const int got = SSL_read(ssl_, in_.data() + len_, static_cast<int>(kChunk));
        if (got > 0) {
          r = got;
        } else {
          const int e = SSL_get_error(ssl_, got);
          if (e == SSL_ERROR_WANT_WRITE)
            want = POLLOUT;
          else if (e != SSL_ERROR_WANT_READ)
            return -1;
          r = 0;
        }
      } else {
        r = ::recv(fd_, in_.data() + len_, kChunk, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
          return -1;
        if (r < 0) r = 0;
      }
      if (r > 0) {
        len_ += static_cast<std::size_t>(r);
        return r;
      }
      if (attempt > 0 || timeout_ms <= 0) return 0;
      pollfd pfd{fd_, want, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return 0;
    }
    return 0;
  }

  // Parses complete protocol lines in the input buffer: MSG payloads go to
  // `on_msg`, PING is answered. Returns false on -ERR or a broken stream.
  bool parse(const std::function<void(const char*, std::size_t)>& on_msg) {
    std::size_t pos = 0;
    bool ok = true;
    std::string pongs;
    while (pos < len_) {
      const char* base = in_.data() + pos;
      const std::size_t avail = len_ - pos;
      const void* cr = std::memchr(base, '\r', avail);
      if (cr == nullptr) break;
      const std::size_t line_len = static_cast<std::size_t>(static_cast<const char*>(cr) - base);
      if (line_len + 2 > avail) break;  // the '\n' has not arrived yet
      if (line_len > 4 && std::memcmp(base, "MSG ", 4) == 0) {
        // MSG <subject> <sid> [reply-to] <#bytes>: the size is the last token.
        std::size_t k = line_len;
        while (k > 0 && base[k - 1] != ' ') --k;
        const std::size_t bytes = std::strtoul(base + k, nullptr, 10);
        if (line_len + 2 + bytes + 2 > avail) break;  // payload incomplete
        on_msg(base + line_len + 2, bytes);
        pos += line_len + 2 + bytes + 2;
        continue;
      }
      if (line_len == 4 && std::memcmp(base, "PING", 4) == 0) {
        pongs += "PONG\r\n";
      } else if (line_len == 4 && std::memcmp(base, "PONG", 4) == 0) {
        ++pongs_seen_;
      } else if (line_len >= 4 && std::memcmp(base, "-ERR", 4) == 0) {
        std::fprintf(stderr, "bench: server: %.*s\n", static_cast<int>(line_len), base);
        ok = false;
      }  // INFO (cluster updates) and +OK are ignored
      pos += line_len + 2;
    }
    if (pos > 0) {
      std::memmove(in_.data(), in_.data() + pos, len_ - pos);
      len_ -= pos;
    }
    if (!pongs.empty() && !write_all(pongs.data(), pongs.size())) ok = false;
    return ok;
  }

  bool wait_pong() {
    const std::uint64_t before = pongs_seen_;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (pongs_seen_ == before && Clock::now() < deadline) {
      if (read_some(100) < 0) return fail("connection closed before PONG");
      if (!parse([](const char*, std::size_t) {})) return false;
    }
    if (pongs_seen_ == before) {
      std::fprintf(stderr, "bench: no PONG from the server\n");
      return false;
    }
    return true;
  }

 private:
  bool start_tls(const std::string& cafile) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return fail_tls("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(ctx_, cafile.c_str(), nullptr) != 1)
      return fail_tls("loading " + cafile);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return fail_tls("SSL_new");
    // The certificate must name the address we dialled.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
    SSL_set_fd(ssl_, fd_);
    if (SSL_connect(ssl_) != 1) return fail_tls("TLS handshake");
    return true;
  }

  bool fail(const std::string& what) {
    std::fprintf(stderr, "bench: %s: %s\n", what.c_str(), std::strerror(errno));
    return false;
  }
  bool fail_tls(const std::string& what) {
    std::fprintf(stderr, "bench: %s: %s\n", what.c_str(), ssl_error().c_str());
    return false;
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::vector<char> in_;  // received bytes: [0, len_) not parsed yet
  std::size_t len_ = 0;
  std::uint64_t pongs_seen_ = 0;
};

const char* const kSubject = "bench.data";

class NatsPublisher : public peer_bench::Publisher {
 public:
  explicit NatsPublisher(Conn& c) : conn_(c) { buf_.reserve(kFlushAt + 4096); }

  bool send(const char* data, std::size_t n) override {
    if (failed_) return false;
    if (n != head_size_) {  // the header only changes with the size
      head_ = std::string("PUB ") + kSubject + " " + std::to_string(n) + "\r\n";
      head_size_ = n;
    }
    buf_.append(head_);
    buf_.append(data, n);
    buf_.append("\r\n", 2);
    if (buf_.size() >= kFlushAt) flush();
    return !failed_;
  }
  void flush() override {
    if (buf_.empty() || failed_) return;
    if (!conn_.write_all(buf_.data(), buf_.size())) failed_ = true;
    buf_.clear();
  }
  void service() override {
    if (failed_) return;
    if (conn_.read_some(0) < 0 || !conn_.parse([](const char*, std::size_t) {})) failed_ = true;
  }
  bool failed() const { return failed_; }

 private:
  static constexpr std::size_t kFlushAt = 32 * 1024;
  Conn& conn_;
  std::string buf_;
  std::string head_;
  std::size_t head_size_ = static_cast<std::size_t>(-1);
  bool failed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  peer_bench::Options o;
  CLI::App app{"curvebus-bench-nats: nats-server, 1 publisher -> N subscribers, on 127.0.0.1"};
  o.add_to(app);
  int sub_port = 0;
  app.add_option("--sub-port", sub_port,
                 "Subscribers connect to this port (another node of a cluster; default --port)");
  CLI11_PARSE(app, argc, argv);
  if (!o.valid()) return 1;
  if (sub_port == 0) sub_port = o.port;

  peer_bench::Sinks sinks(o.subscribers);
  std::atomic<bool> stop{false};
  std::atomic<int> up{0}, failed{0};
  std::atomic<std::uint64_t> reconnects{0};
  std::vector<std::thread> subs;
  for (int i = 0; i < o.subscribers; ++i) {
    subs.emplace_back([&, i] {
      peer_bench::Sink& sink = sinks[i];
      auto on_msg = [&sink](const char* p, std::size_t n) { sink.on_payload(p, n); };
      Conn c;
      const std::string sub = std::string("SUB ") + kSubject + " 1\r\nPING\r\n";
      auto join = [&] {
        return c.open(sub_port, o.tls, o.cafile, "bench-sub-" + std::to_string(i)) &&
               c.write_all(sub.data(), sub.size()) && c.wait_pong();
      };
      if (!join()) {
        ++failed;
        ++up;
        return;
      }
      ++up;
      while (!stop.load(std::memory_order_relaxed)) {
        const long r = c.read_some(100);
        if (r > 0 && c.parse(on_msg)) continue;
        if (r == 0) continue;
        // Closed (a slow consumer is cut by the server) or -ERR: rejoin, counted.
        ++reconnects;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        while (!stop.load() && !join()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
  }
  while (up.load() < o.subscribers) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  int rc = 0;
  if (failed.load() > 0) {
    std::fprintf(stderr, "bench: %d subscriber(s) could not connect\n", failed.load());
    rc = 2;
  }

  Conn pc;
  bool measured = false;
  if (rc == 0 && pc.open(o.port, o.tls, o.cafile, "bench-pub")) {
    NatsPublisher pub(pc);
    peer_bench::Driver driver(o, pub, sinks);
    measured = driver.measure() && !pub.failed();
    stop = true;
    for (auto& t : subs) t.join();
    if (measured)
      driver.report(o.tls ? "nats-tls" : "nats",
                    " reconnects=" + std::to_string(reconnects.load()));
  }
  stop = true;
  for (auto& t : subs)
    if (t.joinable()) t.join();
  if (!measured && rc == 0) rc = 2;
  return rc;
}
