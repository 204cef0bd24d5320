// curvebus-web as a public relay: what it serves, and each limit it holds.
// The broker side is a TCP server of the test's own (echo, flood, sink), so
// every byte is known; test_curve.cpp runs a real CURVE session through it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <random>

#include "curvebus/certificate.hpp"
#include "proc_stats.hpp"
#include "relay_env.hpp"

namespace curvebus::web::test {
namespace {

using curvebus::test::BrokerHarness;
using curvebus::test::read_file;
using curvebus::test::wait_until;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// A relay in front of a test server: any broker key will do (the relay only
// shows it in /config.json).
struct Env {
  TempDir tmp{"curvebus-web-test"};
  std::string key = generate_keypair().public_key;
  std::vector<std::string> args(const std::string& broker, std::vector<std::string> more = {}) {
    std::vector<std::string> a = {"--broker", broker, "--server-key", key};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  // web/static stand-in: index.html, app.js, sub/notes.txt, a hidden file and
  // a symbolic link to a secret beside (outside) the root.
  std::string make_static() {
    const std::string root = tmp / "static";
    ::mkdir(root.c_str(), 0755);
    ::mkdir((root + "/sub").c_str(), 0755);
    write(root + "/index.html",
          "<!doctype html><title>t</title><script src=\"app.js\"></script>\n");
    write(root + "/app.js", "export const answer = 42;\n");
    write(root + "/sub/notes.txt", "notes\n");
    write(root + "/.hidden", "TOP-SECRET hidden\n");
    write(tmp / "secret.txt", "TOP-SECRET outside the root\n");
    (void)!::symlink((tmp / "secret.txt").c_str(), (root + "/link").c_str());
    return root;
  }
};

// Polls /healthz from a fresh address until it answers 200 (a cap may
// refuse the first tries); `refused` counts the tries the relay refused.
std::map<std::string, std::uint64_t> healthz_when_free(RelayProcess& relay,
                                                       const std::string& source, int& refused) {
  for (int i = 0; i < 100; ++i) {
    auto h = relay.healthz(source);
    if (!h.empty()) return h;
    ++refused;
    std::this_thread::sleep_for(50ms);
  }
  return {};
}

}  // namespace

TEST_CASE("static files are served with the security headers and revalidated by Last-Modified",
          "[web][http]") {
  Env env;
  const std::string root = env.make_static();
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--static", root}));
  REQUIRE(relay.started());

  const HttpResponse page = http_get(relay.port(), "/");
  REQUIRE(page.status == 200);
  CHECK(page.body == read_file(root + "/index.html"));
  CHECK(page.header("content-type") == "text/html; charset=utf-8");
  const std::string csp = page.header("content-security-policy");
  CHECK(contains(csp, "default-src 'self'"));
  CHECK(contains(csp, "script-src 'self'"));
  CHECK(contains(csp, "connect-src 'self' ws: wss:"));
  CHECK(contains(csp, "frame-ancestors 'none'"));
  CHECK_FALSE(contains(csp, "unsafe-inline"));
  CHECK(page.header("x-content-type-options") == "nosniff");
  CHECK(page.header("referrer-policy") == "no-referrer");
  CHECK(page.header("cache-control") == "no-cache");
  REQUIRE_FALSE(page.header("last-modified").empty());

  const HttpResponse js = http_get(relay.port(), "/app.js");
  CHECK(js.status == 200);
  CHECK(js.header("content-type") == "text/javascript; charset=utf-8");
  CHECK(js.body == "export const answer = 42;\n");
  CHECK(http_get(relay.port(), "/sub/notes.txt").body == "notes\n");

  HttpRequest head;
  head.method = "HEAD";
  const HttpResponse h = fetch(relay.port(), head);
  CHECK(h.status == 200);
  CHECK(h.header("content-length") == std::to_string(page.body.size()));
  CHECK(h.body.empty());

  HttpRequest again;
  again.headers["If-Modified-Since"] = page.header("last-modified");
  const HttpResponse not_modified = fetch(relay.port(), again);
  CHECK(not_modified.status == 304);
  CHECK(not_modified.body.empty());
  CHECK(not_modified.header("content-security-policy") == csp);

  const HttpResponse missing = http_get(relay.port(), "/nope.html");
  CHECK(missing.status == 404);
  CHECK(missing.header("content-security-policy") == csp);
  CHECK(missing.header("x-content-type-options") == "nosniff");
  CHECK(missing.header("cache-control") == "no-store");
}

TEST_CASE("static paths that leave the root are refused with 403 and counted", "[web][http]") {
  Env env;
  const std::string root = env.make_static();
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--static", root}));
  REQUIRE(relay.started());

  const std::vector<std::string> refused = {"/../secret.txt",
                                            "/%2e%2e/secret.txt",
                                            "/sub/../../secret.txt",
                                            "/..%2fsecret.txt",
                                            "/sub/%2E%2E/%2E%2E/secret.txt",
                                            "/.hidden",
                                            "/link",  // a symbolic link out of the root
                                            "/sub%5c..%5c..%5csecret.txt",
                                            "/%00",
                                            "/%zz"};
  for (const auto& target : refused) {
    INFO(target);
    const HttpResponse r = http_get(relay.port(), target);
    CHECK(r.status == 403);
    CHECK_FALSE(contains(r.body, "TOP-SECRET"));
    CHECK(contains(r.header("content-security-policy"), "default-src 'self'"));
  }
  // Not a way out either: the root's own etc/passwd, which does not exist.
  const HttpResponse passwd = http_get(relay.port(), "//etc/passwd");
  CHECK(passwd.status == 404);
  CHECK_FALSE(contains(passwd.body, "root:"));
  CHECK(relay.health("refusals.path") == refused.size());
}

TEST_CASE("with no broker flags the relay finds the broker's endpoint and key in the curvebus home",
          "[web][http]") {
  curvebus::test::TempDir tmp("curvebus-web-home");
  ::mkdir((tmp / "broker").c_str(), 0700);
  BrokerHarness broker(CURVEBUS_BROKER_BIN, tmp / "broker");
  REQUIRE(broker.start());
  const std::string home = tmp / "home";
  ::mkdir(home.c_str(), 0700);
  ::mkdir((home + "/keys").c_str(), 0700);
  write(home + "/keys/broker", read_file(broker.public_file("broker")));
  write(home + "/endpoint", broker.endpoint() + "\n");
  const std::map<std::string, std::string> env = {
      {"CURVEBUS_HOME", home}, {"CURVEBUS_ENDPOINT", ""}, {"CURVEBUS_SERVER_KEY", ""}};

  RelayProcess relay(tmp.path(), {}, env);
  REQUIRE(relay.started());
  // Run from the build tree, the page is the source tree's.
  CHECK(contains(relay.log(),
                 std::string("static root ") + CURVEBUS_SOURCE_DIR + "/web/static (source tree)"));

  const HttpResponse config = http_get(relay.port(), "/config.json");
  REQUIRE(config.status == 200);
  CHECK(config.header("content-type") == "application/json");
  CHECK(config.header("cache-control") == "no-store");
  CHECK(contains(config.body, "\"brokerKey\":\"" + broker.server_public_key() + "\""));
  CHECK(contains(config.body, "\"brokerKeyFingerprint\":\"" +
                                  key_fingerprint(broker.server_public_key()) + "\""));
  CHECK(contains(config.body, "\"brokerEndpoint\":\"" + broker.endpoint() + "\""));
  CHECK(contains(config.body, "\"relayPath\":\"/bus\""));
  CHECK(contains(config.body, std::string("\"version\":\"") + CURVEBUS_VERSION + "\""));

  const std::string src = CURVEBUS_SOURCE_DIR;
  const HttpResponse proto = http_get(relay.port(), "/proto/curvebus.proto");
  CHECK(proto.status == 200);
  CHECK(proto.body == read_file(src + "/proto/curvebus.proto"));
  CHECK(http_get(relay.port(), "/proto/robot.proto").body == read_file(src + "/proto/robot.proto"));
  CHECK(http_get(relay.port(), "/proto/../CMakeLists.txt").status != 200);

  // TweetNaCl-js from its Debian package (scripts/setup-deps installs it).
  const std::string nacl = "/usr/share/nodejs/tweetnacl/nacl-fast.min.js";
  REQUIRE(!read_file(nacl).empty());
  const HttpResponse vendor = http_get(relay.port(), "/vendor/nacl-fast.min.js");
  CHECK(vendor.status == 200);
  CHECK(vendor.header("content-type") == "text/javascript; charset=utf-8");
  CHECK(vendor.body == read_file(nacl));
  const HttpResponse unknown = http_get(relay.port(), "/vendor/other.js");
  CHECK(unknown.status == 404);
  CHECK(contains(unknown.body, "no such vendor file"));
}

TEST_CASE("/vendor files are looked up in --vendor-dir first", "[web][http]") {
  Env env;
  const std::string dir = env.tmp / "vendor";
  ::mkdir(dir.c_str(), 0755);
  write(dir + "/nacl-fast.min.js", "/* a local build */\n");
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--vendor-dir", dir}));
  REQUIRE(relay.started());
  CHECK(http_get(relay.port(), "/vendor/nacl-fast.min.js").body == "/* a local build */\n");
}

TEST_CASE("the relay refuses to start without a broker public key, or with a secret one", "[web]") {
  curvebus::test::TempDir tmp("curvebus-web-nokey");
  const std::map<std::string, std::string> env = {
      {"CURVEBUS_HOME", tmp / "empty"}, {"CURVEBUS_ENDPOINT", ""}, {"CURVEBUS_SERVER_KEY", ""}};
  auto none = curvebus::test::run({CURVEBUS_WEB_BIN, "--listen", "127.0.0.1:0"}, tmp / "none", env);
  CHECK(none.status == 1);
  CHECK(contains(none.err, "no broker public key"));

  REQUIRE(write_certificate(tmp / "keys", "broker", generate_keypair()).ok());
  auto secret = curvebus::test::run(
      {CURVEBUS_WEB_BIN, "--listen", "127.0.0.1:0", "--server-key", tmp / "keys/broker_secret"},
      tmp / "secret", env);
  CHECK(secret.status == 1);
  CHECK(contains(secret.err, "PUBLIC"));
}

TEST_CASE("each WebSocket is relayed byte for byte, both ways, to a new broker connection",
          "[web][relay]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint()));
  REQUIRE(relay.started());

  WsClient a(relay.port(), {});
  REQUIRE(a.open());
  // Message sizes that a buffer of 64 KiB must split and merge.
  std::mt19937 rng(20261201);
  std::string expected;
  for (std::size_t size : {1u, 7u, 1000u, 65536u, 200000u, 3u}) {
    std::string blob(size, '\0');
    for (auto& c : blob) c = static_cast<char>(rng());
    REQUIRE(a.send(blob));
    expected += blob;
  }
  const std::string got = a.read_bytes(expected.size(), 10s);
  CHECK(got.size() == expected.size());
  CHECK(got == expected);

  WsClient b(relay.port(), {});
  REQUIRE(b.open());
  REQUIRE(b.send("the second relay"));
  CHECK(b.read_bytes(16, 5s) == "the second relay");
  CHECK(echo.connections() == 2);

  const auto h = relay.healthz();
  CHECK(h.at("bytes.toBroker") == expected.size() + 16);
  CHECK(h.at("bytes.toBrowser") == expected.size() + 16);
  CHECK(h.at("connections.relaysOpen") == 2);
  CHECK(h.at("connections.relaysTotal") == 2);
  CHECK(h.at("bytes.bufferedPeak") <= 65536);

  a.close();
  b.close();
  CHECK(wait_until([&] { return relay.health("connections.relaysOpen") == 0; }, 5000ms));
  CHECK(contains(relay.log(), "relay closed peer=127.0.0.1:"));
}

TEST_CASE(
    "the total and the per-address caps refuse the next connection with 503/429 or close 1008",
    "[web][limits]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--max-connections", "3",
                                                                "--max-per-address", "2"}));
  REQUIRE(relay.started());
  auto from = [](const std::string& address) {
    WsClient::Options o;
    o.source_address = address;
    return o;
  };
  auto relayed = [](WsClient& w) { return w.send("x") && w.read_bytes(1, 5s) == "x"; };

  WsClient a1(relay.port(), from("127.0.0.1")), a2(relay.port(), from("127.0.0.1"));
  REQUIRE(relayed(a1));
  REQUIRE(relayed(a2));

  WsClient a3(relay.port(), from("127.0.0.1"));
  REQUIRE(a3.open());  // the page gets a reason it can show, not a bare failure
  CHECK(a3.wait_close(5s) ==
        std::make_pair(1008, std::string("too many connections from your address")));
  HttpRequest get;
  get.source_address = "127.0.0.1";
  const HttpResponse busy = fetch(relay.port(), get);
  CHECK(busy.status == 429);
  CHECK(busy.header("retry-after") == "5");
  CHECK(contains(busy.header("content-security-policy"), "default-src 'self'"));

  WsClient b1(relay.port(), from("127.0.0.2"));
  REQUIRE(relayed(b1));  // another address: the third connection of three

  WsClient c1(relay.port(), from("127.0.0.3"));
  REQUIRE(c1.open());
  CHECK(c1.wait_close(5s) == std::make_pair(1008, std::string("relay full: too many connections")));
  get.source_address = "127.0.0.3";
  CHECK(fetch(relay.port(), get).status == 503);
  CHECK(echo.connections() == 3);  // refused connections never reach the broker

  // A closed connection frees its place.
  a1.close();
  int extra = 0;
  const auto h = healthz_when_free(relay, "127.0.0.4", extra);
  REQUIRE_FALSE(h.empty());
  CHECK(h.at("refusals.addressCap") == 2);
  CHECK(h.at("refusals.connectionCap") == 2 + static_cast<std::uint64_t>(extra));
  WsClient a4(relay.port(), from("127.0.0.1"));
  CHECK(relayed(a4));
}

TEST_CASE("a browser that never reads makes the relay stop reading the broker, not grow",
          "[web][limits]") {
  Env env;
  TcpServer flood(TcpServer::Mode::kFlood);
  RelayProcess relay(env.tmp.path(), env.args(flood.endpoint(), {"--max-buffered", "65536"}));
  REQUIRE(relay.started());
  const long rss_before = curvebus::test::rss_kb(relay.process().pid());

  WsClient::Options never;
  never.read = false;
  WsClient w(relay.port(), never);
  REQUIRE(w.open());
  REQUIRE(wait_until([&] { return flood.bytes_written() > 0; }, 5000ms));
  // The broker side soon cannot write any more: everything in between is full
  // and the relay has stopped reading it.
  std::uint64_t last = 0;
  const bool still = wait_until(
      [&] {
        const std::uint64_t now = flood.bytes_written();
        const bool flat = now == last;
        last = now;
        return flat;
      },
      20000ms, 1000ms);
  REQUIRE(still);
  const std::uint64_t stalled = flood.bytes_written();
  INFO("the broker side wrote " << stalled << " bytes before it was stopped");
  CHECK(stalled < 64u * 1024 * 1024);  // kernel buffers plus the relay's 64 KiB
  const auto h = relay.healthz();
  CHECK(h.at("bytes.buffered") <= 65536);
  CHECK(h.at("bytes.bufferedPeak") <= 65536);
  CHECK(h.at("backpressure.toBrowser") >= 1);
  if (curvebus::test::kRssMeaningful) {
    const long rss_after = curvebus::test::rss_kb(relay.process().pid());
    INFO("relay RSS " << rss_before << " kB -> " << rss_after << " kB");
    CHECK(rss_after - rss_before < curvebus::test::kRssGrowthBoundKb);
  }

  // Paused, not dropped: once the browser reads, the bytes flow again, intact.
  w.start_reading();
  const std::string got = w.read_bytes(stalled + (1u << 20), 20000ms);
  CHECK(got.size() >= stalled + (1u << 20));
  CHECK(got.find_first_not_of('x') == std::string::npos);
  CHECK(flood.bytes_written() > stalled);
}

TEST_CASE("a broker that never reads makes the relay stop reading the browser, not grow",
          "[web][limits]") {
  Env env;
  TcpServer sink(TcpServer::Mode::kSink);
  RelayProcess relay(env.tmp.path(), env.args(sink.endpoint(), {"--max-buffered", "65536"}));
  REQUIRE(relay.started());
  const long rss_before = curvebus::test::rss_kb(relay.process().pid());

  WsClient w(relay.port(), {});
  REQUIRE(w.open());
  const std::string chunk(64 * 1024, 'y');
  const std::uint64_t give_up = 256u << 20;
  std::uint64_t sent = 0;
  while (sent < give_up && w.send(chunk, 2000ms)) sent += chunk.size();
  INFO("the browser sent " << sent << " bytes before a send blocked");
  REQUIRE(sent < give_up);  // the relay pushed back
  CHECK(sent < 64u * 1024 * 1024);
  const auto h = relay.healthz();
  CHECK(h.at("backpressure.toBroker") >= 1);
  CHECK(h.at("bytes.bufferedPeak") <= 65536);
  CHECK(h.at("bytes.toBroker") <= sent);
  if (curvebus::test::kRssMeaningful) {
    const long rss_after = curvebus::test::rss_kb(relay.process().pid());
    INFO("relay RSS " << rss_before << " kB -> " << rss_after << " kB");
    CHECK(rss_after - rss_before < curvebus::test::kRssGrowthBoundKb);
  }
}

TEST_CASE("a WebSocket message over --max-message is closed with 1009 and counted",
          "[web][limits]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--max-message", "1024"}));
  REQUIRE(relay.started());
  WsClient w(relay.port(), {});
  REQUIRE(w.open());
  REQUIRE(w.send(std::string(1000, 'a')));
  CHECK(w.read_bytes(1000, 5s) == std::string(1000, 'a'));
  REQUIRE(w.send(std::string(2000, 'b')));
  const auto closed = w.wait_close(5s);
  INFO("close " << closed.first << " " << closed.second);
  CHECK(closed.first == 1009);
  const auto h = relay.healthz();
  CHECK(h.at("refusals.messageTooBig") == 1);
  CHECK(h.at("bytes.toBroker") == 1000);  // nothing of the oversized message
}

TEST_CASE("WebSockets from another site's page are refused with 403, own origins are accepted",
          "[web][limits]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(),
                     env.args(echo.endpoint(), {"--allow-origin", "https://robot.example"}));
  REQUIRE(relay.started());
  const std::string port = std::to_string(relay.port());
  auto with_origin = [](const std::string& origin) {
    WsClient::Options o;
    o.origin = origin;
    return o;
  };
  const std::vector<std::string> own = {"http://127.0.0.1:" + port, "http://localhost:" + port,
                                        "http://[::1]:" + port,     "HTTP://LocalHost:" + port,
                                        "https://robot.example",    ""};
  for (const auto& origin : own) {
    INFO("origin '" << origin << "'");
    WsClient w(relay.port(), with_origin(origin));
    CHECK(w.open());
  }
  const std::vector<std::string> foreign = {"http://evil.example", "http://127.0.0.1:1",
                                            "http://127.0.0.1:" + port + ".evil.example", "null"};
  for (const auto& origin : foreign) {
    INFO("origin '" << origin << "'");
    WsClient w(relay.port(), with_origin(origin));
    CHECK_FALSE(w.open());
    CHECK(w.handshake_status() == 403);
  }
  CHECK(relay.health("refusals.origin") == foreign.size());
  CHECK(wait_until([&] { return echo.connections() == 6; }, 5000ms));

  // Stricter: programs must send an Origin; pages opened from a file ("null") may.
  RelayProcess strict(env.tmp.path(),
                      env.args(echo.endpoint(), {"--require-origin", "--allow-origin", "null"}));
  REQUIRE(strict.started());
  WsClient bare(strict.port(), {});
  CHECK_FALSE(bare.open());
  CHECK(bare.handshake_status() == 403);
  WsClient file_page(strict.port(), with_origin("null"));
  CHECK(file_page.open());
}

TEST_CASE("a client that sends no complete request within the handshake timeout gets 408",
          "[web][limits]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--handshake-timeout", "0.5"}));
  REQUIRE(relay.started());
  const RawResult slow = raw_exchange(relay.port(), "GET / HTTP/1.1\r\nHost: x\r\n", 5000ms);
  CHECK(slow.received.rfind("HTTP/1.1 408", 0) == 0);
  CHECK(contains(slow.received, "Content-Security-Policy: "));
  CHECK(slow.closed_by_peer);
  CHECK(slow.elapsed < 4000ms);
  const RawResult silent = raw_exchange(relay.port(), "", 5000ms);
  CHECK(silent.received.rfind("HTTP/1.1 408", 0) == 0);
  CHECK(silent.closed_by_peer);
  CHECK(relay.health("refusals.handshakeTimeout") == 2);
}

TEST_CASE(
    "a relay that moves no byte for --idle-timeout is closed with 1008, traffic keeps it open",
    "[web][limits]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--idle-timeout", "2"}));
  REQUIRE(relay.started());
  WsClient w(relay.port(), {});
  REQUIRE(w.open());
  std::string expected;
  for (int i = 0; i < 10; ++i) {  // 3 s of traffic, a message every 0.3 s
    const std::string m = "ping " + std::to_string(i) + ";";
    REQUIRE(w.send(m));
    expected += m;
    w.idle(300ms);
  }
  CHECK(w.read_bytes(expected.size(), 5s) == expected);
  const auto quiet_from = std::chrono::steady_clock::now();
  const auto closed = w.wait_close(10s);
  const auto quiet = std::chrono::steady_clock::now() - quiet_from;
  CHECK(closed.first == 1008);
  CHECK(contains(closed.second, "idle for 2 s"));
  CHECK(quiet >= 1500ms);
  CHECK(relay.health("refusals.idleTimeout") == 1);
}

TEST_CASE("an unreachable broker closes the WebSocket with 1011 and says so in the reason",
          "[web][limits]") {
  Env env;
  RelayProcess relay(env.tmp.path(), env.args("tcp://127.0.0.1:" + std::to_string(closed_port())));
  REQUIRE(relay.started());
  WsClient w(relay.port(), {});
  REQUIRE(w.open());
  const auto closed = w.wait_close(10s);
  CHECK(closed.first == 1011);
  CHECK(contains(closed.second, "broker unreachable"));
  CHECK(relay.health("refusals.brokerUnreachable") == 1);
}

TEST_CASE("other methods get 405, a plain GET of /bus 426, an oversized head 431", "[web][http]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint()));
  REQUIRE(relay.started());
  HttpRequest post;
  post.method = "POST";
  const HttpResponse r = fetch(relay.port(), post);
  CHECK(r.status == 405);
  CHECK(r.header("allow") == "GET, HEAD");
  CHECK(http_get(relay.port(), "/bus").status == 426);
  WsClient::Options elsewhere;
  elsewhere.target = "/other";
  WsClient w(relay.port(), elsewhere);
  CHECK_FALSE(w.open());
  CHECK(w.handshake_status() == 404);
  HttpRequest big;
  big.headers["X-Filler"] = std::string(10000, 'f');
  CHECK(fetch(relay.port(), big).status == 431);
  const auto h = relay.healthz();
  CHECK(h.at("refusals.method") == 1);
  CHECK(h.at("refusals.badRequest") == 1);
}

TEST_CASE("with --tls-cert/--tls-key the page is served over HTTPS and relayed over wss://",
          "[web][tls]") {
  Env env;
  const std::string cert = env.tmp / "cert.pem", key = env.tmp / "key.pem";
  REQUIRE(make_test_certificate(cert, key));
  const std::string root = env.make_static();
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--static", root, "--tls-cert",
                                                                cert, "--tls-key", key}));
  REQUIRE(relay.started());
  CHECK(contains(relay.log(), "listening on https://127.0.0.1:"));
  HttpRequest get;
  get.tls = true;
  const HttpResponse page = fetch(relay.port(), get);
  CHECK(page.status == 200);
  CHECK(page.body == read_file(root + "/index.html"));
  CHECK(contains(page.header("strict-transport-security"), "max-age="));

  WsClient::Options wss;
  wss.tls = true;
  wss.origin = "https://127.0.0.1:" + std::to_string(relay.port());
  WsClient w(relay.port(), wss);
  REQUIRE(w.open());
  REQUIRE(w.send("over wss"));
  CHECK(w.read_bytes(8, 5s) == "over wss");

  // Plain HTTP on the TLS port is no TLS handshake: closed and counted.
  raw_exchange(relay.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3000ms);
  CHECK(wait_until([&] { return relay.health("refusals.tls") >= 1; }, 5000ms));
}

TEST_CASE("SIGTERM closes open relays with 1001 and the relay exits 0", "[web]") {
  Env env;
  TcpServer echo(TcpServer::Mode::kEcho);
  RelayProcess relay(env.tmp.path(), env.args(echo.endpoint()));
  REQUIRE(relay.started());
  WsClient w(relay.port(), {});
  REQUIRE(w.send("hello"));
  REQUIRE(w.read_bytes(5, 5s) == "hello");
  relay.process().signal(SIGTERM);
  const auto closed = w.wait_close(5s);
  INFO("close " << closed.first << " " << closed.second);
  CHECK(closed == std::make_pair(1001, std::string("relay shutting down")));
  CHECK(relay.process().wait(5000ms) == 0);
}

// Not a test (hidden, run by hand): bytes per second through the relay each
// way (64 KiB messages, plain and TLS), and the round trip of 64 bytes to an
// echo server through the relay and directly.
//   test_web_relay "[.measure]"
TEST_CASE("measure the relay's throughput each way", "[.measure]") {
  Env env;
  {
    TcpServer echo(TcpServer::Mode::kEcho);
    RelayProcess relay(env.tmp.path(), env.args(echo.endpoint(), {"--log-level", "info"}));
    REQUIRE(relay.started());
    WsClient w(relay.port(), {});
    REQUIRE(w.open());
    const std::string ping(64, 'p');
    std::vector<double> relayed_us, direct_us;
    std::size_t expected = 0;
    for (int i = 0; i < 2000; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      REQUIRE(w.send(ping));
      expected += ping.size();
      REQUIRE(w.read_bytes(expected, 5s).size() == expected);
      relayed_us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    {  // the same echo straight over TCP, for comparison
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(echo.port());
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      char buf[64];
      for (int i = 0; i < 2000; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE(::send(fd, ping.data(), ping.size(), 0) == 64);
        std::size_t got = 0;
        while (got < 64) {
          const ssize_t n = ::recv(fd, buf, sizeof buf - got, 0);
          REQUIRE(n > 0);
          got += static_cast<std::size_t>(n);
        }
        direct_us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      ::close(fd);
    }
    for (auto* v : {&relayed_us, &direct_us}) {
      std::sort(v->begin(), v->end());
      WARN("64 B echo round trip " << (v == &relayed_us ? "through the relay" : "direct TCP")
                                   << ": p50 " << (*v)[v->size() / 2] << " us, p99 "
                                   << (*v)[v->size() * 99 / 100] << " us");
    }
  }
  const std::string cert = env.tmp / "cert.pem", key = env.tmp / "key.pem";
  REQUIRE(make_test_certificate(cert, key));
  for (const bool tls : {false, true}) {
    std::vector<std::string> more = {"--log-level", "info"};
    if (tls) more.insert(more.end(), {"--tls-cert", cert, "--tls-key", key});
    WsClient::Options options;
    options.tls = tls;
    {
      TcpServer flood(TcpServer::Mode::kFlood);
      RelayProcess relay(env.tmp.path(), env.args(flood.endpoint(), more));
      REQUIRE(relay.started());
      WsClient w(relay.port(), options);
      REQUIRE(w.open());
      w.drain(500ms);
      const std::uint64_t n = w.drain(3000ms);
      WARN((tls ? "wss" : "ws") << " broker->browser: " << n / 3 / 1e6 << " MB/s");
    }
    {
      TcpServer discard(TcpServer::Mode::kDiscard);
      RelayProcess relay(env.tmp.path(), env.args(discard.endpoint(), more));
      REQUIRE(relay.started());
      WsClient w(relay.port(), options);
      REQUIRE(w.open());
      const std::string chunk(64 * 1024, 'z');
      const auto start = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() - start < 3s) REQUIRE(w.send(chunk));
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      WARN((tls ? "wss" : "ws") << " browser->broker: " << discard.bytes_read() / s / 1e6
                                << " MB/s");
    }
  }
}

}  // namespace curvebus::web::test
