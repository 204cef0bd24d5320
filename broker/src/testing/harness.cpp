// Harness (harness.hpp): a Core with a manual clock and a recording writer,
// an allow-list written from NameSpecs into a temporary home.
#include "testing/harness.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include "core.hpp"
#include "curvebus/certificate.hpp"
#include "curvebus/codec.hpp"

namespace curvebus::broker::testing {

namespace {

constexpr int kMaxSettleTurns = 100000;

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string toml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + toml_string(items[i]);
  return out + "]";
}

std::vector<NameSpec> default_names() {
  NameSpec dev;
  dev.name = "dev";
  dev.admin = true;
  dev.publish = {"#"};
  dev.subscribe = {"#", "$SYS/#"};
  NameSpec alex;
  alex.name = "alex";
  alex.role = "agent";
  alex.publish = {"robot/{name}/#"};
  alex.subscribe = {"robot/{name}/cmd", "robot/{name}/cmd/clear-estop", "$SYS/presence/#"};
  return {dev, alex};
}

std::string describe(const std::vector<v1::Op>& ops) {
  std::string out;
  for (const auto& op : ops) out += "\n  " + op.ShortDebugString();
  return out.empty() ? " (nothing)" : out;
}

}  // namespace

// ---------------------------------------------------------------- RecordingWriter

PeerWriter::Result RecordingWriter::write(const std::string& peer, std::string_view message) {
  if (gone_.count(peer)) {
    ++refused_;
    return Result::kGone;
  }
  if (blocked_.count(peer)) {
    ++refused_;
    return Result::kWouldBlock;
  }
  messages_[peer].emplace_back(message);
  return Result::kSent;
}

void RecordingWriter::set_blocked(const std::string& peer, bool blocked) {
  if (blocked)
    blocked_.insert(peer);
  else
    blocked_.erase(peer);
}

std::vector<std::string> RecordingWriter::take(const std::string& peer) {
  std::vector<std::string> out;
  auto it = messages_.find(peer);
  if (it != messages_.end()) {
    out.swap(it->second);
    messages_.erase(it);
  }
  return out;
}

std::vector<std::string> RecordingWriter::peers() const {
  std::vector<std::string> out;
  for (const auto& [peer, messages] : messages_)
    if (!messages.empty()) out.push_back(peer);
  return out;
}

std::size_t RecordingWriter::waiting(const std::string& peer) const {
  auto it = messages_.find(peer);
  return it == messages_.end() ? 0 : it->second.size();
}

// ---------------------------------------------------------------- Harness

Harness::Harness() : Harness(Options{}) {}

Harness::Harness(Options options) : config_(std::move(options.config)) {
  // The broker's log would drown a test's output: errors only, unless
  // CURVEBUS_TEST_LOG names a level (debug, info, ...).
  const char* level = std::getenv("CURVEBUS_TEST_LOG");
  spdlog::set_level(level && *level ? spdlog::level::from_str(level) : spdlog::level::err);
  std::string tmpl = (std::filesystem::temp_directory_path() / "curvebus-harness-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("harness: cannot create a temporary home");
  home_ = tmpl;
  if (options.names.empty()) options.names = default_names();
  std::string acl;
  for (const NameSpec& n : options.names) {
    const KeyPair keys = generate_keypair();
    keys_[n.name] = keys.public_key;
    acl += "[[client]]\nname = " + toml_string(n.name) +
           "\npublic_key = " + toml_string(keys.public_key) + "\nrole = " + toml_string(n.role) +
           "\nadmin = " + (n.admin ? "true" : "false") + "\npublish = " + toml_list(n.publish) +
           "\nsubscribe = " + toml_list(n.subscribe) + "\n";
    if (!n.not_before.empty()) acl += "not_before = " + toml_string(n.not_before) + "\n";
    if (!n.not_after.empty()) acl += "not_after = " + toml_string(n.not_after) + "\n";
    acl += "\n";
  }
  config_.home = home_;
  config_.acl_path = home_ + "/acl.toml";
  config_.keys_dir = home_ + "/keys";
  config_.endpoint_file.clear();
  config_.revocations_file = options.keep_revocations ? home_ + "/revoked.toml" : "";
  config_.audit_file = options.keep_audit ? home_ + "/audit.log" : "";
  config_.retained_file = home_ + "/retained.pb";
  if (!options.persist_retained) config_.retained_sync_ms = 0;
  {
    std::ofstream out(config_.acl_path);
    out << acl;
    if (!out) throw std::runtime_error("harness: cannot write " + config_.acl_path);
  }
  Environment env;
  env.clock = &clock_;
  env.writer = &writer_;
  env.retained_sync = std::move(options.retained_sync);
  core_ = std::make_unique<Core>(config_, std::move(env));
  if (Status s = core_->open(); !s)
    throw std::runtime_error("harness: the core does not open: " + s.message());
}

Harness::~Harness() {
  core_.reset();  // the retained log's writer finishes first
  std::error_code ignored;
  std::filesystem::remove_all(home_, ignored);
}

const std::string& Harness::key_of(const std::string& name) const {
  auto it = keys_.find(name);
  if (it == keys_.end()) throw std::runtime_error("harness: no name '" + name + "' was declared");
  return it->second;
}

Peer Harness::connect(const std::string& name) {
  Peer p;
  p.name = name;
  p.key = key_of(name);
  p.id = std::string("0") + std::string(1, '\0') + "peer-" + std::to_string(next_peer_++);
  p.address = "127.0.0.1:" + std::to_string(40000 + next_peer_ % 20000);
  return p;
}

Peer Harness::open(const std::string& name, const RegisterSpec& spec) {
  Peer p = connect(name);
  v1::Op op;
  auto* r = op.mutable_register_();
  r->set_client_name(spec.client_name);
  r->set_heartbeat_ms(spec.heartbeat_ms);
  for (const auto& t : spec.provides) r->add_provides(t);
  const v1::Op answer = request(p, op);
  if (!answer.has_registered())
    throw std::runtime_error("harness: REGISTER of '" + name +
                             "' was answered: " + answer.ShortDebugString());
  p.registered = answer.registered();
  return p;
}

Peer Harness::open(const std::string& name, std::uint32_t heartbeat_ms) {
  RegisterSpec spec;
  spec.heartbeat_ms = heartbeat_ms;
  return open(name, spec);
}

void Harness::send(const Peer& peer, const v1::Op& op) {
  send_bytes(peer, encode_op(op));
}

void Harness::send(const Peer& peer, const std::vector<v1::Op>& ops) {
  std::string frame;
  for (const auto& op : ops) frame += encode_op(op);  // concatenated ops are one Frame
  send_bytes(peer, frame);
}

void Harness::send_bytes(const Peer& peer, std::string_view message) {
  send_one_turn(peer, message);
  settle();
}

void Harness::send_one_turn(const Peer& peer, std::string_view message) {
  PeerMeta meta;
  meta.user = peer.key;
  meta.chose_routing_id = peer.chose_routing_id;
  meta.address = peer.address;
  core_->begin_turn();
  core_->input(peer.id, message.data(), message.size(), meta);
  core_->end_turn();
}

void Harness::settle() {
  for (int i = 0; i < kMaxSettleTurns && core_->has_deferred_input(); ++i) turn();
  if (core_->has_deferred_input()) throw std::runtime_error("harness: deferred input never drains");
}

void Harness::turn() {
  core_->begin_turn();
  core_->end_turn();
}

void Harness::advance(std::chrono::milliseconds d) {
  const std::int64_t target = clock_.steady_ms() + d.count();
  for (;;) {
    turn();
    const std::int64_t next = std::max(core_->next_wakeup_ms(), clock_.steady_ms() + 1);
    if (next > target) break;
    clock_.advance(std::chrono::milliseconds(next - clock_.steady_ms()));
  }
  if (clock_.steady_ms() < target) {
    clock_.advance(std::chrono::milliseconds(target - clock_.steady_ms()));
    turn();
  }
}

std::vector<v1::Op>& Harness::inbox(const Peer& peer) {
  auto& box = inboxes_[peer.id];
  for (const std::string& message : writer_.take(peer.id)) {
    v1::Frame frame;
    if (!decode_frame(message.data(), message.size(), frame))
      throw std::runtime_error("harness: the broker wrote a message that is not a Frame (" +
                               std::to_string(message.size()) + " bytes)");
    for (auto& op : *frame.mutable_ops()) box.push_back(std::move(op));
  }
  return box;
}

std::vector<v1::Op> Harness::take(const Peer& peer) {
  std::vector<v1::Op> out;
  out.swap(inbox(peer));
  return out;
}

std::vector<std::string> Harness::take_messages(const Peer& peer) {
  return writer_.take(peer.id);
}

std::map<std::string, std::vector<v1::Op>> Harness::take_all() {
  std::map<std::string, std::vector<v1::Op>> out;
  std::set<std::string> ids;
  for (const auto& id : writer_.peers()) ids.insert(id);
  for (const auto& [id, box] : inboxes_)
    if (!box.empty()) ids.insert(id);
  for (const auto& id : ids) {
    Peer p;
    p.id = id;
    out[id] = take(p);
  }
  inboxes_.clear();
  return out;
}

bool Harness::registered(const Peer& peer) const {
  return core_->has_session(peer.id);
}

v1::Op Harness::request(const Peer& peer, v1::Op op) {
  std::uint64_t id = answered_request_id(op);
  auto set_id = [&](auto* body) {
    if (body->request_id() == 0) body->set_request_id(next_request_++);
    id = body->request_id();
  };
  switch (op.body_case()) {
    case v1::Op::kRegister:
      set_id(op.mutable_register_());
      break;
    case v1::Op::kSubscribe:
      set_id(op.mutable_subscribe());
      break;
    case v1::Op::kUnsubscribe:
      set_id(op.mutable_unsubscribe());
      break;
    case v1::Op::kPublish:
      set_id(op.mutable_publish());
      break;
    case v1::Op::kPull:
      set_id(op.mutable_pull());
      break;
    case v1::Op::kTopics:
      set_id(op.mutable_topics());
      break;
    case v1::Op::kAdmin:
      set_id(op.mutable_admin());
      break;
    default:
      throw std::runtime_error("harness: request() needs a request op, not " +
                               op.ShortDebugString());
  }
  send(peer, op);
  auto& box = inbox(peer);
  for (auto it = box.begin(); it != box.end(); ++it) {
    if (answered_request_id(*it) != id) continue;
    v1::Op answer = std::move(*it);
    box.erase(it);
    return answer;
  }
  throw std::runtime_error("harness: no answer to " + op.ShortDebugString() +
                           "; the peer got:" + describe(box));
}

void Harness::set_blocked(const Peer& peer, bool blocked) {
  writer_.set_blocked(peer.id, blocked);
}

void Harness::disconnect(const Peer& peer) {
  writer_.set_gone(peer.id);
}

v1::BrokerStatus Harness::status() {
  v1::BrokerStatus st;
  core_->fill_status(st);
  return st;
}

// ---------------------------------------------------------------- ops

namespace ops {

v1::Op subscribe(const std::vector<std::string>& patterns, bool want_retained) {
  v1::Op op;
  for (const auto& p : patterns) op.mutable_subscribe()->add_patterns(p);
  op.mutable_subscribe()->set_want_retained(want_retained);
  return op;
}

v1::Op unsubscribe(const std::vector<std::string>& patterns) {
  v1::Op op;
  for (const auto& p : patterns) op.mutable_unsubscribe()->add_patterns(p);
  return op;
}

v1::Op publish(const std::string& topic, const std::string& payload, bool ack, bool retain) {
  v1::Op op;
  auto* p = op.mutable_publish();
  p->set_topic(topic);
  p->set_payload(payload);
  p->set_ack(ack);
  p->set_retain(retain);
  return op;
}

v1::Op pull(const std::string& topic, std::uint64_t since_seq, std::uint32_t max_count) {
  v1::Op op;
  op.mutable_pull()->set_topic(topic);
  op.mutable_pull()->set_since_seq(since_seq);
  op.mutable_pull()->set_max_count(max_count);
  return op;
}

v1::Op topics(const std::string& pattern, const std::string& after) {
  v1::Op op;
  op.mutable_topics()->set_pattern(pattern);
  op.mutable_topics()->set_after(after);
  return op;
}

v1::Op admin(v1::AdminCommand command, const std::string& argument) {
  v1::Op op;
  op.mutable_admin()->set_command(command);
  op.mutable_admin()->set_argument(argument);
  return op;
}

v1::Op heartbeat() {
  v1::Op op;
  op.mutable_heartbeat();
  return op;
}

v1::Op ping(std::uint64_t nonce) {
  v1::Op op;
  op.mutable_ping()->set_nonce(nonce);
  return op;
}

v1::Op bye(const std::string& reason) {
  v1::Op op;
  op.mutable_bye()->set_reason(reason);
  return op;
}

}  // namespace ops

std::vector<v1::Op> of_kind(const std::vector<v1::Op>& ops, v1::Op::BodyCase kind) {
  std::vector<v1::Op> out;
  for (const auto& op : ops)
    if (op.body_case() == kind) out.push_back(op);
  return out;
}

std::vector<v1::Deliver> deliveries(const std::vector<v1::Op>& ops) {
  std::vector<v1::Deliver> out;
  for (const auto& op : ops)
    if (op.has_deliver()) out.push_back(op.deliver());
  return out;
}

const v1::Error* find_error(const std::vector<v1::Op>& ops, v1::ErrorCode code) {
  for (const auto& op : ops)
    if (op.has_error() && op.error().code() == code) return &op.error();
  return nullptr;
}

std::vector<v1::Presence> presences(const std::vector<v1::Op>& ops, const std::string& name) {
  std::vector<v1::Presence> out;
  for (const auto& op : ops) {
    if (!op.has_deliver() || op.deliver().topic() != "$SYS/presence/" + name) continue;
    v1::Presence p;
    if (!google::protobuf::util::JsonStringToMessage(op.deliver().payload(), &p).ok())
      throw std::runtime_error("presence is not JSON of v1::Presence: " + op.deliver().payload());
    out.push_back(p);
  }
  return out;
}

}  // namespace curvebus::broker::testing
