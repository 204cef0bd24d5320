// RetainedLog: append-only log of retained values, written and compacted by
// its own thread (see retained_log.hpp for the contract and the file format).
#include "retained_log.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include <spdlog/spdlog.h>

#include "curvebus.pb.h"
#include "curvebus/codec.hpp"

namespace curvebus::broker {

namespace {

constexpr char kMagic[8] = {'C', 'B', 'R', 'E', 'T', 'L', 'O', 'G'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 16;
constexpr std::size_t kSumBytes = 16;               // BLAKE2b-128
constexpr std::size_t kRecordHead = 4 + kSumBytes;  // body_len, sum
constexpr std::size_t kBodyHead = 5;                // kind, topic_len
constexpr unsigned char kTombstone = 0, kValue = 1;
constexpr std::size_t kChunk = 1u << 20;             // bytes buffered per write
constexpr std::uint32_t kOldFormat = 1;              // v1::RetainedStore.format
constexpr std::chrono::milliseconds kMinRetry{100};  // after a failure

void put_u32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

std::uint32_t get_u32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Bytes a record takes in the file.
std::uint64_t record_bytes(std::size_t topic_size, const std::string* value) {
  return kRecordHead + kBodyHead + topic_size + (value ? value->size() : 0);
}

// BLAKE2b-128 of body_len's 4 bytes followed by the body (head, topic, value).
void record_sum(const unsigned char* len4, const unsigned char* body_head, std::string_view topic,
                std::string_view value, unsigned char* out) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kSumBytes);
  crypto_generichash_update(&st, len4, 4);
  crypto_generichash_update(&st, body_head, kBodyHead);
  crypto_generichash_update(&st, bytes_of(topic), topic.size());
  crypto_generichash_update(&st, bytes_of(value), value.size());
  crypto_generichash_final(&st, out, kSumBytes);
}

void append_record(std::string& out, const std::string& topic, const std::string* value) {
  unsigned char head[kRecordHead + kBodyHead];
  const std::string_view v = value ? std::string_view(*value) : std::string_view();
  put_u32(head, static_cast<std::uint32_t>(kBodyHead + topic.size() + v.size()));
  unsigned char* body = head + kRecordHead;
  body[0] = value ? kValue : kTombstone;
  put_u32(body + 1, static_cast<std::uint32_t>(topic.size()));
  record_sum(head, body, topic, v, head + 4);
  out.append(reinterpret_cast<const char*>(head), sizeof head);
  out.append(topic);
  out.append(v);
}

// A value must be the single-op frame holding a Deliver for `topic`.
bool valid_value(std::string_view topic, std::string_view value, v1::Frame& scratch) {
  return decode_frame(value.data(), value.size(), scratch) && scratch.ops_size() == 1 &&
         scratch.ops(0).has_deliver() && scratch.ops(0).deliver().topic() == topic;
}

bool persistable(std::string_view topic) {
  return !topic.empty() && topic.front() != '$';
}

// Buffered positional writer: records go to `fd` from `offset` on, kChunk
// bytes at a time.  After the first error it drops everything.
class Sink {
 public:
  Sink(int fd, std::uint64_t offset) : fd_(fd), offset_(offset) {}
  void raw(const void* data, std::size_t n) {
    buf_.append(static_cast<const char*>(data), n);
    if (buf_.size() >= kChunk) drain();
  }
  void record(const std::string& topic, const std::string* value) {
    append_record(buf_, topic, value);
    if (buf_.size() >= kChunk) drain();
  }
  // Writes what is buffered; false after any error (errno in error()).
  bool drain() {
    std::size_t done = 0;
    while (err_ == 0 && done < buf_.size()) {
      const ssize_t n =
          ::pwrite(fd_, buf_.data() + done, buf_.size() - done, static_cast<off_t>(offset_ + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err_ = n < 0 ? errno : ENOSPC;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    offset_ += done;
    buf_.clear();
    return err_ == 0;
  }
  int error() const { return err_; }
  std::uint64_t offset() const { return offset_; }

 private:
  int fd_;
  std::uint64_t offset_;
  std::string buf_;
  int err_ = 0;
};

std::string directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? std::string(".") : dir;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

RetainedLog::RetainedLog(Options o) : opts_(std::move(o)) {
  if (sodium_init() < 0) spdlog::error("libsodium failed to initialise");
}

RetainedLog::~RetainedLog() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    writer_.join();
  } else if (!started_ && loaded_ && load_error_.ok()) {
    bool any = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      any = !pending_.empty();
    }
    if (any) flush_and_wait();
  }
  close_fd(fd_);
}

bool RetainedLog::compaction_due(std::uint64_t file_bytes) const {
  return file_bytes > opts_.compact_min_bytes &&
         static_cast<double>(file_bytes) > opts_.compact_ratio * static_cast<double>(live_bytes_);
}

Result<RetainedLog::Loaded> RetainedLog::load() {
  if (started_) return Status::Error("retained log: load() after start()", StatusCode::kState);
  loaded_ = true;
  load_error_ = Status::Ok();
  live_.clear();
  live_bytes_ = 0;
  file_end_ = 0;
  close_fd(fd_);
  Loaded out;

  auto finish = [&]() -> Result<Loaded> {
    out.values.reserve(live_.size());
    for (const auto& [topic, value] : live_) {
      live_bytes_ += record_bytes(topic.size(), value.get());
      out.values.emplace_back(topic, value);
    }
    if (!rewrite_needed_ && compaction_due(file_end_)) rewrite_needed_ = true;
    file_bytes_ = file_end_;
    live_bytes_stat_ = live_bytes_;
    return out;
  };
  auto io_error = [&](const char* what) -> Result<Loaded> {
    load_error_ = Status::Error(
        fmt::format("retained log {}: cannot {}: {}", opts_.path, what, std::strerror(errno)),
        StatusCode::kIo);
    return load_error_;
  };

  rewrite_needed_ = true;  // until a readable log is found
  const int fd = ::open(opts_.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return finish();  // first start: nothing kept yet
    return io_error("open");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return io_error("stat");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return finish();
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    errno = map_err;
    return io_error("map");
  }
  ::madvise(map, size, MADV_SEQUENTIAL);
  const auto* p = static_cast<const unsigned char*>(map);

  std::string unreadable;  // why the file is set aside
  v1::Frame frame;
  if (size >= sizeof kMagic && std::memcmp(p, kMagic, sizeof kMagic) == 0) {
    if (size < kHeaderBytes || get_u32(p + 8) != kVersion) {
      unreadable =
          size < kHeaderBytes ? "header cut short" : fmt::format("log version {}", get_u32(p + 8));
    } else {
      std::size_t off = kHeaderBytes;
      while (off < size) {
        const std::size_t left = size - off;
        const unsigned char* head = p + off;
        const std::uint32_t body_len = left >= kRecordHead ? get_u32(head) : 0;
        const unsigned char* body = head + kRecordHead;
        unsigned char sum[kSumBytes];
        bool whole = left >= kRecordHead + kBodyHead && body_len >= kBodyHead &&
                     body_len <= left - kRecordHead;
        if (whole) {
          crypto_generichash_state hs;
          crypto_generichash_init(&hs, nullptr, 0, kSumBytes);
          crypto_generichash_update(&hs, head, 4);
          crypto_generichash_update(&hs, body, body_len);
          crypto_generichash_final(&hs, sum, kSumBytes);
          whole = std::memcmp(sum, head + 4, kSumBytes) == 0;
        }
        if (!whole) {  // torn tail (or garbage): everything from here on is dropped
          ++out.skipped;
          spdlog::warn(
              "retained log {}: record at byte {} is cut short or corrupt; "
              "ignoring the last {} bytes",
              opts_.path, off, left);
          break;
        }
        off += kRecordHead + body_len;
        file_end_ = off;
        ++out.records;
        const std::uint32_t topic_len = get_u32(body + 1);
        if (body[0] > kValue || topic_len > body_len - kBodyHead) {
          ++out.skipped;
          continue;
        }
        const std::string_view topic(reinterpret_cast<const char*>(body + kBodyHead), topic_len);
        const std::string_view value(reinterpret_cast<const char*>(body + kBodyHead + topic_len),
                                     body_len - kBodyHead - topic_len);
        if (!persistable(topic) || (body[0] == kTombstone && !value.empty()) ||
            (body[0] == kValue && !valid_value(topic, value, frame))) {
          ++out.skipped;
          continue;
        }
        if (body[0] == kTombstone) {
          live_.erase(std::string(topic));
        } else {
          live_.insert_or_assign(std::string(topic), std::make_shared<const std::string>(value));
        }
      }
      if (off == size) rewrite_needed_ = false;  // no torn tail: append to it
      if (file_end_ == 0) file_end_ = kHeaderBytes;
    }
  } else {
    v1::RetainedStore store;
    if (size <= static_cast<std::size_t>(INT_MAX) &&
        store.ParseFromArray(p, static_cast<int>(size)) && store.format() == kOldFormat) {
      out.migrated = true;
      for (auto& d : *store.mutable_values()) {
        ++out.records;
        if (!persistable(d.topic()) || d.payload().empty() || live_.count(d.topic())) {
          ++out.skipped;
          continue;
        }
        std::string topic = d.topic();
        d.set_retained(true);
        v1::Op op;
        op.mutable_deliver()->Swap(&d);
        live_.emplace(std::move(topic), std::make_shared<const std::string>(encode_op(op)));
      }
      file_end_ = size;  // rewritten as a log by the writer (rewrite_needed_)
    } else {
      unreadable = "neither a retained log nor a retained values file of format 1";
    }
  }
  ::munmap(map, size);

  if (!unreadable.empty()) {
    const std::string aside = opts_.path + ".bad";
    if (std::rename(opts_.path.c_str(), aside.c_str()) != 0) return io_error("set aside");
    spdlog::error("retained log {} is unreadable ({}); moved to {}, starting empty", opts_.path,
                  unreadable, aside);
    live_.clear();
    file_end_ = 0;
    out = Loaded{};
    out.set_aside = true;
  }
  return finish();
}

void RetainedLog::start() {
  if (started_) return;
  if (!loaded_) {
    auto r = load();
    if (!r) spdlog::error("{}", r.status().message());
  }
  started_ = true;
  if (!load_error_.ok()) return;  // never replace a file that could not be read
  last_cycle_ = Clock::now() - std::chrono::milliseconds(opts_.sync_ms) - kMinRetry;
  writer_ = std::thread([this] { run(); });
}

void RetainedLog::put(const std::string& topic, std::shared_ptr<const std::string> value) {
  if (!persistable(topic)) return;
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    was_empty = pending_.empty();
    pending_[topic] = std::move(value);
    pending_stat_.store(pending_.size(), std::memory_order_relaxed);
  }
  if (was_empty) wake_.notify_one();
}

Status RetainedLog::flush_and_wait() {
  if (!loaded_) {
    auto r = load();
    if (!r) spdlog::error("{}", r.status().message());
  }
  if (!load_error_.ok()) return load_error_;
  if (!started_) {  // no writer thread: do its work here
    Map batch;
    {
      std::lock_guard<std::mutex> lk(mu_);
      batch.swap(pending_);
      pending_stat_.store(0, std::memory_order_relaxed);
    }
    return write_batch(batch);
  }
  std::unique_lock<std::mutex> lk(mu_);
  const std::uint64_t ticket = ++flush_requested_;
  wake_.notify_one();
  flushed_.wait(lk, [&] { return flush_done_ >= ticket; });
  return flush_status_;
}

RetainedLog::Stats RetainedLog::stats() const {
  Stats s;
  s.appends = appends_.load(std::memory_order_relaxed);
  s.syncs = syncs_.load(std::memory_order_relaxed);
  s.compactions = compactions_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.file_bytes = file_bytes_.load(std::memory_order_relaxed);
  s.live_bytes = live_bytes_stat_.load(std::memory_order_relaxed);
  s.pending = pending_stat_.load(std::memory_order_relaxed);
  return s;
}

void RetainedLog::run() {
  Map batch;  // swapped with pending_; keeps its buckets from cycle to cycle
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (!stop_ && flush_requested_ == flush_done_) {
      if (pending_.empty() && !rewrite_needed_) {
        wake_.wait(lk);
        continue;
      }
      const auto interval = std::chrono::milliseconds(opts_.sync_ms);
      const auto due = last_cycle_ + (last_failed_ ? std::max<Clock::duration>(interval, kMinRetry)
                                                   : Clock::duration(interval));
      if (Clock::now() < due) {
        wake_.wait_until(lk, due);
        continue;
      }
    }
    batch.swap(pending_);
    pending_stat_.store(0, std::memory_order_relaxed);
    const std::uint64_t ticket = flush_requested_;
    const bool stopping = stop_;
    lk.unlock();

    last_cycle_ = Clock::now();
    Status status = write_batch(batch);
    batch.clear();  // drops the last references to superseded values here, not on routing

    lk.lock();
    if (ticket > flush_done_) {
      flush_done_ = ticket;
      flush_status_ = std::move(status);
      flushed_.notify_all();
    }
    if (stopping) return;
  }
}

Status RetainedLog::write_batch(Map& batch) {
  std::vector<const Map::value_type*> changes;
  changes.reserve(batch.size());
  std::uint64_t added = 0;
  for (const auto& change : batch) {
    const auto& [topic, value] = change;
    auto it = live_.find(topic);
    if (!value) {
      if (it == live_.end()) continue;  // the file holds no value for it
      live_bytes_ -= record_bytes(topic.size(), it->second.get());
      live_.erase(it);
    } else if (it == live_.end()) {
      live_.emplace(topic, value);
      live_bytes_ += record_bytes(topic.size(), value.get());
    } else {
      if (it->second == value) continue;  // the same buffer: nothing changed
      live_bytes_ -= record_bytes(topic.size(), it->second.get());
      it->second = value;
      live_bytes_ += record_bytes(topic.size(), value.get());
    }
    added += record_bytes(topic.size(), value.get());
    changes.push_back(&change);
  }
  live_bytes_stat_.store(live_bytes_, std::memory_order_relaxed);
  // Rewriting beats appending records that a compaction would drop at once.
  if (!rewrite_needed_ && !changes.empty() && compaction_due(file_end_ + added))
    rewrite_needed_ = true;
  if (rewrite_needed_) return rewrite();
  if (changes.empty()) return Status::Ok();
  return append(changes);
}

Status RetainedLog::append(const std::vector<const Map::value_type*>& changes) {
  if (fd_ < 0) {
    fd_ = ::open(opts_.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) return fail("open", errno);
  }
  Sink sink(fd_, file_end_);
  for (const auto* change : changes) sink.record(change->first, change->second.get());
  if (!sink.drain()) return fail("write", sink.error());
  if (sync_file(fd_, true) != 0) return fail("fsync", errno);
  file_end_ = sink.offset();
  last_failed_ = false;
  appends_.fetch_add(changes.size(), std::memory_order_relaxed);
  syncs_.fetch_add(1, std::memory_order_relaxed);
  file_bytes_.store(file_end_, std::memory_order_relaxed);
  return Status::Ok();
}

Status RetainedLog::rewrite() {
  const auto t0 = Clock::now();
  const std::uint64_t before = file_end_;
  const std::string tmp = opts_.path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail("create", errno);
  auto give_up = [&](const char* what, int err) {
    close_fd(fd);
    ::unlink(tmp.c_str());
    return fail(what, err);
  };
  Sink sink(fd, 0);
  unsigned char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, sizeof kMagic);
  put_u32(header + 8, kVersion);
  sink.raw(header, sizeof header);
  for (const auto& [topic, value] : live_) sink.record(topic, value.get());
  if (!sink.drain()) return give_up("write", sink.error());
  if (sync_file(fd, false) != 0) return give_up("fsync", errno);
  if (std::rename(tmp.c_str(), opts_.path.c_str()) != 0) return give_up("rename", errno);
  // The new file is in place; the rename lasts only once the directory is synced.
  close_fd(fd_);
  fd_ = fd;
  file_end_ = sink.offset();
  file_bytes_.store(file_end_, std::memory_order_relaxed);
  int dir = ::open(directory_of(opts_.path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || sync_file(dir, false) != 0) {
    const int err = errno;
    close_fd(dir);
    return fail("fsync directory", err);  // rewrite_needed_ stays: try it all again
  }
  close_fd(dir);
  rewrite_needed_ = false;
  last_failed_ = false;
  compactions_.fetch_add(1, std::memory_order_relaxed);
  syncs_.fetch_add(1, std::memory_order_relaxed);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  if (ms >= 100) {
    spdlog::info("retained log {}: rewrote {} values, {} -> {} bytes in {} ms", opts_.path,
                 live_.size(), before, file_end_, ms);
  } else {
    spdlog::debug("retained log {}: rewrote {} values, {} -> {} bytes in {} ms", opts_.path,
                  live_.size(), before, file_end_, ms);
  }
  return Status::Ok();
}

int RetainedLog::sync_file(int fd, bool data_only) {
  if (opts_.sync) return opts_.sync(fd);
  return data_only ? ::fdatasync(fd) : ::fsync(fd);
}

Status RetainedLog::fail(const char* what, int err) {
  rewrite_needed_ = true;  // after a failed write or fsync, only a new file is trusted
  last_failed_ = true;
  failures_.fetch_add(1, std::memory_order_relaxed);
  std::string message =
      fmt::format("retained log {}: {} failed: {}", opts_.path, what, std::strerror(err));
  std::uint64_t suppressed = 0;
  if (log_limit_.allow(suppressed)) {
    spdlog::error("{} (retrying with a rewrite; {} similar lines suppressed)", message, suppressed);
  }
  return Status::Error(std::move(message), StatusCode::kIo);
}

}  // namespace curvebus::broker
