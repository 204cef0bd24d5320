#include "audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "curvebus/text.hpp"

namespace curvebus::broker {

namespace {

constexpr std::size_t kMaxWhoKeyBytes = 256;     // as much of `who` as json_string() shows
constexpr std::size_t kFlushAtBytes = 1u << 20;  // record() flushes a buffer this large

// Appends the wall-clock time as "2026-12-01T10:00:00.123456Z" (UTC).
void append_timestamp(std::string& out) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  const int n =
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  if (n > 0)
    out.append(buf, static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n)
                                                             : sizeof buf - 1);
}

// True when `s` is a JSON number (RFC 8259 grammar), so it can go unquoted.
bool is_json_number(std::string_view s) {
  std::size_t i = 0;
  const auto digit = [&](std::size_t at) { return at < s.size() && s[at] >= '0' && s[at] <= '9'; };
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size() && s.size() <= 64;
}

}  // namespace

AuditLog::AuditLog(Options o) : opt_(std::move(o)) {}

AuditLog::~AuditLog() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

Status AuditLog::open() {
  if (opt_.path.empty()) return Status::Ok();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!open_file()) {
    const int err = errno;
    return Status::Error(
        "cannot open audit log \"" + printable(opt_.path, 4096) + "\": " + std::strerror(err),
        StatusCode::kIo);
  }
  opened_ = true;
  return Status::Ok();
}

bool AuditLog::open_file() {
  const int fd = ::open(opt_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return false;
  }
  file_bytes_ = 0;
  if (S_ISREG(st.st_mode)) {
    // An existing file keeps its mode through open(); the audit trail is not for others.
    if ((st.st_mode & 0077) != 0) ::fchmod(fd, 0600);
    file_bytes_ = static_cast<std::uint64_t>(st.st_size);
  }
  fd_ = fd;
  torn_line_ = false;
  return true;
}

void AuditLog::rotate() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // rename() replaces the previous old file.  When it fails, writing on would
  // take the file past its bound: stop instead; flush() retries next time.
  if (::rename(opt_.path.c_str(), (opt_.path + ".1").c_str()) != 0) return;
  ++stats_.rotations;
  open_file();
}

AuditLog::Key& AuditLog::key_for(std::string_view event, std::string_view who) {
  if (who.size() > kMaxWhoKeyBytes) who = who.substr(0, kMaxWhoKeyBytes);
  scratch_.assign(event);
  scratch_.push_back('\0');
  scratch_.append(who);
  auto it = index_.find(scratch_);
  if (it != index_.end()) return keys_[it->second];
  if (tracked_ >= opt_.max_keys) {
    ++stats_.overflow_keys;
    who = "*";
    // Event names are the broker's own few words; should there ever be more
    // overflowing events than max_keys, they share one key as well.
    if (keys_.size() - tracked_ >= opt_.max_keys) event = "*";
    scratch_.assign(event);
    scratch_.push_back('\0');
    scratch_.append(who);
    it = index_.find(scratch_);
    if (it != index_.end()) return keys_[it->second];
  } else {
    ++tracked_;
  }
  index_.emplace(scratch_, keys_.size());
  keys_.push_back(Key{std::string(event), std::string(who), 0});
  return keys_.back();
}

void AuditLog::begin_line(std::string& out, std::string_view event, std::string_view who) {
  out += "{\"ts\":\"";
  append_timestamp(out);
  out += "\",\"event\":";
  out += json_string(event);
  out += ",\"who\":";
  out += json_string(who);
}

bool AuditLog::record(std::int64_t now_ms, std::string_view event, std::string_view who,
                      std::initializer_list<AuditField> fields, std::string* line) {
  ++stats_.events;
  if (window_open_ && now_ms - window_start_ >= opt_.window_ms) close_window(&waiting_);
  if (!window_open_) {
    window_open_ = true;
    window_start_ = now_ms;
  }
  Key& key = key_for(event, who);
  if (++key.count > opt_.burst) {
    ++stats_.aggregated;
    if (line) line->clear();
    return false;
  }
  ++stats_.written;
  const std::size_t start = buffer_.size();
  begin_line(buffer_, event, who);
  for (const AuditField& f : fields) {
    buffer_.push_back(',');
    buffer_ += json_string(f.key);
    buffer_.push_back(':');
    if (f.is_number && is_json_number(f.value)) {
      buffer_.append(f.value);
    } else {
      buffer_ += json_string(f.value);
    }
  }
  buffer_.push_back('}');
  if (line) line->assign(buffer_, start, buffer_.size() - start);
  buffer_.push_back('\n');
  if (buffer_.size() >= kFlushAtBytes) flush();
  return true;
}

void AuditLog::close_window(std::vector<std::string>* lines) {
  const std::size_t max_waiting = 4 * (opt_.max_keys + 1);
  for (const Key& key : keys_) {
    if (key.count <= opt_.burst) continue;
    const std::size_t start = buffer_.size();
    begin_line(buffer_, key.event, key.who);
    buffer_ += ",\"count\":";
    buffer_ += std::to_string(key.count - opt_.burst);
    buffer_ += ",\"window_ms\":";
    buffer_ += std::to_string(opt_.window_ms);
    buffer_ += ",\"aggregated\":true}";
    if (lines && (lines != &waiting_ || waiting_.size() < max_waiting))
      lines->emplace_back(buffer_, start, buffer_.size() - start);
    buffer_.push_back('\n');
  }
  keys_.clear();
  index_.clear();
  tracked_ = 0;
  window_open_ = false;
  if (buffer_.size() >= kFlushAtBytes) flush();
}

void AuditLog::tick(std::int64_t now_ms, std::vector<std::string>* lines) {
  if (window_open_ && now_ms - window_start_ >= opt_.window_ms) close_window(&waiting_);
  if (lines) {
    for (std::string& l : waiting_) lines->push_back(std::move(l));
  }
  waiting_.clear();
}

void AuditLog::flush() {
  if (buffer_.empty()) return;
  if (opt_.path.empty()) {
    buffer_.clear();
    return;
  }
  if (fd_ < 0 && opened_) open_file();
  if (fd_ >= 0 && file_bytes_ > 0 && file_bytes_ + buffer_.size() > opt_.max_bytes) rotate();
  if (fd_ < 0) {
    ++stats_.write_failures;
    buffer_.clear();
    return;
  }
  // A short write left part of a line: end it, so the lines that follow parse.
  if (torn_line_) buffer_.insert(buffer_.begin(), '\n');
  ssize_t n;
  do {
    n = ::write(fd_, buffer_.data(), buffer_.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ++stats_.write_failures;
  } else {
    const auto written = static_cast<std::size_t>(n);
    file_bytes_ += written;
    if (written < buffer_.size()) {
      ++stats_.write_failures;
      torn_line_ = written > 0 ? buffer_[written - 1] != '\n' : torn_line_;
    } else {
      torn_line_ = false;
    }
  }
  buffer_.clear();
  if (file_bytes_ > opt_.max_bytes) rotate();
}

}  // namespace curvebus::broker
