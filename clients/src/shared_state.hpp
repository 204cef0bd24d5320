// SharedState: what the client's caller threads and its I/O thread share.
//
// Everything under `mu` unless marked atomic.  The hot paths take `mu` once
// per publication (a caller pushing into the outbox) and twice per batch
// (the I/O thread taking it and recording it sent); deliveries take it only
// when the subscriptions changed (Dispatcher).
//
// Ownership: Client::Impl owns one, created with the client and destroyed
// after its I/O thread has ended.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "curvebus/client.hpp"
#include "curvebus/outbox.hpp"
#include "requests.hpp"
#include "subscriptions.hpp"
#include "wakeup.hpp"

namespace curvebus::client_detail {

struct SharedState {
  explicit SharedState(ClientOptions o) : options(std::move(o)), outbox(outbox_limits(options)) {}

  // The outbox bounds publications by count (ClientOptions::max_queued), as
  // the client always has, not by bytes; requests have Outbox's headroom
  // beyond it, so a subscribe still goes out behind a full queue.
  static Outbox::Limits outbox_limits(const ClientOptions& o) {
    Outbox::Limits l;
    l.max_ops = o.max_queued;
    l.max_bytes = ~std::size_t{0} / 4;
    return l;
  }

  const ClientOptions options;

  mutable std::mutex mu;
  // --- guarded by mu
  Outbox outbox;  // publications (kData) and requests (kControl, tag = request id)
  RequestTable requests;
  Subscriptions subscriptions;
  v1::Registered registration;  // the current session's REGISTERED
  std::uint32_t max_payload = 0;
  // The I/O thread will look at the outbox without being signalled again:
  // set by the caller that signals, cleared by the I/O thread when it takes
  // from the outbox.  Spares a system call per publication under load.
  bool wake_pending = false;
  std::thread::id io_thread;  // set by the I/O thread when it starts
  bool auth_refused = false;  // the CURVE handshake was refused
  Status fatal;               // a setup error that ended the link (a bad socket option)
  std::string last_problem;
  std::uint64_t published = 0, queue_full = 0, errors = 0, reconnects = 0;
  std::size_t room_waiters = 0;      // publishers blocked for room in the outbox
  std::condition_variable room_cv;   // outbox room, or stop
  std::condition_variable state_cv;  // state, auth_refused, fatal, or stop changed

  // --- atomics
  std::atomic<bool> stop{false};  // close() was called; set under mu too
  std::atomic<ConnectionState> state{ConnectionState::Idle};  // written under mu
  std::atomic<std::int64_t> last_heard{0};                    // steady_ms()
  std::atomic<std::uint64_t> frames_received{0};              // written by the I/O thread only

  Wakeup wakeup;

  // With mu held, after queuing something: true when the caller must
  // signal the I/O thread (after unlocking).
  bool need_wake() {
    if (wake_pending || std::this_thread::get_id() == io_thread) return false;
    wake_pending = true;
    return true;
  }
};

}  // namespace curvebus::client_detail
