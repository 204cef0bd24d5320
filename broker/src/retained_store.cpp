// Retained values on disk, so that a restarted broker (clean stop or
// SIGKILL) gives subscribers the last known state of every topic at once.
//
// The whole set is rewritten atomically (temporary file, fsync, rename) when
// it changed, at most every retained_sync_ms: a SIGKILL loses at most that
// window, never the file.  Sequence numbers continue from the kept value;
// the broker_id changes at every start, which is how a client knows that its
// older seqs (and the history behind them) are gone.  $SYS topics are not
// kept: the broker rebuilds them.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "core.hpp"

namespace curvebus::broker {

namespace {

constexpr std::uint32_t kFormat = 1;

bool write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

bool write_file_atomically(const std::string& path, std::string_view bytes, int mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  bool ok = fd >= 0 && write_all(fd, bytes) && ::fsync(fd) == 0;
  if (fd >= 0) ok = (::close(fd) == 0) && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

void Core::load_retained() {
  if (!persisting()) return;
  std::ifstream in(config_.retained_file, std::ios::binary);
  if (!in) return;  // first start: nothing kept yet
  std::stringstream buf;
  buf << in.rdbuf();
  v1::RetainedStore store;
  if (!store.ParseFromString(buf.str()) || store.format() != kFormat) {
    // Keep the unreadable file for inspection; start with no retained values.
    const std::string aside = config_.retained_file + ".bad";
    std::rename(config_.retained_file.c_str(), aside.c_str());
    spdlog::error("retained values file {} is unreadable (format {}); moved to {}, starting empty",
                  config_.retained_file, store.format(), aside);
    return;
  }
  std::size_t restored = 0, skipped = 0;
  for (auto& d : *store.mutable_values()) {
    if (d.topic().empty() || d.topic().front() == '$' ||
        !check_topic(d.topic(), topic_rules_).empty() || d.payload().empty() ||
        d.payload().size() > config_.max_message_bytes || topics_.size() >= config_.max_topics ||
        topics_.count(d.topic())) {
      ++skipped;
      continue;
    }
    auto& t = *topics_
                   .emplace(d.topic(),
                            std::make_unique<Topic>(config_.history_depth, config_.history_bytes))
                   .first->second;
    d.set_retained(true);
    v1::Op op;
    *op.mutable_deliver() = d;
    t.seq = d.seq();
    t.last_publish_us = d.timestamp_us();
    t.retained = std::make_shared<const std::string>(encode_op(op));
    t.history.add({d.seq(), d.timestamp_us(), t.retained});
    if (!d.publisher().empty()) t.publishers.push_back(d.publisher());
    ++restored;
  }
  spdlog::info("restored retained values file={} topics={} skipped={} written_by={}",
               config_.retained_file, restored, skipped, store.broker_id());
}

void Core::save_retained() {
  retained_dirty_ = false;
  next_retained_save_ms_ = steady_ms() + config_.retained_sync_ms;
  v1::RetainedStore store;
  store.set_format(kFormat);
  store.set_broker_id(broker_id_);
  store.set_written_us(wall_clock_us());
  v1::Frame frame;
  for (const auto& [name, topic] : topics_) {
    if (!topic->retained || name.front() == '$') continue;
    if (!decode_frame(topic->retained->data(), topic->retained->size(), frame) ||
        frame.ops_size() != 1 || !frame.ops(0).has_deliver())
      continue;
    store.add_values()->Swap(frame.mutable_ops(0)->mutable_deliver());
  }
  if (write_file_atomically(config_.retained_file, store.SerializeAsString(), 0600)) {
    ++counters_.retained_saves;
    return;
  }
  ++counters_.retained_save_failures;
  retained_dirty_ = true;  // try again after the interval
  std::uint64_t suppressed = 0;
  if (log_bad_input_.allow(suppressed))
    spdlog::error("cannot write retained values to {}: {}", config_.retained_file,
                  std::strerror(errno));
}

}  // namespace curvebus::broker
