// curvebus-bench-mqtt: Mosquitto (QoS 0) as a reference broker, measured like
// curvebus-bench-zmq-proxy: one publisher and N subscribers (separate
// connections, each with its own libmosquitto network thread) on 127.0.0.1,
// delivered msg/s counted at the subscribers, loss reported; or latency
// percentiles at a fixed rate.
//
// The publisher has no network thread by default: mosquitto_publish then
// writes from the pacing thread itself, waiting for the socket like a
// blocking write when the broker does not keep up, and no thread wake-up is
// paid per message (on 2 cores that matters). With
// --pub-thread it uses mosquitto_loop_start like the subscribers; libmosquitto
// then queues without bound, and what is still queued at the end counts as lost.
#include <mosquitto.h>
#include <poll.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "peer_bench.hpp"

namespace {

using peer_bench::Clock;

const char* const kTopic = "bench/data";

struct Client {
  mosquitto* m = nullptr;
  peer_bench::Sink* sink = nullptr;
  std::atomic<int> connack{-1};
  std::atomic<bool> subscribed{false};
  std::atomic<int> disconnect_rc{-1};  // set when the connection drops
  bool subscriber = false;
  bool threaded = true;  // false: no network thread, the owner drives mosquitto_loop
};

void on_connect(mosquitto* m, void* obj, int rc) {
  auto* c = static_cast<Client*>(obj);
  if (rc == 0 && c->subscriber) mosquitto_subscribe(m, nullptr, kTopic, 0);
  c->connack = rc;
}

void on_subscribe(mosquitto*, void* obj, int, int, const int*) {
  static_cast<Client*>(obj)->subscribed = true;
}

void on_disconnect(mosquitto*, void* obj, int rc) {
  static_cast<Client*>(obj)->disconnect_rc = rc;
}

void on_message(mosquitto*, void* obj, const mosquitto_message* msg) {
  auto* c = static_cast<Client*>(obj);
  c->sink->on_payload(static_cast<const char*>(msg->payload),
                      static_cast<std::size_t>(msg->payloadlen));
}

// Connects (TLS if asked), starts the client's network thread and, for a
// subscriber, waits for the SUBACK.
bool start(Client& c, const peer_bench::Options& o, bool latency) {
  c.m = mosquitto_new(nullptr, true, &c);
  if (c.m == nullptr) {
    std::fprintf(stderr, "bench: mosquitto_new failed\n");
    return false;
  }
  mosquitto_int_option(c.m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  // Latency runs turn Nagle off on the client side, as nats-server does.
  if (latency) mosquitto_int_option(c.m, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_connect_callback_set(c.m, on_connect);
  mosquitto_subscribe_callback_set(c.m, on_subscribe);
  mosquitto_message_callback_set(c.m, on_message);
  mosquitto_disconnect_callback_set(c.m, on_disconnect);
  if (o.tls) {
    int rc = mosquitto_tls_set(c.m, o.cafile.c_str(), nullptr, nullptr, nullptr, nullptr);
    if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(c.m, false);
    if (rc != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "bench: TLS setup: %s\n", mosquitto_strerror(rc));
      return false;
    }
  }
  int rc = mosquitto_connect(c.m, "127.0.0.1", o.port, 60);
  if (rc != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "bench: connect: %s\n", mosquitto_strerror(rc));
    return false;
  }
  rc = c.threaded ? mosquitto_loop_start(c.m) : MOSQ_ERR_SUCCESS;
  if (rc != MOSQ_ERR_SUCCESS) {
    std::fprintf(stderr, "bench: loop_start: %s\n", mosquitto_strerror(rc));
    return false;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    if (c.connack.load() > 0) {
      std::fprintf(stderr, "bench: CONNACK: %s\n", mosquitto_connack_string(c.connack.load()));
      return false;
    }
    if (c.disconnect_rc.load() >= 0) {
      std::fprintf(stderr, "bench: connection closed before SUBACK: %s\n",
                   mosquitto_strerror(c.disconnect_rc.load()));
      return false;
    }
    if (c.connack.load() == 0 && (!c.subscriber || c.subscribed.load())) return true;
    if (c.threaded)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    else
      mosquitto_loop(c.m, 5, 1);
  }
  std::fprintf(stderr, "bench: no CONNACK/SUBACK within 5 s%s\n",
               o.tls ? " (does --cafile sign the server's certificate?)" : "");
  return false;
}

void stop(Client& c) {
  if (c.m == nullptr) return;
  mosquitto_disconnect(c.m);
  if (c.threaded)
    mosquitto_loop_stop(c.m, false);
  else
    mosquitto_loop(c.m, 10, 1);
  mosquitto_destroy(c.m);
  c.m = nullptr;
}

class MqttPublisher : public peer_bench::Publisher {
 public:
  MqttPublisher(mosquitto* m, bool threaded) : m_(m), threaded_(threaded) {}
  bool send(const char* data, std::size_t n) override {
    // libmosquitto queues without bound; without a network thread, what it
    // queued is only written by later calls. So publish only once the queue
    // is empty, waiting for the socket as a blocking write would: a message
    // counted as sent is on its way, and TCP back-pressure paces the publisher.
    if (!threaded_) {
      const auto deadline = Clock::now() + std::chrono::seconds(2);
      while (mosquitto_want_write(m_)) {
        mosquitto_loop_write(m_, 1);
        if (!mosquitto_want_write(m_)) break;
        if (Clock::now() > deadline) return false;
        pollfd p{mosquitto_socket(m_), POLLOUT, 0};
        ::poll(&p, 1, 10);
      }
    }
    return mosquitto_publish(m_, nullptr, kTopic, static_cast<int>(n), data, 0, false) ==
           MOSQ_ERR_SUCCESS;
  }
  // Without a network thread, what the socket did not take yet is written
  // here, and keepalive and the broker's packets are handled.
  void flush() override {
    if (!threaded_ && mosquitto_want_write(m_)) mosquitto_loop_write(m_, 1);
  }
  void service() override {
    if (!threaded_) mosquitto_loop(m_, 0, 1);
  }

 private:
  mosquitto* m_;
  bool threaded_;
};

}  // namespace

int main(int argc, char** argv) {
  peer_bench::Options o;
  CLI::App app{"curvebus-bench-mqtt: Mosquitto QoS 0, 1 publisher -> N subscribers, on 127.0.0.1"};
  o.add_to(app);
  bool pub_thread = false;
  app.add_flag("--pub-thread", pub_thread,
               "Publisher with libmosquitto's network thread (mosquitto_loop_start) instead of "
               "writing from the publishing thread");
  CLI11_PARSE(app, argc, argv);
  if (!o.valid()) return 1;
  const bool latency = o.latency_rate > 0;

  mosquitto_lib_init();
  peer_bench::Sinks sinks(o.subscribers);
  std::vector<std::unique_ptr<Client>> subs;
  bool ok = true;
  for (int i = 0; i < o.subscribers && ok; ++i) {
    subs.push_back(std::make_unique<Client>());
    subs.back()->subscriber = true;
    subs.back()->sink = &sinks[i];
    ok = start(*subs.back(), o, latency);
  }
  Client pc;
  pc.threaded = pub_thread;
  ok = ok && start(pc, o, latency);
  bool measured = false;
  if (ok) {
    MqttPublisher pub(pc.m, pc.threaded);
    peer_bench::Driver driver(o, pub, sinks);
    measured = driver.measure();
    for (auto& s : subs) stop(*s);
    if (measured) driver.report(o.tls ? "mosquitto-qos0-tls" : "mosquitto-qos0");
  }
  for (auto& s : subs) stop(*s);
  stop(pc);
  mosquitto_lib_cleanup();
  return measured ? 0 : 2;
}
