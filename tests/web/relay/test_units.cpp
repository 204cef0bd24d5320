// curvebus-web's building blocks in process: the relay's ring buffer against
// a model, the static path check, the Origin allow-list, content types.
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <deque>
#include <fstream>
#include <random>

#include "data_dirs.hpp"
#include "fixture.hpp"
#include "origin.hpp"
#include "ring_buffer.hpp"

namespace curvebus::web {
namespace {

using curvebus::test::TempDir;

std::size_t size_of(const boost::asio::mutable_buffer& b) {
  return b.size();
}

}  // namespace

TEST_CASE("the ring buffer hands out bytes in order and never more room than its capacity",
          "[web][unit]") {
  RingBuffer ring;
  CHECK(size_of(ring.writable()) == 0);  // nothing before allocate()
  ring.allocate(8);
  CHECK(size_of(ring.writable()) == 8);
  CHECK(ring.readable().size() == 0);

  // Against a model: random reads into writable() and writes from readable(),
  // as the relay makes them.
  std::mt19937 rng(7);
  std::deque<char> model;
  char next = 0;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 2) {
      const auto room = ring.writable();
      REQUIRE(room.size() <= ring.capacity() - ring.size());
      if (ring.size() < ring.capacity()) REQUIRE(room.size() > 0);
      const std::size_t n = room.size() ? rng() % (room.size() + 1) : 0;
      for (std::size_t i = 0; i < n; ++i) {
        static_cast<char*>(room.data())[i] = next;
        model.push_back(next++);
      }
      ring.commit(n);
    } else {
      const auto data = ring.readable();
      if (!ring.empty()) REQUIRE(data.size() > 0);
      const std::size_t n = data.size() ? rng() % (data.size() + 1) : 0;
      for (std::size_t i = 0; i < n; ++i) {
        REQUIRE(static_cast<const char*>(data.data())[i] == model.front());
        model.pop_front();
      }
      ring.consume(n);
    }
    REQUIRE(ring.size() == model.size());
    REQUIRE(ring.size() <= ring.capacity());
  }
}

TEST_CASE("a read into the free span and a write from the data span never overlap", "[web][unit]") {
  RingBuffer ring;
  ring.allocate(8);
  ring.commit(6);
  ring.consume(4);  // data [4,6), free [6,8) then [0,4)
  const auto room = ring.writable();
  const auto data = ring.readable();
  const char* room_begin = static_cast<const char*>(room.data());
  const char* data_begin = static_cast<const char*>(data.data());
  CHECK(room.size() == 2);
  CHECK(data.size() == 2);
  CHECK((room_begin >= data_begin + data.size() || room_begin + room.size() <= data_begin));
  ring.commit(2);  // full up to the end; the next free span wraps to the start
  CHECK(size_of(ring.writable()) == 4);
  ring.consume(4);
  CHECK(ring.empty());
  ring.rewind_if_empty();
  CHECK(size_of(ring.writable()) == 8);
}

TEST_CASE("static paths resolve inside their root and nowhere else", "[web][unit]") {
  TempDir tmp("curvebus-web-unit");
  const std::string root = tmp / "root";
  ::mkdir(root.c_str(), 0755);
  ::mkdir((root + "/sub").c_str(), 0755);
  std::ofstream(root + "/index.html") << "i";
  std::ofstream(root + "/sub/a b.js") << "a";
  std::ofstream(tmp / "outside.txt") << "o";
  REQUIRE(::symlink((tmp / "outside.txt").c_str(), (root + "/out").c_str()) == 0);

  auto ok = [&](const std::string& path, const std::string& file) {
    INFO(path);
    const ResolvedPath r = resolve_under(root, path);
    CHECK(r.check == PathCheck::kOk);
    char real[PATH_MAX];
    REQUIRE(::realpath((root + file).c_str(), real));
    CHECK(r.file == real);
  };
  ok("/", "/index.html");
  ok("/index.html", "/index.html");
  ok("//index.html", "/index.html");
  ok("/sub/a%20b.js", "/sub/a b.js");
  for (const char* path : {"/..", "/../outside.txt", "/%2e%2e/outside.txt",
                           "/sub/../../outside.txt", "/sub%2f..%2f..%2foutside.txt", "/.git",
                           "/out", "/a%5cb", "/%00", "/%4", "/%g0", "relative"}) {
    INFO(path);
    CHECK(resolve_under(root, path).check == PathCheck::kRefused);
  }
  CHECK(resolve_under(root, "/missing.js").check == PathCheck::kNotFound);
  CHECK(resolve_under(root, "/sub/").check == PathCheck::kNotFound);  // no sub/index.html
  CHECK(resolve_under(tmp / "no-such-root", "/index.html").check == PathCheck::kNotFound);
}

TEST_CASE("the Origin allow-list holds the relay's own origins and the ones added", "[web][unit]") {
  const OriginPolicy loopback(false, "127.0.0.1", 7691, {}, false);
  CHECK(loopback.allows(std::string_view("http://127.0.0.1:7691")));
  CHECK(loopback.allows(std::string_view("http://localhost:7691")));
  CHECK(loopback.allows(std::string_view("http://[::1]:7691")));
  CHECK(loopback.allows(std::string_view("http://LOCALHOST:7691/")));
  CHECK_FALSE(loopback.allows(std::string_view("https://127.0.0.1:7691")));  // other scheme
  CHECK_FALSE(loopback.allows(std::string_view("http://127.0.0.1:7692")));
  CHECK_FALSE(loopback.allows(std::string_view("http://127.0.0.1")));
  CHECK_FALSE(loopback.allows(std::string_view("null")));
  CHECK(loopback.allows(std::nullopt));  // a program, not a page

  const OriginPolicy named(true, "robot.example", 443, {"http://laptop.example:8000", "null"},
                           true);
  CHECK(named.allows(std::string_view("https://robot.example")));  // default port omitted
  CHECK(named.allows(std::string_view("https://robot.example:443")));
  CHECK_FALSE(named.allows(std::string_view("https://localhost:443")));
  CHECK(named.allows(std::string_view("http://laptop.example:8000")));
  CHECK(named.allows(std::string_view("null")));
  CHECK_FALSE(named.allows(std::nullopt));  // --require-origin

  const OriginPolicy any(false, "127.0.0.1", 7691, {"*"}, false);
  CHECK(any.allows(std::string_view("https://anything.example")));

  const OriginPolicy wildcard(false, "0.0.0.0", 7691, {}, false);
  CHECK(wildcard.allows(std::string_view("http://127.0.0.1:7691")));
  CHECK(wildcard.origins().size() > 3);  // the host name and interface addresses too
}

TEST_CASE("files get the content type a browser needs for ES modules and styles", "[web][unit]") {
  CHECK(content_type_for("/a/app.js") == "text/javascript; charset=utf-8");
  CHECK(content_type_for("x.mjs") == "text/javascript; charset=utf-8");
  CHECK(content_type_for("style.css") == "text/css; charset=utf-8");
  CHECK(content_type_for("index.html") == "text/html; charset=utf-8");
  CHECK(content_type_for("curvebus.proto") == "text/plain; charset=utf-8");
  CHECK(content_type_for("/dir.js/file") == "application/octet-stream");
  CHECK(content_type_for("noext") == "application/octet-stream");
}

}  // namespace curvebus::web
