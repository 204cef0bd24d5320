// Input: every message is checked against the identity of the session it
// lands in, then its ops are served — in slices when a frame is large, so
// that no single frame holds up other peers (DESIGN.md: "no single frame may
// stall routing").
//
// Identity.  A ROUTER routing id is only a lookup handle: a peer may choose
// its own (ZMQ_ROUTING_ID) and libzmq reuses a dropped peer's id for
// whoever claims it next.  So the key libzmq proved in the handshake (the ZAP
// User-Id, attached to every message) must be the session's key; a message
// whose key differs closes that session, is answered ERROR IDENTITY and is
// audited.  Sessions are only ever opened on routing ids libzmq generated
// (handle_register.cpp refuses peer-chosen ones), and those are unguessable
// (core.cpp seeds libzmq's counter).
//
// Slicing.  Each loop turn has a work budget (units of about a microsecond);
// an op's cost is 1 for a PUBLISH plus its fan-out, 5 for other requests plus
// what they scan (directory, history).  When the turn's budget is spent in
// the middle of a frame, the rest of the frame is kept with its session
// (PendingInput) and served in later turns, round robin with other sessions'
// deferred input, before new messages; later messages of that session queue
// behind it so its order is kept.
#include <cstring>

#include <google/protobuf/unknown_field_set.h>
#include <spdlog/spdlog.h>

#include "curvebus/certificate.hpp"
#include "protocol.hpp"

namespace curvebus::broker {

namespace {

// Work one session may use per turn when others are waiting too.
constexpr std::int64_t kSliceUnits = 4000;
// Deferred input one session may hold; beyond it, messages are refused (BUSY).
constexpr std::size_t kMaxDeferredBytes = 8u << 20;

}  // namespace

void Protocol::input(const std::string& peer, const void* data, std::size_t size, const char* user,
                     const std::function<PeerMeta()>& meta) {
  ++counters_.messages_in;
  counters_.bytes_in += size;
  Session* s = sessions_.find(peer);
  if (s) {
    if (!user || s->key != user) {
      identity_mismatch(*s, user);
      PendingInput in;
      in.meta = meta();
      if (decode_input(peer, data, size, in)) serve(peer, in, true);
      return;
    }
    // Any message is an alive signal; a lone HEARTBEAT (most of what an idle
    // peer sends) is nothing more.
    ++s->messages_in;
    heard(*s);
    if (size == heartbeat_frame()->size() &&
        std::memcmp(data, heartbeat_frame()->data(), size) == 0)
      return;
    if (!s->input.empty()) {  // behind deferred input: keep the order
      PendingInput in;
      in.bytes = std::make_unique<std::string>(static_cast<const char*>(data), size);
      in.undecoded = true;
      defer(*s, std::move(in));
      return;
    }
    // Fast path: a frame of PUBLISH ops only (the bulk of the traffic) is
    // read in place, without building protobuf messages.
    if (scan_publish_frame(data, size, publish_views_)) {
      std::size_t i = 0;
      for (; i < publish_views_.size() && turn_units_ > 0; ++i) {
        op_work_ = 0;
        handle_publish(*s, publish_views_[i]);
        turn_units_ -= std::max<std::int64_t>(1, static_cast<std::int64_t>(op_work_));
      }
      if (i < publish_views_.size()) {
        PendingInput in;
        in.bytes = std::make_unique<std::string>(static_cast<const char*>(data), size);
        scan_publish_frame(in.bytes->data(), in.bytes->size(), in.views);
        in.next = i;
        defer(*s, std::move(in));
      }
      return;
    }
  }
  if (!s) {
    // The routing id of a session on another listener of this endpoint: as
    // if it had been taken over on one ROUTER, the session is closed and the
    // connection gets ERROR IDENTITY (a connection is its listener + id).
    if (Session* other = sibling_session(peer)) {
      identity_mismatch(*other, user);
      sessions_.tombstone(peer, v1::ERROR_IDENTITY);
    }
  }
  PendingInput in;
  if (!s) in.meta = meta();
  if (!decode_input(peer, data, size, in)) return;
  // An unregistered peer's ops are cheap (REGISTER, or rate-limited errors).
  if (serve(peer, in, s == nullptr)) return;
  if (Session* owner = sessions_.find(peer))
    defer(*owner, std::move(in));
  else
    serve(peer, in, true);
}

bool Protocol::decode_input(const std::string& peer, const void* data, std::size_t size,
                            PendingInput& in) {
  frame_.Clear();
  if (decode_frame(data, size, frame_)) {
    in.frame = std::make_unique<v1::Frame>();
    in.frame->Swap(&frame_);
    return true;
  }
  // Slow path: split the frame into its ops without a schema, so the valid
  // ops are still served in order and each bad one gets its own answer
  // (INVALID_TOPIC for text that is not UTF-8, MALFORMED otherwise).
  google::protobuf::UnknownFieldSet fields;
  const bool split = size > 0 && size < static_cast<std::size_t>(INT32_MAX) &&
                     fields.ParseFromArray(data, static_cast<int>(size)) &&
                     fields.field_count() > 0;
  bool all_ops = split;
  for (int i = 0; split && i < fields.field_count(); ++i)
    all_ops = all_ops && fields.field(i).number() == 1 &&
              fields.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED;
  if (!all_ops) {
    malformed(peer, size, 0, "frame",
              "not a curvebus v1 Frame (" + std::to_string(size) + " bytes)");
    return false;
  }
  in.raw_ops.reserve(static_cast<std::size_t>(fields.field_count()));
  for (int i = 0; i < fields.field_count(); ++i)
    in.raw_ops.push_back(fields.field(i).length_delimited());
  return true;
}

bool Protocol::serve(const std::string& peer, PendingInput& in, bool force) {
  if (in.undecoded) {
    in.undecoded = false;
    std::unique_ptr<std::string> bytes = std::move(in.bytes);
    if (scan_publish_frame(bytes->data(), bytes->size(), in.views)) {
      in.bytes = std::move(bytes);
    } else if (!decode_input(peer, bytes->data(), bytes->size(), in)) {
      return true;
    }
  }
  while (in.next < in.size()) {
    if (!force && turn_units_ <= 0) return false;
    op_work_ = 0;
    const std::size_t i = in.next++;
    if (!in.views.empty()) {
      if (Session* s = sessions_.find(peer)) {
        handle_publish(*s, in.views[i]);
      } else {
        v1::Op op;  // the session went away meanwhile: answered as unregistered
        op.mutable_publish()->set_request_id(in.views[i].request_id);
        dispatch_op(peer, in.meta, op);
      }
    } else if (in.frame) {
      dispatch_op(peer, in.meta, *in.frame->mutable_ops(static_cast<int>(i)));
    } else {
      v1::Op op;
      if (op.ParseFromString(in.raw_ops[i]))
        dispatch_op(peer, in.meta, op);
      else
        diagnose_bad_op(peer, in.raw_ops[i]);
    }
    turn_units_ -= std::max<std::int64_t>(1, static_cast<std::int64_t>(op_work_));
  }
  return true;
}

void Protocol::defer(Session& s, PendingInput&& in) {
  const std::size_t bytes = in.bytes ? in.bytes->size() : 1024;
  if (s.input_bytes + bytes > kMaxDeferredBytes) {
    ++counters_.budget_refused;
    const std::int64_t now = now_ms_;
    if (now - s.busy_error_ms >= 100) {
      s.busy_error_ms = now;
      send_error(s, v1::ERROR_BUSY, 0,
                 "input refused: " + std::to_string(s.input_bytes) +
                     " bytes of this session's earlier input are still being served",
                 "", "frame");
    }
    return;
  }
  ++counters_.input_deferred;
  if (s.input.empty()) backlog_.push_back(s.id);
  s.input_bytes += bytes;
  s.input.push_back(std::move(in));
}

void Protocol::serve_backlogs() {
  if (backlog_.empty()) return;
  std::vector<std::uint64_t> ids;
  ids.swap(backlog_);
  std::size_t k = 0;
  for (; k < ids.size() && turn_units_ > 0; ++k) {
    const std::uint64_t id = ids[k];
    Session* s = sessions_.find(id);
    if (!s || s->input.empty()) continue;
    const std::string peer = s->peer;
    const std::int64_t saved = turn_units_;
    turn_units_ = std::min(saved, kSliceUnits);
    const std::int64_t slice = turn_units_;
    while (s && !s->input.empty() && turn_units_ > 0) {
      // Taken out of the session while served: the session may go away.
      PendingInput in = std::move(s->input.front());
      s->input.pop_front();
      const std::size_t bytes = in.bytes ? in.bytes->size() : 1024;
      s->input_bytes -= std::min(s->input_bytes, bytes);
      const bool done = serve(peer, in, false);
      s = sessions_.find(id);
      if (!done && s) {
        s->input_bytes += bytes;
        s->input.push_front(std::move(in));
      }
    }
    turn_units_ = saved - (slice - turn_units_);
    if (s && !s->input.empty()) backlog_.push_back(id);
  }
  // Sessions not reached this turn keep their place ahead of the others.
  backlog_.insert(backlog_.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end());
}

Session* Protocol::sibling_session(const std::string& peer) {
  if (!facts_.listeners) return nullptr;
  const std::vector<Listener>& listeners = *facts_.listeners;
  const auto index = static_cast<std::size_t>(peer.front() - '0');
  if (index >= listeners.size() || listeners[index].shards < 2) return nullptr;
  const Listener& l = listeners[index];
  std::string other = peer;
  for (std::size_t i = l.first_shard; i < l.first_shard + l.shards; ++i) {
    if (i == index) continue;
    other.front() = static_cast<char>('0' + i);
    if (Session* s = sessions_.find(other)) return s;
  }
  return nullptr;
}

void Protocol::identity_mismatch(Session& s, const char* user) {
  ++counters_.identity_mismatches;
  const std::string sender = user && std::strlen(user) == 40 ? key_fingerprint(user) : "none";
  spdlog::warn(
      "identity mismatch: a message signed by fp={} arrived on the session of name={} fp={} "
      "session={}; session closed",
      sender, s.name, s.fingerprint, s.session_id);
  audit("identity_mismatch", s.name,
        {{"name", s.name},
         {"fp", s.fingerprint},
         {"session", s.session_id},
         {"sender_fp", sender},
         {"address", s.address}});
  const std::string peer = s.peer;
  close_session(s, CloseReason::kIdentity, "message from another key (fp " + sender + ")");
  sessions_.tombstone(peer, v1::ERROR_IDENTITY);
}

}  // namespace curvebus::broker
