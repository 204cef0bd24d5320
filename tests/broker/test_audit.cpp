// AuditLog: security decisions as JSON lines, aggregated under flood,
// bounded on disk, unforgeable by peer-supplied text.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "audit.hpp"
#include "curvebus/text.hpp"
#include "fixture.hpp"
#include "json_check.hpp"

using curvebus::broker::AuditLog;
using curvebus::test::json_get;
using curvebus::test::JsonObject;
using curvebus::test::JsonReader;
using curvebus::test::JsonValue;
using curvebus::test::TempDir;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string out(static_cast<std::size_t>(std::filesystem::file_size(path)), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

// The lines of a file that must end with a newline.
std::vector<std::string> lines_of(const std::string& path) {
  const std::string all = read_all(path);
  std::vector<std::string> out;
  if (all.empty()) return out;
  REQUIRE(all.back() == '\n');
  std::size_t at = 0;
  while (at < all.size()) {
    const std::size_t nl = all.find('\n', at);
    out.push_back(all.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

JsonObject parse(const std::string& line) {
  auto obj = JsonReader::flat_object(line);
  INFO("line: " << line);
  REQUIRE(obj);
  return *obj;
}

std::string str(const JsonObject& obj, const char* key) {
  const JsonValue* v = json_get(obj, key);
  return v && v->kind == JsonValue::kString ? v->text : "<missing " + std::string(key) + ">";
}

std::uint64_t num(const JsonObject& obj, const char* key) {
  const JsonValue* v = json_get(obj, key);
  REQUIRE(v);
  REQUIRE(v->kind == JsonValue::kNumber);
  return std::stoull(v->text);
}

// "2026-12-01T10:00:00.123456Z": UTC, microseconds.
bool is_utc_timestamp(const std::string& ts) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (ts.size() != shape.size()) return false;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const bool ok = shape[i] == 'd' ? (ts[i] >= '0' && ts[i] <= '9') : ts[i] == shape[i];
    if (!ok) return false;
  }
  const int year = std::stoi(ts.substr(0, 4)), month = std::stoi(ts.substr(5, 2)),
            day = std::stoi(ts.substr(8, 2)), hour = std::stoi(ts.substr(11, 2));
  return year >= 2024 && month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23;
}

bool is_aggregate(const JsonObject& obj) {
  const JsonValue* v = json_get(obj, "aggregated");
  return v && v->kind == JsonValue::kBool && v->text == "true";
}

AuditLog::Options options(const std::string& path) {
  AuditLog::Options o;
  o.path = path;
  return o;
}

}  // namespace

TEST_CASE("audit: each event is one JSON line with ts, event, who and its fields in order",
          "[broker][unit][audit]") {
  TempDir dir("audit");
  AuditLog log(options(dir / "audit.log"));
  REQUIRE(log.open().ok());
  std::string line;
  CHECK(log.record(0, "acl_denied", "alex",
                   {{"op", "publish"},
                    {"topic", "robot/x/cmd"},
                    {"code", "42", true},
                    {"ratio", "-1.5e3", true},
                    {"bad_number", "12abc", true}},
                   &line));
  log.flush();
  const auto lines = lines_of(dir / "audit.log");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == line);
  const JsonObject obj = parse(lines[0]);
  std::vector<std::string> keys;
  for (const auto& kv : obj) keys.push_back(kv.first);
  CHECK(keys == std::vector<std::string>{"ts", "event", "who", "op", "topic", "code", "ratio",
                                         "bad_number"});
  CHECK(is_utc_timestamp(str(obj, "ts")));
  CHECK(str(obj, "event") == "acl_denied");
  CHECK(str(obj, "who") == "alex");
  CHECK(str(obj, "op") == "publish");
  CHECK(str(obj, "topic") == "robot/x/cmd");
  CHECK(num(obj, "code") == 42);
  CHECK(json_get(obj, "ratio")->text == "-1.5e3");
  // Not a number: written as a string, so it cannot inject JSON.
  CHECK(json_get(obj, "bad_number")->kind == JsonValue::kString);
  CHECK(log.stats().events == 1);
  CHECK(log.stats().written == 1);
  CHECK(log.stats().aggregated == 0);
}

TEST_CASE(
    "audit: a flood of 100,000 events by one who in a window writes the burst and one "
    "aggregate with the exact remaining count",
    "[broker][unit][audit]") {
  TempDir dir("audit");
  AuditLog log(options(dir / "audit.log"));  // burst 5, window 1000 ms
  REQUIRE(log.open().ok());
  int full = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string line = "unchanged";
    const bool written =
        log.record(i / 1000, "acl_denied", "mallory", {{"topic", "robot/x/cmd"}}, &line);
    if (written) {
      ++full;
      CHECK_FALSE(line.empty());
    } else if (!line.empty()) {
      FAIL("record() returned false but left a line");
    }
  }
  CHECK(full == 5);
  std::vector<std::string> published;
  log.tick(999, &published);  // the window has not ended yet
  CHECK(published.empty());
  log.tick(1000, &published);
  REQUIRE(published.size() == 1);
  const JsonObject agg = parse(published[0]);
  CHECK(str(agg, "event") == "acl_denied");
  CHECK(str(agg, "who") == "mallory");
  CHECK(num(agg, "count") == 99995);
  CHECK(num(agg, "window_ms") == 1000);
  CHECK(is_aggregate(agg));
  log.flush();
  const auto lines = lines_of(dir / "audit.log");
  REQUIRE(lines.size() == 6);
  CHECK(lines[5] == published[0]);
  CHECK(log.stats().events == 100000);
  CHECK(log.stats().written == 5);
  CHECK(log.stats().aggregated == 99995);
  // A new window writes in full again.
  CHECK(log.record(1500, "acl_denied", "mallory", {}));
  // Nothing more to aggregate: the next tick has no line.
  published.clear();
  log.tick(2500, &published);
  CHECK(published.empty());
}

TEST_CASE(
    "audit: 5,000 distinct whos in one window are bounded by max_keys, the rest counted "
    "under who=\"*\", and the counts add up to the total",
    "[broker][unit][audit]") {
  TempDir dir("audit");
  AuditLog log(options(dir / "audit.log"));  // max_keys 1000, burst 5
  REQUIRE(log.open().ok());
  const int whos = 5000, per_who = 7;
  for (int round = 0; round < per_who; ++round)
    for (int w = 0; w < whos; ++w)
      log.record(10, "handshake_failed", "10.0.0." + std::to_string(w) + ":5555", {});
  std::vector<std::string> published;
  log.tick(1010, &published);
  log.flush();
  const auto lines = lines_of(dir / "audit.log");

  std::uint64_t full = 0, aggregated = 0;
  std::set<std::string> aggregate_whos;
  std::uint64_t star_count = 0;
  for (const std::string& l : lines) {
    const JsonObject obj = parse(l);
    CHECK(str(obj, "event") == "handshake_failed");
    if (is_aggregate(obj)) {
      aggregated += num(obj, "count");
      aggregate_whos.insert(str(obj, "who"));
      if (str(obj, "who") == "*") star_count = num(obj, "count");
    } else {
      ++full;
    }
  }
  CHECK(full + aggregated == static_cast<std::uint64_t>(whos) * per_who);
  // 1000 tracked whos with 2 events each past the burst, one "*" key for the other 4000.
  CHECK(aggregate_whos.size() == 1001);
  CHECK(aggregate_whos.count("*") == 1);
  CHECK(star_count == 4000u * per_who - 5);
  CHECK(full == 1000u * 5 + 5);
  CHECK(published.size() == 1001);
  CHECK(log.stats().overflow_keys == 4000u * per_who);
  CHECK(log.stats().written == full);
  CHECK(log.stats().aggregated == aggregated);
}

TEST_CASE("audit: a peer string with newlines and quotes cannot add a line or a field",
          "[broker][unit][audit]") {
  TempDir dir("audit");
  AuditLog::Options o = options(dir / "audit.log");
  o.burst = 1;
  AuditLog log(o);
  REQUIRE(log.open().ok());
  const std::string who =
      "dev\"}\n{\"ts\":\"2026-01-01T00:00:00.000000Z\",\"event\":\"admin\",\"who\":\"root\"}";
  const std::string topic = "a\r\nb\xe2\x80\xa8\\\"c\xff";
  CHECK(log.record(0, "acl_denied", who, {{"topic", topic}, {"k\"ey\n", "v"}}));
  CHECK_FALSE(log.record(1, "acl_denied", who, {{"topic", topic}}));
  std::vector<std::string> published;
  log.tick(1000, &published);
  log.flush();
  const std::string all = read_all(dir / "audit.log");
  CHECK(std::count(all.begin(), all.end(), '\n') == 2);
  const auto lines = lines_of(dir / "audit.log");
  REQUIRE(lines.size() == 2);
  const JsonObject first = parse(lines[0]);
  REQUIRE(first.size() == 5);  // ts, event, who, topic, and the odd key
  CHECK(str(first, "event") == "acl_denied");
  CHECK(str(first, "who") == curvebus::printable(who));
  CHECK(str(first, "topic") == curvebus::printable(topic));
  CHECK(first[4].first == curvebus::printable("k\"ey\n"));
  const JsonObject agg = parse(lines[1]);
  CHECK(str(agg, "who") == curvebus::printable(who));
  CHECK(num(agg, "count") == 1);
}

TEST_CASE("audit: the file rotates past max_bytes and one old file is kept",
          "[broker][unit][audit]") {
  TempDir dir("audit");
  AuditLog::Options o = options(dir / "audit.log");
  o.max_bytes = 4096;
  o.burst = 1000000;
  AuditLog log(o);
  REQUIRE(log.open().ok());
  const int events = 400;
  for (int i = 0; i < events; ++i) {
    log.record(0, "admin", "ops", {{"seq", std::to_string(i), true}});
    if (i % 3 == 0) log.flush();
  }
  log.flush();
  CHECK(log.stats().rotations >= 2);
  CHECK(log.stats().write_failures == 0);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"audit.log", "audit.log.1"});
  CHECK(std::filesystem::file_size(dir / "audit.log") <= 4096);
  CHECK(std::filesystem::file_size(dir / "audit.log.1") <= 4096);
  // The two files hold the most recent events, consecutive, none lost at the last rotation.
  std::vector<std::uint64_t> seqs;
  for (const char* name : {"audit.log.1", "audit.log"})
    for (const std::string& l : lines_of(dir / name)) seqs.push_back(num(parse(l), "seq"));
  REQUIRE_FALSE(seqs.empty());
  CHECK(seqs.back() == static_cast<std::uint64_t>(events - 1));
  for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] == seqs[i - 1] + 1);
}

TEST_CASE("audit: the file has mode 0600, also when it existed with a looser mode",
          "[broker][unit][audit]") {
  TempDir dir("audit");
  const mode_t old_mask = ::umask(0);
  {
    AuditLog log(options(dir / "new.log"));
    CHECK(log.open().ok());
  }
  {
    std::ofstream(dir / "old.log") << "{}\n";
    REQUIRE(::chmod((dir / "old.log").c_str(), 0644) == 0);
    AuditLog log(options(dir / "old.log"));
    CHECK(log.open().ok());
  }
  ::umask(old_mask);
  struct stat st {};
  REQUIRE(::stat((dir / "new.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((dir / "old.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(read_all(dir / "old.log") == "{}\n");  // appended to, not truncated
}

TEST_CASE(
    "audit: open() on an unwritable path gives an error Status naming the path, and the "
    "log goes on counting",
    "[broker][unit][audit]") {
  TempDir dir("audit");
  const std::string path = dir / "no/such/dir/audit.log";
  AuditLog log(options(path));
  const curvebus::Status s = log.open();
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find(path) != std::string::npos);
  std::string line;
  CHECK(log.record(0, "unknown_key", "1.2.3.4:5", {}, &line));
  CHECK_FALSE(line.empty());
  CHECK_NOTHROW(log.flush());
  CHECK(log.stats().write_failures == 1);
  CHECK(log.stats().events == 1);

  AuditLog on_dir(options(dir.path()));  // a directory is not writable as a file
  CHECK_FALSE(on_dir.open().ok());
}

TEST_CASE("audit: a failing write is counted and never thrown", "[broker][unit][audit]") {
  REQUIRE(std::filesystem::exists("/dev/full"));
  AuditLog log(options("/dev/full"));
  REQUIRE(log.open().ok());
  CHECK(log.record(0, "revoked", "alex", {}));
  CHECK_NOTHROW(log.flush());
  CHECK(log.stats().write_failures == 1);
  CHECK(log.record(1, "revoked", "alex", {}));
  log.flush();
  CHECK(log.stats().write_failures == 2);
}

TEST_CASE("audit: without a path, lines are built, returned and counted", "[broker][unit][audit]") {
  AuditLog log(AuditLog::Options{});
  CHECK(log.open().ok());
  std::string line;
  CHECK(log.record(0, "rate_limited", "alex", {{"topic", "t"}}, &line));
  CHECK(str(parse(line), "topic") == "t");
  log.flush();
  CHECK(log.stats().write_failures == 0);
  CHECK(log.stats().written == 1);
}

TEST_CASE("audit: a window that record() closes hands its aggregates to the next tick",
          "[broker][unit][audit]") {
  AuditLog log(AuditLog::Options{});  // burst 5, window 1000 ms
  for (int i = 0; i < 8; ++i) log.record(0, "acl_denied", "eve", {});
  CHECK(log.record(1000, "acl_denied", "eve", {}));  // a new window: written in full
  std::vector<std::string> published;
  log.tick(1001, &published);
  REQUIRE(published.size() == 1);
  CHECK(num(parse(published[0]), "count") == 3);
  published.clear();
  log.tick(1002, &published);
  CHECK(published.empty());
}
