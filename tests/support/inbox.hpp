// Inbox: collects what a client's subscription handler gets.
//
// The handler runs on the client's I/O thread, and it can run until that
// client is closed: for an Inbox declared after its client, that is after the
// Inbox itself is gone (locals are destroyed in reverse order).  So the
// handler holds the collected state by shared_ptr, never the Inbox: a late
// delivery lands in state that is still alive.  (A handler on a destroyed
// Inbox once locked a destroyed mutex during the client's close and hung a
// federation test until ctest's timeout.)
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "curvebus/client.hpp"

namespace curvebus::test {

class Inbox {
 public:
  MessageHandler handler() const {
    return [s = state_](const Message& m) {
      std::lock_guard<std::mutex> lock(s->mu);
      s->messages.push_back(m);
      s->cv.notify_all();
    };
  }
  std::vector<Message> snapshot() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->messages;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->messages.size();
  }
  std::size_t count(const std::function<bool(const Message&)>& pred) const {
    std::lock_guard<std::mutex> lock(state_->mu);
    std::size_t n = 0;
    for (const auto& m : state_->messages) n += pred(m) ? 1 : 0;
    return n;
  }
  std::size_t count_payload(const std::string& needle) const {
    return count([&](const Message& m) { return m.payload.find(needle) != std::string::npos; });
  }
  bool wait_count(std::size_t n,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) const {
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_for(lock, timeout, [&] { return state_->messages.size() >= n; });
  }
  std::vector<std::string> topics() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    std::vector<std::string> t;
    for (const auto& m : state_->messages) t.push_back(m.topic);
    return t;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Message> messages;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace curvebus::test
