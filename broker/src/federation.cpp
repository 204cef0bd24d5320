// Federation over NATS (federation.hpp): connection, export, import, the
// command store and the state file.
#include "federation.hpp"

#include <fcntl.h>
#include <nats/nats.h>
#include <unistd.h>

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "curvebus/topic.hpp"
#include "protocol.hpp"

namespace curvebus::broker {

bool write_file_atomically(const std::string& path, std::string_view bytes, int mode);

namespace {

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string nats_error(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  if (code != 0) text += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  return text;
}

bool matches_any(const std::vector<std::string>& patterns, std::string_view topic) {
  for (const std::string& p : patterns)
    if (topic_matches(p, topic)) return true;
  return false;
}

constexpr std::size_t kEventsPerDrain = 1000;
constexpr std::int64_t kHoldDelayMs = 500;  // a command with no local subscriber yet
constexpr jsErrCode kStreamNameInUse = static_cast<jsErrCode>(10058);

}  // namespace

// libnats callbacks: the closure is the Federation.
struct FederationCallbacks {
  static void stream(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    static_cast<Federation*>(c)->on_published(m, 's');
  }
  static void retained(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    static_cast<Federation*>(c)->on_published(m, 'r');
  }
  static void command(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    static_cast<Federation*>(c)->on_command(m);
  }
  static void connected(natsConnection*, void* c) {
    static_cast<Federation*>(c)->on_connection(true);
  }
  static void disconnected(natsConnection*, void* c) {
    static_cast<Federation*>(c)->on_connection(false);
  }
  // Backoff: reconnect_wait_ms doubled per attempt through the server list,
  // up to 16 times that, with up to a quarter of jitter.
  static int64_t reconnect_delay(natsConnection*, int attempts, void* c) {
    const auto* self = static_cast<Federation*>(c);
    const std::int64_t base = self->config_.reconnect_wait_ms;
    const std::int64_t delay = base << std::min(std::max(attempts - 1, 0), 4);
    return delay + static_cast<std::int64_t>(randombytes_uniform(
                       static_cast<std::uint32_t>(std::max<std::int64_t>(delay / 4, 1))));
  }
};

Federation::Federation(const FederationConfig& config, std::string home)
    : config_(config), home_(std::move(home)) {}

Federation::~Federation() {
  stop();
}

std::string Federation::state_path() const {
  if (!config_.state_file.empty()) return config_.state_file;
  if (!home_.empty()) return home_ + "/federation.state";
  return std::string();
}

Status Federation::start() {
  auto signing = fed::read_signing_keys(config_.signing_key);
  if (!signing)
    return Status::Error("federation: " + signing.status().message(), StatusCode::kKeys);
  signing_ = *signing;
  for (const std::string& path : config_.keys) {
    auto key = fed::read_federation_key(path);
    if (!key) return Status::Error("federation: " + key.status().message(), StatusCode::kKeys);
    keys_.push_back(*key);
  }
  for (const FederationPeer& p : config_.peers) {
    PeerState& ps = peers_[p.name];
    if (!fed::hex_decode(p.sign_public_key, ps.key.data(), ps.key.size()))
      return Status::Error("federation: the signing key of peer '" + p.name + "' is not hex",
                           StatusCode::kConfig);
    ps.publish = p.publish;
  }
  if (Status s = load_state(); !s) return s;
  // A new epoch, never below the last one: envelopes of an earlier run can
  // never be taken for this run's.
  epoch_ = std::max<std::uint64_t>(static_cast<std::uint64_t>(wall_us()), epoch_ + 1);
  save_state();

  if (::pipe(wake_) != 0) return Status::Error("federation: cannot create a pipe", StatusCode::kIo);
  for (int fd : wake_) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK)
    return Status::Error("federation: cannot create NATS options", StatusCode::kInternal);
  std::vector<const char*> urls;
  for (const std::string& u : config_.urls) urls.push_back(u.c_str());
  natsStatus s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts, ("curvebus-broker " + config_.name).c_str());
  if (s == NATS_OK) s = natsOptions_SetNoEcho(opts, true);  // never our own envelopes back
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK)
    s = natsOptions_SetCustomReconnectDelay(opts, &FederationCallbacks::reconnect_delay, this);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 2000);
  if (s == NATS_OK)
    s = natsOptions_SetRetryOnFailedConnect(opts, true, &FederationCallbacks::connected, this);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(opts, &FederationCallbacks::disconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &FederationCallbacks::connected, this);
  if (s == NATS_OK && (!config_.tls_ca.empty() || !config_.tls_cert.empty()))
    s = natsOptions_SetSecure(opts, true);
  if (s == NATS_OK && !config_.tls_ca.empty())
    s = natsOptions_LoadCATrustedCertificates(opts, config_.tls_ca.c_str());
  if (s == NATS_OK && !config_.tls_cert.empty())
    s = natsOptions_LoadCertificatesChain(opts, config_.tls_cert.c_str(), config_.tls_key.c_str());
  if (s == NATS_OK && !config_.credentials.empty())
    s = natsOptions_SetUserCredentialsFromFiles(opts, config_.credentials.c_str(), nullptr);
  if (s == NATS_OK && !config_.user.empty()) {
    std::ifstream in(config_.password_file);
    std::string password;
    if (!config_.password_file.empty() && !std::getline(in, password)) {
      natsOptions_Destroy(opts);
      return Status::Error("federation: cannot read password_file " + config_.password_file,
                           StatusCode::kConfig);
    }
    s = natsOptions_SetUserInfo(opts, config_.user.c_str(), password.c_str());
  }
  if (s != NATS_OK) {
    natsOptions_Destroy(opts);
    return Status::Error("federation: NATS options refused: " + nats_error(s), StatusCode::kConfig);
  }
  s = natsConnection_Connect(&nc_, opts);
  natsOptions_Destroy(opts);
  if (s == NATS_OK) {
    connected_ = true;
  } else if (s != NATS_NOT_YET_CONNECTED) {
    return Status::Error("federation: cannot start the NATS connection: " + nats_error(s),
                         StatusCode::kNoBroker);
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = config_.command_timeout_ms;
  if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK)
    return Status::Error("federation: cannot create the JetStream context", StatusCode::kInternal);

  // Streams: core NATS subscriptions, one per import pattern (libnats
  // re-subscribes after every reconnection by itself).  One refused here (the
  // connection already closed) is retried by the command thread with the
  // JetStream set-up: backbone trouble never stops the broker.
  for (const std::string& pattern : config_.import_patterns)
    for (const std::string& subject :
         fed::interest_subjects(config_.subject_prefix, 's', "*", pattern))
      stream_subjects_pending_.push_back(subject);
  std::string why;
  if (!subscribe_streams(why)) spdlog::warn("federation: {} (retrying)", why);
  exporter_ = std::thread([this] { exporter_loop(); });
  commander_ = std::thread([this] { command_loop(); });
  retainer_ = std::thread([this] { retained_loop(); });
  spdlog::info(
      "federation name={} urls={} export={} import={} commands={} peers={} replicas={} "
      "connected={}",
      config_.name, fmt::join(config_.urls, ","), fmt::join(config_.export_patterns, ","),
      fmt::join(config_.import_patterns, ","), fmt::join(config_.command_patterns, ","),
      config_.peers.size(), config_.replicas, connected_.load());
  return Status::Ok();
}

void Federation::stop() {
  if (stopping_.exchange(true)) return;
  export_cv_.notify_all();
  command_cv_.notify_all();
  retained_cv_.notify_all();
  if (exporter_.joinable()) exporter_.join();
  if (commander_.joinable()) commander_.join();
  if (retainer_.joinable()) retainer_.join();
  // Drained (no callback runs after), never unsubscribed: the durable
  // consumer lives on in JetStream for the next start.
  for (natsSubscription* sub : subs_) {
    if (connected_ && natsSubscription_Drain(sub) == NATS_OK)
      natsSubscription_WaitForDrainCompletion(sub, 1000);
    natsSubscription_Destroy(sub);
  }
  subs_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [handle, held] : held_) {  // not delivered: redelivered after the restart
      natsMsg_Nak(held.msg, nullptr);
      natsMsg_Destroy(held.msg);
    }
    held_.clear();
  }
  if (js_) jsCtx_Destroy(js_);
  js_ = nullptr;
  if (nc_) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
  nc_ = nullptr;
  if (epoch_ != 0) save_state();
  for (int& fd : wake_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void Federation::on_connection(bool connected) {
  connected_ = connected;
  if (connected) {
    ++reconnects_;
    std::lock_guard<std::mutex> lock(mutex_);
    setup_needed_ = true;
    command_cv_.notify_all();
    spdlog::info("federation: connected to the NATS backbone");
  } else {
    spdlog::warn("federation: the NATS backbone is unreachable; local traffic goes on");
  }
}

// ---------------------------------------------------------------- export

FederationPort::Export Federation::exported(const ExportedPublication& p, std::uint64_t token) {
  if (p.topic.rfind("$SYS/federation/", 0) == 0) return Export::kLocal;  // never re-exported
  if (!matches_any(config_.export_patterns, p.topic)) return Export::kLocal;
  Outgoing o;
  o.topic.assign(p.topic.data(), p.topic.size());
  o.publisher.assign(p.publisher.data(), p.publisher.size());
  o.payload.assign(p.payload.data(), p.payload.size());
  o.content_type.assign(p.content_type.data(), p.content_type.size());
  o.retain = p.retain;
  o.publish_time_us = p.publish_time_us;
  o.token = token;
  if (matches_any(config_.command_patterns, p.topic)) {
    o.klass = 'c';
    std::lock_guard<std::mutex> lock(mutex_);
    if (!connected_ || !backbone_ready_ || command_queue_.size() >= config_.export_queue) {
      ++commands_unavailable_;
      return Export::kUnavailable;
    }
    CommandJob job;
    job.out = std::move(o);
    command_queue_.push_back(std::move(job));
    command_cv_.notify_one();
    return Export::kAwaitStore;
  }
  if (p.retain) {
    o.klass = 'r';
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = retained_pending_.find(o.topic);
    if (it == retained_pending_.end()) {
      if (retained_pending_.size() >= config_.export_queue) {
        ++export_dropped_;
        return Export::kSent;
      }
      retained_order_.push_back(o.topic);
      it = retained_pending_.emplace(o.topic, RetainedJob{}).first;
    }
    it->second = RetainedJob{};  // a newer value: the older one never needs storing
    it->second.out = std::move(o);
    retained_cv_.notify_one();
    return Export::kSent;
  }
  o.klass = 's';
  if (!connected_) {
    ++export_dropped_;
    return Export::kSent;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (export_queue_.size() >= config_.export_queue) {
    ++export_dropped_;
    return Export::kSent;
  }
  export_queue_.push_back(std::move(o));
  if (export_queue_.size() == 1) export_cv_.notify_one();
  return Export::kSent;
}

std::string Federation::seal(const Outgoing& out, const std::string& subject, std::uint64_t* seq) {
  fed::Envelope env;
  env.origin = config_.name;
  env.publisher = out.publisher;
  env.topic = out.topic;
  env.epoch = epoch_;
  env.seq = next_seq_.fetch_add(1);
  if (seq) *seq = env.seq;
  env.publish_time_us = out.publish_time_us;
  env.retained = out.retain;
  env.payload = out.payload;
  env.content_type = out.content_type;
  env.klass = out.klass == 'c'   ? fed::Class::kCommand
              : out.klass == 'r' ? fed::Class::kRetained
                                 : fed::Class::kStream;
  return fed::seal(env, signing_, keys_.front(), subject);
}

void Federation::exporter_loop() {
  std::deque<Outgoing> batch;
  while (!stopping_) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      export_cv_.wait(lock, [this] { return stopping_ || !export_queue_.empty(); });
      batch.swap(export_queue_);
    }
    for (const Outgoing& o : batch) {
      if (!connected_) {
        ++export_dropped_;
        continue;
      }
      const std::string subject =
          fed::subject_for(config_.subject_prefix, o.klass, config_.name, o.topic);
      const std::string sealed = seal(o, subject);
      const natsStatus s = natsConnection_Publish(nc_, subject.c_str(), sealed.data(),
                                                  static_cast<int>(sealed.size()));
      if (s == NATS_OK)
        ++exported_;
      else
        ++export_dropped_;
    }
    batch.clear();
  }
}

// ---------------------------------------------------------------- commands

bool Federation::subscribe_streams(std::string& why) {
  while (!stream_subjects_pending_.empty()) {
    const std::string& subject = stream_subjects_pending_.back();
    natsSubscription* sub = nullptr;
    const natsStatus s =
        natsConnection_Subscribe(&sub, nc_, subject.c_str(), &FederationCallbacks::stream, this);
    if (s != NATS_OK) {
      why = "cannot subscribe to " + subject + ": " + nats_error(s);
      return false;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      subs_.push_back(sub);
    }
    stream_subjects_pending_.pop_back();
  }
  return true;
}

bool Federation::set_up_backbone(std::string& why) {
  if (!subscribe_streams(why)) return false;
  const std::string cmd_stream = config_.stream_prefix + "_CMD";
  const std::string kv_stream = config_.stream_prefix + "_KV";
  const std::string cmd_subject = config_.subject_prefix + ".c.>";
  const std::string kv_subject = config_.subject_prefix + ".r.>";
  auto ensure = [&](const std::string& name, const std::string& subject, bool kv) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    const char* subjects[] = {subject.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = config_.replicas;
    if (kv) {
      cfg.MaxMsgsPerSubject = 1;
    } else {
      // Commands older than their max age are never delivered; keep them a
      // little longer so their refusal is counted, not silent.
      cfg.MaxAge = static_cast<std::int64_t>(config_.command_max_age_s) * 2 * 1000000000LL;
      // JetStream refuses a duplicate window longer than the max age.
      cfg.Duplicates = std::min<std::int64_t>(120LL * 1000000000LL, cfg.MaxAge);
    }
    jsErrCode code = static_cast<jsErrCode>(0);
    jsStreamInfo* info = nullptr;
    natsStatus s = js_AddStream(&info, js_, &cfg, nullptr, &code);
    if (info) jsStreamInfo_Destroy(info);
    if (s == NATS_OK || code == kStreamNameInUse) return true;
    why = "cannot create the JetStream stream " + name + ": " + nats_error(s, code);
    return false;
  };
  if (!ensure(cmd_stream, cmd_subject, false) || !ensure(kv_stream, kv_subject, true)) return false;
  if (consumers_ready_) return true;  // libnats keeps them across reconnections

  // Commands: a durable consumer named after this broker, one unacknowledged
  // at a time (order), acknowledged by hand after local delivery.  Created
  // here, then bound: a consumer that js_Subscribe created itself would be
  // deleted when the subscription ends, and a restart would lose its place.
  const std::string deliver = "_CURVEBUS_DELIVER." + config_.subject_prefix + "." + config_.name;
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = config_.name.c_str();
  cc.DeliverSubject = deliver.c_str();
  cc.FilterSubject = cmd_subject.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.MaxAckPending = 1;
  cc.AckWait = 5LL * 1000000000LL;  // a lost acknowledgement costs this much
  cc.DeliverPolicy = js_DeliverAll;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsConsumerInfo* ci = nullptr;
  natsStatus s = js_AddConsumer(&ci, js_, cmd_stream.c_str(), &cc, nullptr, &code);
  if (ci) jsConsumerInfo_Destroy(ci);
  ci = nullptr;
  if (s != NATS_OK) {
    // It exists already (a restart): bind to it as it is.
    jsErrCode code2 = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&ci, js_, cmd_stream.c_str(), config_.name.c_str(), nullptr, &code2) !=
        NATS_OK) {
      why = "cannot create the consumer " + config_.name + " on " + cmd_stream + ": " +
            nats_error(s, code);
      return false;
    }
    jsConsumerInfo_Destroy(ci);
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = cmd_stream.c_str();
  so.Consumer = config_.name.c_str();
  so.ManualAck = true;
  natsSubscription* sub = nullptr;
  s = js_Subscribe(&sub, js_, cmd_subject.c_str(), &FederationCallbacks::command, this, nullptr,
                   &so, &code);
  if (s != NATS_OK) {
    why = "cannot consume " + cmd_stream + ": " + nats_error(s, code);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    subs_.push_back(sub);
  }
  // Retained values: the latest per subject, then every new one.
  jsSubOptions ko;
  jsSubOptions_Init(&ko);
  ko.Stream = kv_stream.c_str();
  ko.Ordered = true;
  ko.Config.DeliverPolicy = js_DeliverLastPerSubject;
  sub = nullptr;
  s = js_Subscribe(&sub, js_, kv_subject.c_str(), &FederationCallbacks::retained, this, nullptr,
                   &ko, &code);
  if (s != NATS_OK) {
    why = "cannot read " + kv_stream + ": " + nats_error(s, code);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    subs_.push_back(sub);
  }
  consumers_ready_ = true;
  return true;
}

void Federation::command_loop() {
  std::int64_t next_setup_ms = 0;
  std::string last_why;
  while (!stopping_) {
    CommandJob job;
    bool have = false;
    bool setup = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      command_cv_.wait_for(lock, std::chrono::milliseconds(config_.reconnect_wait_ms), [this] {
        return stopping_ || !command_queue_.empty() || (setup_needed_ && connected_);
      });
      if (stopping_) break;
      const std::int64_t now = wall_us() / 1000;
      if (setup_needed_ && connected_ && now >= next_setup_ms) {
        setup = true;
        next_setup_ms = now + config_.reconnect_wait_ms;
      } else if (!command_queue_.empty()) {
        job = std::move(command_queue_.front());
        command_queue_.pop_front();
        have = true;
      }
    }
    if (setup) {
      std::string why;
      const bool ok = set_up_backbone(why);
      std::lock_guard<std::mutex> lock(mutex_);
      if (ok) {
        setup_needed_ = false;
        backbone_ready_ = true;
        retained_cv_.notify_all();
        last_why.clear();
        spdlog::info("federation: JetStream streams and consumers ready");
      } else if (why != last_why) {
        spdlog::warn("federation: {} (retrying)", why);
        last_why = why;
      }
      continue;
    }
    if (!have) continue;
    if (job.kind == CommandJob::kStore)
      store_command(job.out);
    else
      finish_command(job.handle, job.delivered);
  }
  // Commands still waiting: their publishers are told, not left waiting.
  std::lock_guard<std::mutex> lock(mutex_);
  for (CommandJob& job : command_queue_) {
    if (job.kind != CommandJob::kStore) continue;
    Event e;
    e.stored_result = true;
    e.token = job.out.token;
    e.why = "the broker is stopping";
    events_.push_back(std::move(e));
  }
  command_queue_.clear();
}

std::string Federation::msg_id(std::uint64_t seq) const {
  return config_.name + ":" + std::to_string(epoch_) + ":" + std::to_string(seq);
}

bool Federation::store(const std::string& subject, const std::string& sealed, const std::string& id,
                       std::int64_t max_wait_ms, std::string& why) {
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, sealed.data(),
                                static_cast<int>(sealed.size()));
  if (s != NATS_OK) {
    why = nats_error(s);
    return false;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = id.c_str();
  po.MaxWait = max_wait_ms;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsPubAck* ack = nullptr;
  s = js_PublishMsg(&ack, js_, msg, &po, &code);
  natsMsg_Destroy(msg);
  if (ack) jsPubAck_Destroy(ack);
  if (s == NATS_OK) return true;
  why = nats_error(s, code);
  return false;
}

void Federation::retained_loop() {
  while (!stopping_) {
    RetainedJob job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      retained_cv_.wait_for(lock, std::chrono::milliseconds(config_.reconnect_wait_ms), [this] {
        return stopping_ || (!retained_order_.empty() && connected_ && backbone_ready_);
      });
      if (stopping_) break;
      if (retained_order_.empty() || !connected_ || !backbone_ready_) continue;
      const std::string topic = std::move(retained_order_.front());
      retained_order_.pop_front();
      auto it = retained_pending_.find(topic);
      if (it == retained_pending_.end()) continue;
      job = std::move(it->second);
      retained_pending_.erase(it);
    }
    if (job.sealed.empty()) {
      job.subject = fed::subject_for(config_.subject_prefix, 'r', config_.name, job.out.topic);
      std::uint64_t seq = 0;
      job.sealed = seal(job.out, job.subject, &seq);
      job.id = msg_id(seq);
    }
    std::string why;
    if (store(job.subject, job.sealed, job.id, 2000, why)) {
      ++exported_;
      continue;
    }
    // Not stored: it waits again at the front, unless a newer value of its
    // topic came meanwhile.
    std::unique_lock<std::mutex> lock(mutex_);
    if (!retained_pending_.count(job.out.topic)) {
      retained_order_.push_front(job.out.topic);
      retained_pending_.emplace(job.out.topic, std::move(job));
    }
    retained_cv_.wait_for(lock, std::chrono::milliseconds(100),
                          [this] { return stopping_.load(); });
  }
}

void Federation::store_command(const Outgoing& out) {
  const std::string subject =
      fed::subject_for(config_.subject_prefix, 'c', config_.name, out.topic);
  std::uint64_t seq = 0;
  const std::string sealed = seal(out, subject, &seq);
  // The id de-duplicates retries: a publish whose acknowledgement was lost
  // (a NATS node killed) is sent again with the same id and stored once.
  const std::string id = msg_id(seq);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.command_timeout_ms);
  std::string why;
  bool stored = false;
  while (!stopping_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) break;
    if (store(subject, sealed, id, std::min<std::int64_t>(left, 2000), why)) {
      stored = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (stored)
    ++commands_stored_;
  else
    ++commands_unavailable_;
  Event e;
  e.stored_result = true;
  e.token = out.token;
  e.ok = stored;
  e.why = stored ? std::string()
                 : "JetStream did not acknowledge it within " +
                       std::to_string(config_.command_timeout_ms) +
                       " ms: " + (why.empty() ? std::string("stopping") : why) +
                       "; it may still be delivered";
  post(std::move(e), false);
}

bool Federation::own(const char* subject) const {
  // "<prefix>.<class>.<name>." : this broker's own envelope, read back from
  // a JetStream stream (core NATS never echoes them: no-echo).
  const std::string own_prefix = config_.subject_prefix + ".";
  if (!subject || std::strncmp(subject, own_prefix.c_str(), own_prefix.size()) != 0) return false;
  const char* rest = subject + own_prefix.size();
  if (!rest[0] || rest[1] != '.') return false;
  rest += 2;
  return std::strncmp(rest, config_.name.c_str(), config_.name.size()) == 0 &&
         rest[config_.name.size()] == '.';
}

void Federation::on_command(natsMsg* msg) {
  if (own(natsMsg_GetSubject(msg))) {
    natsMsg_Ack(msg, nullptr);
    natsMsg_Destroy(msg);
    return;
  }
  fed::Envelope env;
  if (!accept(natsMsg_GetSubject(msg), natsMsg_GetData(msg), natsMsg_GetDataLength(msg), 'c',
              env)) {
    natsMsg_Term(msg, nullptr);  // never to be delivered: not redelivered either
    natsMsg_Destroy(msg);
    return;
  }
  const std::int64_t age_us = wall_us() - env.publish_time_us;
  bool duplicate = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fed::ReplayWindow probe = peers_[env.origin].windows['c'];
    duplicate = probe.check_and_mark(env.epoch, env.seq) != fed::ReplayWindow::Verdict::kFresh;
    if (duplicate) ++refused_[fed::refusal_name(fed::Refusal::kReplayed)];
  }
  if (duplicate) {
    // Delivered here before (a redelivery after a restart), or a replay.
    ++commands_duplicate_;
    natsMsg_Ack(msg, nullptr);
    natsMsg_Destroy(msg);
    return;
  }
  if (age_us > static_cast<std::int64_t>(config_.command_max_age_s) * 1000000) {
    ++commands_expired_;
    refuse(fed::refusal_name(fed::Refusal::kExpired), env.origin,
           "command on " + env.topic + " is " + std::to_string(age_us / 1000) + " ms old");
    natsMsg_Term(msg, nullptr);
    natsMsg_Destroy(msg);
    return;
  }
  Event e;
  e.imported = local_form(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint64_t handle = next_handle_++;
    HeldCommand& h = held_[handle];
    h.msg = msg;
    h.origin = env.origin;
    h.epoch = env.epoch;
    h.seq = env.seq;
    h.publish_time_us = env.publish_time_us;
    e.imported.handle = handle;
  }
  post(std::move(e), false);
}

void Federation::import_done(std::uint64_t handle, std::uint32_t delivered) {
  std::lock_guard<std::mutex> lock(mutex_);
  CommandJob job;
  job.kind = CommandJob::kDone;
  job.handle = handle;
  job.delivered = delivered;
  command_queue_.push_back(std::move(job));
  command_cv_.notify_one();
}

void Federation::finish_command(std::uint64_t handle, std::uint32_t delivered) {
  HeldCommand h;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = held_.find(handle);
    if (it == held_.end()) return;
    h = it->second;
    held_.erase(it);
    if (delivered > 0) peers_[h.origin].windows['c'].check_and_mark(h.epoch, h.seq);
  }
  if (delivered > 0) {
    // Remembered on disk before the acknowledgement: a restart in between
    // finds it in the window and does not deliver it twice.
    save_state();
    natsMsg_Ack(h.msg, nullptr);
    ++commands_delivered_;
  } else if (wall_us() - h.publish_time_us >
             static_cast<std::int64_t>(config_.command_max_age_s) * 1000000) {
    ++commands_expired_;
    refuse(fed::refusal_name(fed::Refusal::kExpired), h.origin,
           "no local subscriber took the command within command_max_age_s");
    natsMsg_Term(h.msg, nullptr);
  } else {
    // No subscriber here yet (the robot's agent reconnecting): ask again later.
    ++commands_held_;
    natsMsg_NakWithDelay(h.msg, kHoldDelayMs, nullptr);
  }
  natsMsg_Destroy(h.msg);
}

// ---------------------------------------------------------------- import

void Federation::refuse(const std::string& cause, const std::string& origin,
                        const std::string& detail) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = peers_.find(origin);
  refuse_locked(cause, it == peers_.end() ? nullptr : &it->second, origin, detail);
}

void Federation::refuse_locked(const std::string& cause, PeerState* peer, const std::string& origin,
                               const std::string& detail) {
  const std::uint64_t n = ++refused_[cause];
  if (peer) ++peer->refused;
  // The first few of each cause in the log, then every 1000th.
  if (n <= 5 || n % 1000 == 0)
    spdlog::warn("federation: envelope refused cause={} origin={} count={} {}", cause,
                 origin.empty() ? "?" : origin, n, detail);
}

bool Federation::accept(const char* subject, const char* data, int size, char klass,
                        fed::Envelope& env) {
  const std::string_view sub(subject ? subject : "");
  const fed::Refusal r = fed::open(
      std::string_view(data, size > 0 ? static_cast<std::size_t>(size) : 0), config_.subject_prefix,
      sub, keys_,
      [this](std::string_view origin) -> const std::array<std::uint8_t, 32>* {
        auto it = peers_.find(std::string(origin));  // keys never change after start
        return it == peers_.end() ? nullptr : &it->second.key;
      },
      env);
  if (r != fed::Refusal::kNone) {
    // The origin claimed by the subject, for the per-peer count.
    fed::ParsedSubject parsed;
    const bool named = fed::parse_subject(config_.subject_prefix, sub, parsed).ok();
    refuse(fed::refusal_name(r), named ? parsed.origin : std::string(),
           "subject=" + std::string(sub));
    return false;
  }
  if (fed::class_letter(env.klass) != klass) {
    refuse(fed::refusal_name(fed::Refusal::kSubjectMismatch), env.origin,
           "class does not match the subscription");
    return false;
  }
  if (env.origin == config_.name) {
    refuse("own_origin", env.origin, "an envelope naming this broker as its origin");
    return false;
  }
  if (!check_topic(env.topic).empty()) {
    refuse(fed::refusal_name(fed::Refusal::kDenied), env.origin, "invalid topic");
    return false;
  }
  const std::int64_t now = wall_us();
  std::lock_guard<std::mutex> lock(mutex_);
  PeerState& peer = peers_[env.origin];
  auto refused = [&](fed::Refusal why) {
    refuse_locked(fed::refusal_name(why), &peer, env.origin, "topic=" + env.topic);
    return false;
  };
  if (!matches_any(peer.publish, env.topic)) return refused(fed::Refusal::kDenied);
  if (!matches_any(config_.import_patterns, env.topic)) return refused(fed::Refusal::kNotImported);
  if (klass == 's' &&
      now - env.publish_time_us > static_cast<std::int64_t>(config_.stream_max_age_s) * 1000000)
    return refused(fed::Refusal::kExpired);
  if (klass == 's' &&
      peer.windows['s'].check_and_mark(env.epoch, env.seq) != fed::ReplayWindow::Verdict::kFresh)
    return refused(fed::Refusal::kReplayed);
  if (klass == 'r') {
    // Latest wins per topic: an older value is a replay; the same one again
    // (the stream read anew after a reconnection) is harmless.
    auto& latest = peer.latest[env.topic];
    const std::pair<std::uint64_t, std::uint64_t> at{env.epoch, env.seq};
    if (at < latest) return refused(fed::Refusal::kReplayed);
    latest = at;
  }
  ++peer.accepted;
  peer.last_seen_us = now;
  peer.lag_us = now - env.publish_time_us;
  return true;
}

ImportedPublication Federation::local_form(const fed::Envelope& env) const {
  ImportedPublication m;
  // A peer's $SYS is its own: $SYS/x of lab-b is $SYS/federation/lab-b/x here.
  if (env.topic.rfind("$SYS/", 0) == 0)
    m.topic = "$SYS/federation/" + env.origin + "/" + env.topic.substr(5);
  else
    m.topic = env.topic;
  m.publisher = env.origin + "/" + env.publisher;
  m.payload = env.payload;
  m.content_type = env.content_type;
  m.retain = env.retained || env.klass == fed::Class::kRetained;
  m.command = env.klass == fed::Class::kCommand;
  return m;
}

bool Federation::post(Event&& e, bool droppable) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (droppable && events_.size() >= config_.import_queue) {
    ++import_dropped_;
    return false;
  }
  const bool was_empty = events_.empty();
  events_.push_back(std::move(e));
  if (was_empty) wake();
  return true;
}

void Federation::wake() {
  if (wake_[1] < 0) return;
  const char c = 'f';
  [[maybe_unused]] const ssize_t n = ::write(wake_[1], &c, 1);
}

void Federation::on_published(natsMsg* msg, char klass) {
  fed::Envelope env;
  // Retained values come from a JetStream stream, this broker's own among them.
  if (!(klass == 'r' && own(natsMsg_GetSubject(msg))) &&
      accept(natsMsg_GetSubject(msg), natsMsg_GetData(msg), natsMsg_GetDataLength(msg), klass,
             env)) {
    Event e;
    e.imported = local_form(env);
    post(std::move(e), true);
  }
  natsMsg_Destroy(msg);
}

void Federation::drain(Protocol& protocol) {
  char buf[256];
  while (::read(wake_[0], buf, sizeof buf) > 0) {
  }
  std::deque<Event> events;
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.size() <= kEventsPerDrain) {
      events.swap(events_);
    } else {
      for (std::size_t i = 0; i < kEventsPerDrain; ++i) {
        events.push_back(std::move(events_.front()));
        events_.pop_front();
      }
      more = true;
    }
  }
  for (Event& e : events) {
    if (e.stored_result) {
      protocol.federation_stored(e.token, e.ok, e.why);
    } else {
      protocol.import_publication(e.imported);
      ++imported_;
    }
  }
  if (more) wake();  // the rest in the next loop turn, after the peers' own input
}

// ---------------------------------------------------------------- state

Status Federation::load_state() {
  const std::string path = state_path();
  if (path.empty()) return Status::Ok();
  std::ifstream in(path);
  if (!in) return Status::Ok();  // first start
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream fields(line);
    std::string kind;
    fields >> kind;
    if (kind == "epoch") {
      fields >> epoch_;
    } else if (kind == "window") {
      std::string origin, klass;
      fields >> origin >> klass;
      std::string rest;
      std::getline(fields, rest);
      if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
      auto it = peers_.find(origin);
      if (it == peers_.end() || klass.size() != 1) continue;  // a peer no longer configured
      if (Status s = it->second.windows[klass[0]].restore(rest); !s)
        return Status::Error(path + ":" + std::to_string(number) + ": " + s.message(),
                             StatusCode::kConfig);
    } else if (!kind.empty()) {
      return Status::Error(path + ":" + std::to_string(number) + ": unknown line",
                           StatusCode::kConfig);
    }
  }
  return Status::Ok();
}

void Federation::save_state() {
  const std::string path = state_path();
  if (path.empty()) return;
  std::string text = "epoch " + std::to_string(epoch_) + "\n";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [origin, peer] : peers_)
      for (const auto& [klass, window] : peer.windows)
        if (!window.empty())
          text += "window " + origin + " " + std::string(1, klass) + " " + window.save() + "\n";
  }
  std::lock_guard<std::mutex> lock(state_mutex_);
  if (!write_file_atomically(path, text, 0600))
    spdlog::error("federation: cannot write the state file {}", path);
}

// ---------------------------------------------------------------- admin

void Federation::describe(v1::AdminReply& reply) const {
  v1::FederationStatus& st = *reply.mutable_federation();
  st.set_name(config_.name);
  st.set_connected(connected_);
  st.set_ready(connected_ && backbone_ready_);
  if (nc_ && connected_) {
    char url[256] = {0};
    if (natsConnection_GetConnectedUrl(nc_, url, sizeof url) == NATS_OK) st.set_server(url);
  }
  st.set_reconnects(reconnects_ > 0 ? reconnects_ - 1 : 0);
  st.set_exported(exported_);
  st.set_export_dropped(export_dropped_);
  st.set_commands_stored(commands_stored_);
  st.set_commands_unavailable(commands_unavailable_);
  st.set_imported(imported_);
  st.set_import_dropped(import_dropped_);
  st.set_commands_delivered(commands_delivered_);
  st.set_commands_duplicate(commands_duplicate_);
  st.set_commands_held(commands_held_);
  st.set_commands_expired(commands_expired_);
  std::lock_guard<std::mutex> lock(mutex_);
  st.set_export_queue(static_cast<std::uint32_t>(export_queue_.size() + retained_order_.size()));
  for (const auto& [cause, n] : refused_) (*st.mutable_refused())[cause] = n;
  for (const auto& [name, peer] : peers_) {
    auto* p = st.add_peers();
    p->set_name(name);
    p->set_accepted(peer.accepted);
    p->set_refused(peer.refused);
    p->set_last_seen_us(peer.last_seen_us);
    p->set_lag_us(peer.lag_us);
  }
}

}  // namespace curvebus::broker
