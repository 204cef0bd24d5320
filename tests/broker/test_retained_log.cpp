// Unit tests of the retained log (broker/src/retained_log.hpp): what a
// restarted broker loads back, torn tails, the old whole-file format,
// compaction, coalescing, failures; and, with a sync that takes seconds,
// that put() never waits for the disk.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "curvebus/codec.hpp"
#include "fixture.hpp"
#include "retained_log.hpp"

using curvebus::broker::RetainedLog;
using curvebus::test::TempDir;
namespace v1 = curvebus::v1;
namespace fs = std::filesystem;

namespace {

using Value = std::shared_ptr<const std::string>;
using Clock = std::chrono::steady_clock;

// The encoded retained DELIVER the broker would hand to put().
Value deliver(const std::string& topic, const std::string& payload, std::uint64_t seq = 1) {
  v1::Op op;
  auto* d = op.mutable_deliver();
  d->set_topic(topic);
  d->set_payload(payload);
  d->set_seq(seq);
  d->set_publisher("alex");
  d->set_timestamp_us(1700000000000000 + static_cast<std::int64_t>(seq));
  d->set_retained(true);
  return std::make_shared<const std::string>(curvebus::encode_op(op));
}

v1::Deliver decoded(const std::string& bytes) {
  v1::Frame frame;
  REQUIRE(curvebus::decode_frame(bytes.data(), bytes.size(), frame));
  REQUIRE(frame.ops_size() == 1);
  REQUIRE(frame.ops(0).has_deliver());
  return frame.ops(0).deliver();
}

RetainedLog::Options options(const TempDir& dir, std::uint32_t sync_ms = 1000) {
  RetainedLog::Options o;
  o.path = dir / "retained.pb";
  o.sync_ms = sync_ms;
  return o;
}

// What a restarted broker finds: topic -> payload.
std::map<std::string, std::string> payloads(const RetainedLog::Loaded& loaded) {
  std::map<std::string, std::string> out;
  for (const auto& [topic, value] : loaded.values) {
    const v1::Deliver d = decoded(*value);
    CHECK(d.topic() == topic);
    CHECK(d.retained());
    out[topic] = d.payload();
  }
  return out;
}

// Loads the file with a log that is never started (it writes nothing).
RetainedLog::Loaded reload(const RetainedLog::Options& o) {
  RetainedLog log(o);
  auto r = log.load();
  REQUIRE(r.ok());
  return std::move(r.value());
}

// Loads, starts and waits for the writer's first cycle (which creates the
// file), so later puts are appends.
void open_log(RetainedLog& log) {
  auto r = log.load();
  REQUIRE(r.ok());
  log.start();
  REQUIRE(log.flush_and_wait().ok());
}

std::string file_text(const std::string& path) {
  std::string bytes(fs::file_size(path), '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(in);
  return bytes;
}

void write_text(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

using Payloads = std::map<std::string, std::string>;

}  // namespace

TEST_CASE("retained log: values put and flushed are loaded back after a restart",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  const Value status = deliver("robot/alex/status", "serial up", 7);
  const Value pose = deliver("robot/alex/pose", std::string(300, 'p'), 9);
  {
    RetainedLog log(o);
    auto first = log.load();
    REQUIRE(first.ok());
    CHECK(first->values.empty());
    CHECK_FALSE(first->set_aside);
    CHECK_FALSE(first->migrated);
    log.start();
    log.put("robot/alex/status", status);
    log.put("robot/alex/pose", pose);
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().pending == 0);
    CHECK(log.stats().file_bytes == fs::file_size(o.path));
  }
  CHECK(file_text(o.path).compare(0, 8, "CBRETLOG") == 0);
  const auto loaded = reload(o);
  CHECK(loaded.skipped == 0);
  CHECK_FALSE(loaded.migrated);
  REQUIRE(loaded.values.size() == 2);
  for (const auto& [topic, value] : loaded.values) {  // byte for byte what was put
    CHECK(*value == (topic == "robot/alex/status" ? *status : *pose));
  }
  CHECK(decoded(*loaded.values[0].second).publisher() == "alex");
}

TEST_CASE("retained log: a later put for a topic supersedes the earlier one",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  {
    RetainedLog log(o);
    open_log(log);
    log.put("robot/alex/status", deliver("robot/alex/status", "one", 1));
    log.put("robot/alex/status", deliver("robot/alex/status", "two", 2));  // coalesced
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().appends == 1);
    log.put("robot/alex/status", deliver("robot/alex/status", "three", 3));  // appended
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().appends == 2);
  }
  const auto loaded = reload(o);
  CHECK(loaded.records == 2);
  CHECK(payloads(loaded) == Payloads{{"robot/alex/status", "three"}});
  CHECK(decoded(*loaded.values.at(0).second).seq() == 3);
}

TEST_CASE("retained log: a null put clears the topic's value for the next load",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  {
    RetainedLog log(o);
    open_log(log);
    log.put("a/1", deliver("a/1", "x"));
    log.put("a/2", deliver("a/2", "y"));
    REQUIRE(log.flush_and_wait().ok());
    log.put("a/1", nullptr);
    log.put("never/kept", nullptr);  // nothing on disk to clear: no record
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().appends == 3);
  }
  const auto loaded = reload(o);
  CHECK(loaded.records == 3);  // two values and one tombstone
  CHECK(payloads(loaded) == Payloads{{"a/2", "y"}});
}

TEST_CASE("retained log: topics starting with $ are never persisted",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  {
    RetainedLog log(o);
    open_log(log);
    log.put("$SYS/presence/alex", deliver("$SYS/presence/alex", "online"));
    CHECK(log.stats().pending == 0);
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().appends == 0);
  }
  CHECK(reload(o).values.empty());
}

TEST_CASE("retained log: a torn tail loses only the record it cuts",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  {
    RetainedLog log(o);
    open_log(log);
    for (const char* t : {"t/a", "t/b", "t/c"}) {  // one record per flush
      log.put(t, deliver(t, std::string("value of ") + t));
      REQUIRE(log.flush_and_wait().ok());
    }
  }
  const auto full = fs::file_size(o.path);
  Payloads expected{{"t/a", "value of t/a"}, {"t/b", "value of t/b"}, {"t/c", "value of t/c"}};

  SECTION("the file cut in the middle of the last record") {
    fs::resize_file(o.path, full - 5);
    expected.erase("t/c");
  }
  SECTION("a byte of the last record's value changed") {
    std::string bytes = file_text(o.path);
    bytes[full - 3] = static_cast<char>(bytes[full - 3] ^ 0x20);
    write_text(o.path, bytes);
    expected.erase("t/c");
  }
  SECTION("garbage appended after the last record") {
    std::ofstream(o.path, std::ios::binary | std::ios::app) << std::string(4096, '\xab');
  }
  SECTION("zero bytes after the last record (a preallocated tail)") {
    std::ofstream(o.path, std::ios::binary | std::ios::app) << std::string(4096, '\0');
  }

  const auto loaded = reload(o);
  CHECK(loaded.skipped == 1);
  CHECK(loaded.records == expected.size());
  CHECK(payloads(loaded) == expected);

  // The writer drops the torn bytes before appending again, so what comes
  // next is not hidden behind them.
  {
    RetainedLog log(o);
    open_log(log);
    log.put("t/d", deliver("t/d", "after the crash"));
    REQUIRE(log.flush_and_wait().ok());
  }
  const auto again = reload(o);
  CHECK(again.skipped == 0);
  expected["t/d"] = "after the crash";
  CHECK(payloads(again) == expected);
}

TEST_CASE("retained log: an old whole-file RetainedStore is loaded and rewritten as a log",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  v1::RetainedStore store;
  store.set_format(1);
  store.set_broker_id("old-broker");
  store.set_written_us(1);
  for (const char* t : {"robot/alex/status", "$SYS/presence/alex", "robot/alex/mode"}) {
    auto* d = store.add_values();
    d->set_topic(t);
    d->set_payload(std::string("kept ") + t);
    d->set_seq(41);
    d->set_publisher("alex");
  }
  write_text(o.path, store.SerializeAsString());

  const Payloads expected{{"robot/alex/status", "kept robot/alex/status"},
                          {"robot/alex/mode", "kept robot/alex/mode"}};
  {
    RetainedLog log(o);
    auto loaded = log.load();
    REQUIRE(loaded.ok());
    CHECK(loaded->migrated);
    CHECK_FALSE(loaded->set_aside);
    CHECK(loaded->records == 3);
    CHECK(loaded->skipped == 1);  // the $SYS value
    CHECK(payloads(*loaded) == expected);
    CHECK(decoded(*loaded->values.at(0).second).seq() == 41);
    log.start();
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().compactions == 1);
  }
  CHECK(file_text(o.path).compare(0, 8, "CBRETLOG") == 0);
  const auto again = reload(o);
  CHECK_FALSE(again.migrated);
  CHECK(again.skipped == 0);
  CHECK(payloads(again) == expected);
}

TEST_CASE("retained log: an unreadable file is set aside as .bad and the log starts empty",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  std::string bytes;
  SECTION("not a log, not a RetainedStore") {
    bytes = "this is not a retained values file\n";
  }
  SECTION("a RetainedStore of an unknown format") {
    v1::RetainedStore store;
    store.set_format(2);
    bytes = store.SerializeAsString();
  }
  SECTION("a log of an unknown version") {
    bytes = std::string("CBRETLOG\x09\0\0\0\0\0\0\0", 16);
  }
  write_text(o.path, bytes);
  {
    RetainedLog log(o);
    auto loaded = log.load();
    REQUIRE(loaded.ok());
    CHECK(loaded->set_aside);
    CHECK(loaded->values.empty());
    CHECK_FALSE(fs::exists(o.path));
    CHECK(file_text(o.path + ".bad") == bytes);
    log.start();
    log.put("a/b", deliver("a/b", "fresh"));
    REQUIRE(log.flush_and_wait().ok());
  }
  CHECK(payloads(reload(o)) == Payloads{{"a/b", "fresh"}});
  CHECK(file_text(o.path + ".bad") == bytes);
}

TEST_CASE("retained log: compaction keeps exactly the live set and shrinks the file",
          "[broker][unit][retained_log]") {
  TempDir dir;
  auto o = options(dir);
  o.compact_min_bytes = 16 * 1024;
  o.compact_ratio = 2.0;
  Payloads expected;
  std::uint64_t shrunk = 0;
  {
    RetainedLog log(o);
    open_log(log);
    const auto first_compactions = log.stats().compactions;
    for (int round = 0; round < 60; ++round) {
      for (int t = 0; t < 20; ++t) {
        const std::string topic = "fleet/robot" + std::to_string(t) + "/status";
        if (round >= 50 && t < 5) {  // the last rounds clear five topics
          log.put(topic, nullptr);
          expected.erase(topic);
        } else {
          const std::string payload = std::to_string(round) + std::string(100, 's');
          log.put(topic, deliver(topic, payload, static_cast<std::uint64_t>(round + 1)));
          expected[topic] = payload;
        }
      }
      const auto before = log.stats();
      REQUIRE(log.flush_and_wait().ok());
      const auto after = log.stats();
      CHECK(after.file_bytes == fs::file_size(o.path));
      // Never more than the bound: the writer rewrites instead of growing past it.
      CHECK(after.file_bytes <=
            std::max<double>(o.compact_min_bytes, o.compact_ratio * after.live_bytes));
      if (after.compactions > before.compactions && after.file_bytes < before.file_bytes) ++shrunk;
    }
    CHECK(log.stats().compactions >= first_compactions + 2);
    std::uint64_t live = 0;  // 25 bytes of record framing per value
    for (const auto& [topic, payload] : expected) {
      live += 25 + topic.size() + deliver(topic, payload, 1)->size();
    }
    CHECK(log.stats().live_bytes == live);
  }
  CHECK(shrunk >= 2);
  const auto loaded = reload(o);
  CHECK(loaded.skipped == 0);
  CHECK(payloads(loaded) == expected);  // exactly the live set: the cleared topics are gone
  CHECK(expected.size() == 15);
}

TEST_CASE("retained log: 100,000 puts on 1,000 topics keep pending memory bounded by the topics",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir, 60000);  // the writer will not drain on its own in this test
  constexpr int kTopics = 1000, kPuts = 100000;
  std::vector<std::string> topics;
  for (int t = 0; t < kTopics; ++t) topics.push_back("fleet/robot" + std::to_string(t) + "/pose");
  {
    RetainedLog log(o);
    open_log(log);
    std::uint64_t most_pending = 0;
    for (int i = 0; i < kPuts; ++i) {
      const auto& topic = topics[static_cast<std::size_t>(i % kTopics)];
      log.put(topic, deliver(topic, std::to_string(i), static_cast<std::uint64_t>(i + 1)));
      most_pending = std::max(most_pending, log.stats().pending);
    }
    CHECK(most_pending == kTopics);
    CHECK(log.stats().appends == 0);
    REQUIRE(log.flush_and_wait().ok());
    CHECK(log.stats().appends == kTopics);  // one record per topic: the latest value
    CHECK(log.stats().pending == 0);
  }
  const auto loaded = reload(o);
  CHECK(loaded.records == kTopics);
  const auto got = payloads(loaded);
  REQUIRE(got.size() == kTopics);
  for (int t = 0; t < kTopics; ++t) {
    CHECK(got.at(topics[static_cast<std::size_t>(t)]) == std::to_string(kPuts - kTopics + t));
  }
}

TEST_CASE("retained log: the writer writes and syncs on its own within sync_ms",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir, 50);
  RetainedLog log(o);
  open_log(log);
  const auto syncs = log.stats().syncs;
  log.put("robot/alex/status", deliver("robot/alex/status", "up"));
  // What a broker killed now would find, polled with a generous bound.
  Payloads found;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while ((found.empty() || log.stats().syncs == syncs) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    found = payloads(reload(o));
  }
  CHECK(found == Payloads{{"robot/alex/status", "up"}});
  CHECK(log.stats().syncs > syncs);
}

TEST_CASE("retained log: without start() the log writes on the calling thread",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  {
    RetainedLog log(o);
    REQUIRE(log.load().ok());
    log.put("a/b", deliver("a/b", "flushed"));
    REQUIRE(log.flush_and_wait().ok());
    CHECK(payloads(reload(o)) == Payloads{{"a/b", "flushed"}});
    log.put("a/c", deliver("a/c", "at destruction"));
  }
  CHECK(payloads(reload(o)) == Payloads{{"a/b", "flushed"}, {"a/c", "at destruction"}});
}

TEST_CASE("retained log: a failed write is counted, reported and retried",
          "[broker][unit][retained_log]") {
  TempDir dir;
  RetainedLog::Options o;
  o.path = dir / "not-yet/retained.pb";  // its directory does not exist yet
  o.sync_ms = 20;
  {
    RetainedLog log(o);
    REQUIRE(log.load().ok());
    log.start();
    log.put("a/b", deliver("a/b", "kept in memory"));
    const auto failed = log.flush_and_wait();
    CHECK_FALSE(failed.ok());
    CHECK(failed.code() == "IO");
    CHECK(log.stats().failures >= 1);
    fs::create_directory(dir / "not-yet");
    REQUIRE(log.flush_and_wait().ok());
  }
  CHECK(payloads(reload(o)) == Payloads{{"a/b", "kept in memory"}});
}

TEST_CASE("retained log: a file that cannot be read is reported and never replaced",
          "[broker][unit][retained_log]") {
  TempDir dir;
  const auto o = options(dir);
  fs::create_directory(o.path);  // opens, but cannot be read as a file
  fs::create_directory(o.path + "/inside");
  RetainedLog log(o);
  auto loaded = log.load();
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.status().code() == "IO");
  log.start();
  log.put("a/b", deliver("a/b", "nowhere to go"));
  CHECK_FALSE(log.flush_and_wait().ok());
  CHECK(fs::is_directory(o.path + "/inside"));
  CHECK_FALSE(fs::exists(o.path + ".bad"));
}

TEST_CASE("retained log: put() returns at once while the writer is stuck in a sync for seconds",
          "[broker][unit][retained_log]") {
  // The writer's syncs wait for the test (at most 10 s): the first one, of
  // the new file, holds the writer while the routing thread puts.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> syncs_entered{0};
  TempDir dir;
  auto o = options(dir, 10);
  o.sync = [&](int fd) {
    ++syncs_entered;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
    return ::fsync(fd);
  };
  std::vector<std::pair<std::string, Value>> values;
  for (int i = 0; i < 1000; ++i) {
    const std::string topic = "fleet/robot" + std::to_string(i) + "/status";
    values.emplace_back(topic, deliver(topic, "up " + std::to_string(i)));
  }
  RetainedLog log(o);
  REQUIRE(log.load().ok());
  log.start();  // the writer creates the file at once, and syncs it
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (syncs_entered == 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(syncs_entered == 1);

  const auto t1 = Clock::now();
  for (const auto& [topic, value] : values) log.put(topic, value);
  const auto put_time = Clock::now() - t1;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the sync goes on for a second more
  CHECK(log.stats().syncs == 0);  // every put returned while the sync went on
  CHECK(log.stats().pending == values.size());
  CHECK(put_time < std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  REQUIRE(log.flush_and_wait().ok());
  CHECK(syncs_entered >= 2);
  const auto loaded = reload(o);
  CHECK(loaded.values.size() == values.size());
}
