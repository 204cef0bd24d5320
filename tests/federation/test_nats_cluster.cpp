// The NATS backbone the federation stands on: a real 3-node nats-server
// cluster with JetStream (tests/support/nats_cluster.hpp), and the behaviour
// of NATS and JetStream that the broker's federation relies on: core pub/sub
// across nodes, a stream keeping the last message per subject (retained
// values), de-duplication by Nats-Msg-Id (command ids), and a replicated
// stream and durable consumer surviving the SIGKILL of one node (commands).
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nats_cluster.hpp"

using curvebus::test::NatsCluster;
namespace nats = curvebus::test::nats;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kNanosPerSecond = 1000000000;

std::string text_of(natsMsg* msg) {
  return std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
}

// Adds a file-backed stream on `subject` with `replicas` replicas; "" or why not.
std::string add_stream(jsCtx* js, const std::string& name, const std::string& subject, int replicas,
                       int64_t max_msgs_per_subject = -1, int64_t duplicate_window_ns = 0) {
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = replicas;
  cfg.Storage = js_FileStorage;
  cfg.MaxMsgsPerSubject = max_msgs_per_subject;
  if (duplicate_window_ns > 0) cfg.Duplicates = duplicate_window_ns;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddStream(nullptr, js, &cfg, nullptr, &code);
  return s == NATS_OK ? std::string() : nats::describe(s, code);
}

nats::StreamInfo stream_info(jsCtx* js, const std::string& name) {
  jsStreamInfo* info = nullptr;
  if (js_GetStreamInfo(&info, js, name.c_str(), nullptr, nullptr) != NATS_OK) return {};
  return nats::StreamInfo(info);
}

// Publishes to JetStream with `msg_id`, retrying with the same id (JetStream
// drops the copies) until a publish acknowledgment arrives or `bound` passes.
nats::PubAck publish_until_acked(jsCtx* js, const std::string& subject, const std::string& data,
                                 const std::string& msg_id, std::chrono::seconds bound,
                                 std::string* why, int* failed_attempts) {
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MsgId = msg_id.c_str();
  opts.MaxWait = 2000;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  do {
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_Publish(&ack, js, subject.c_str(), data.data(),
                                    static_cast<int>(data.size()), &opts, &code);
    if (s == NATS_OK) return nats::PubAck(ack);
    *why = nats::describe(s, code);
    ++*failed_attempts;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return {};
}

// What a push subscription's callback (on the library's delivery thread) saw.
struct Inbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> received;  // in delivery order, redeliveries included

  std::set<std::string> distinct() {
    std::lock_guard<std::mutex> lock(mutex);
    return std::set<std::string>(received.begin(), received.end());
  }
  // Waits until every one of `expected` was received at least once.
  bool wait_for_all(const std::set<std::string>& expected, std::chrono::seconds bound) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, bound, [&] {
      std::set<std::string> got(received.begin(), received.end());
      for (const auto& e : expected) {
        if (got.count(e) == 0) return false;
      }
      return true;
    });
  }
};

// Records the message, then acknowledges it (manual ack: after "delivery").
void record_and_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* inbox = static_cast<Inbox*>(closure);
  {
    std::lock_guard<std::mutex> lock(inbox->mutex);
    inbox->received.push_back(text_of(msg));
  }
  natsMsg_Ack(msg, nullptr);
  natsMsg_Destroy(msg);
  inbox->changed.notify_all();
}

// An asynchronous subscription whose callback has returned for good once this
// is gone: drained (pending messages handled, interest removed), then freed.
struct AsyncSubscription {
  natsSubscription* sub = nullptr;
  AsyncSubscription() = default;
  AsyncSubscription(const AsyncSubscription&) = delete;
  AsyncSubscription& operator=(const AsyncSubscription&) = delete;
  ~AsyncSubscription() {
    if (!sub) return;
    if (natsSubscription_Drain(sub) == NATS_OK) natsSubscription_WaitForDrainCompletion(sub, 5000);
    natsSubscription_Destroy(sub);
  }
};

std::set<std::string> numbered(const std::string& prefix, int from, int to) {
  std::set<std::string> out;
  for (int k = from; k <= to; ++k) out.insert(prefix + std::to_string(k));
  return out;
}

}  // namespace

TEST_CASE(
    "a 3-node NATS cluster forms and carries core messages from node 0 to a subscriber on node 2",
    "[federation]") {
  NatsCluster cluster;
  const bool started = cluster.start(3);
  INFO(cluster.last_error());
  REQUIRE(started);
  REQUIRE(cluster.size() == 3);
  CHECK(cluster.urls() == cluster.url(0) + "," + cluster.url(1) + "," + cluster.url(2));

  std::string why;
  nats::Connection sub_conn = nats::connect(cluster.url(2), &why);
  nats::Connection pub_conn = nats::connect(cluster.url(0), &why);
  INFO(why);
  REQUIRE(sub_conn);
  REQUIRE(pub_conn);

  natsSubscription* raw_sub = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw_sub, sub_conn.get(), "fed.>") == NATS_OK);
  nats::Subscription sub(raw_sub);
  REQUIRE(natsConnection_Flush(sub_conn.get()) == NATS_OK);

  // Interest travels to node 0 over the routes after the subscribe returns:
  // probe until one probe arrives, then the real messages must all arrive.
  bool probed = false;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!probed && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(natsConnection_PublishString(pub_conn.get(), "fed.probe", "probe") == NATS_OK);
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, sub.get(), 100) == NATS_OK) {
      probed = true;
      natsMsg_Destroy(m);
    }
  }
  REQUIRE(probed);

  const int count = 100;
  for (int k = 0; k < count; ++k) {
    // Binary payloads: a zero byte and every byte value of a level must survive.
    std::string payload = "msg-" + std::to_string(k) + std::string(1, '\0') +
                          std::string(1, static_cast<char>(k + 100));
    REQUIRE(natsConnection_Publish(pub_conn.get(), "fed.s.site-a.robot1.telemetry", payload.data(),
                                   static_cast<int>(payload.size())) == NATS_OK);
  }
  REQUIRE(natsConnection_Flush(pub_conn.get()) == NATS_OK);

  std::vector<std::string> got;
  while (static_cast<int>(got.size()) < count) {
    natsMsg* m = nullptr;
    const natsStatus s = natsSubscription_NextMsg(&m, sub.get(), 10000);
    REQUIRE(s == NATS_OK);
    nats::Msg msg(m);
    if (std::string(natsMsg_GetSubject(m)) == "fed.probe") continue;  // a late probe
    CHECK(std::string(natsMsg_GetSubject(m)) == "fed.s.site-a.robot1.telemetry");
    got.push_back(text_of(m));
  }
  for (int k = 0; k < count; ++k) {
    INFO("message " << k);
    CHECK(got[static_cast<std::size_t>(k)] == "msg-" + std::to_string(k) + std::string(1, '\0') +
                                                  std::string(1, static_cast<char>(k + 100)));
  }
}

TEST_CASE(
    "a replicated stream with one message per subject keeps each subject's last value, "
    "readable through another node",
    "[federation]") {
  NatsCluster cluster;
  const bool started = cluster.start(3);
  INFO(cluster.last_error());
  REQUIRE(started);

  std::string why;
  nats::Connection writer = nats::connect(cluster.url(0), &why);
  nats::Connection reader = nats::connect(cluster.url(2), &why);
  INFO(why);
  REQUIRE(writer);
  REQUIRE(reader);
  nats::Js js_w = nats::jetstream(writer.get());
  nats::Js js_r = nats::jetstream(reader.get());
  REQUIRE(js_w);
  REQUIRE(js_r);
  REQUIRE(add_stream(js_w.get(), "RETAINED", "ret.>", 3, 1) == "");

  const std::vector<std::pair<std::string, std::string>> writes = {
      {"ret.site-a.robot1.status", "v1"},
      {"ret.site-a.robot1.status", "v2"},
      {"ret.site-a.robot2.status", "w1"},
      {"ret.site-a.robot1.status", "v3"},
  };
  for (const auto& [subject, value] : writes) {
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_Publish(&ack, js_w.get(), subject.c_str(), value.data(),
                                    static_cast<int>(value.size()), nullptr, &code);
    INFO(nats::describe(s, code));
    REQUIRE(s == NATS_OK);
    nats::PubAck owned(ack);
    CHECK(std::string(ack->Stream) == "RETAINED");
  }

  natsMsg* m = nullptr;
  REQUIRE(js_GetLastMsg(&m, js_r.get(), "RETAINED", "ret.site-a.robot1.status", nullptr, nullptr) ==
          NATS_OK);
  nats::Msg last1(m);
  CHECK(text_of(m) == "v3");
  REQUIRE(js_GetLastMsg(&m, js_r.get(), "RETAINED", "ret.site-a.robot2.status", nullptr, nullptr) ==
          NATS_OK);
  nats::Msg last2(m);
  CHECK(text_of(m) == "w1");

  nats::StreamInfo info = stream_info(js_r.get(), "RETAINED");
  REQUIRE(info);
  CHECK(info->State.Msgs == 2);
  CHECK(info->Config->MaxMsgsPerSubject == 1);
  CHECK(info->Config->Replicas == 3);
  // The first value of robot1 is gone, not merely hidden.
  natsMsg* gone = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetMsg(&gone, js_r.get(), "RETAINED", 1, nullptr, &code);
  nats::Msg owned_gone(gone);
  CHECK(s != NATS_OK);
  CHECK(code == JSNoMessageFoundErr);
}

TEST_CASE(
    "JetStream stores a message once per Nats-Msg-Id within the duplicate window and acks "
    "the copy as a duplicate",
    "[federation]") {
  NatsCluster cluster;
  const bool started = cluster.start(3);
  INFO(cluster.last_error());
  REQUIRE(started);

  std::string why;
  nats::Connection nc = nats::connect(cluster.url(1), &why);
  INFO(why);
  REQUIRE(nc);
  nats::Js js = nats::jetstream(nc.get());
  REQUIRE(js);
  REQUIRE(add_stream(js.get(), "COMMANDS", "cmd.>", 3, -1, 60 * kNanosPerSecond) == "");

  const std::string subject = "cmd.site-a.robot1.cmd.move";
  // First copy: the id as a publish option.
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MsgId = "site-a:1700000000000000:1";
  jsPubAck* raw = nullptr;
  REQUIRE(js_Publish(&raw, js.get(), subject.c_str(), "forward", 7, &opts, nullptr) == NATS_OK);
  nats::PubAck first(raw);
  CHECK_FALSE(first->Duplicate);

  // Second copy: the same id as the Nats-Msg-Id header (what the option sets).
  natsMsg* m = nullptr;
  REQUIRE(natsMsg_Create(&m, subject.c_str(), nullptr, "forward", 7) == NATS_OK);
  nats::Msg copy(m);
  REQUIRE(natsMsgHeader_Set(m, "Nats-Msg-Id", "site-a:1700000000000000:1") == NATS_OK);
  REQUIRE(js_PublishMsg(&raw, js.get(), m, nullptr, nullptr) == NATS_OK);
  nats::PubAck second(raw);
  CHECK(second->Duplicate);
  CHECK(second->Sequence == first->Sequence);

  // Another id is another message.
  opts.MsgId = "site-a:1700000000000000:2";
  REQUIRE(js_Publish(&raw, js.get(), subject.c_str(), "stop", 4, &opts, nullptr) == NATS_OK);
  nats::PubAck third(raw);
  CHECK_FALSE(third->Duplicate);
  CHECK(third->Sequence == first->Sequence + 1);

  nats::StreamInfo info = stream_info(js.get(), "COMMANDS");
  REQUIRE(info);
  CHECK(info->State.Msgs == 2);
  CHECK(info->Config->Duplicates == 60 * kNanosPerSecond);
}

TEST_CASE(
    "after SIGKILL of the stream leader, a durable push consumer on another node keeps "
    "receiving and publishes are acked by the remaining 2 of 3 nodes",
    "[federation]") {
  Inbox inbox;  // outlives the subscription that writes to it
  NatsCluster cluster;
  const bool started = cluster.start(3);
  INFO(cluster.last_error());
  REQUIRE(started);

  std::string why;
  int victim = -1;
  {
    nats::Connection admin = nats::connect(cluster.urls(), &why);
    INFO(why);
    REQUIRE(admin);
    nats::Js js = nats::jetstream(admin.get());
    REQUIRE(js);
    REQUIRE(add_stream(js.get(), "CMDS", "cmds.>", 3, -1, 120 * kNanosPerSecond) == "");
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "agent-site-c";
    cc.DeliverSubject = "curvebus-test.deliver.agent-site-c";
    cc.FilterSubject = "cmds.>";
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 2 * kNanosPerSecond;  // a lost ack means a redelivery soon
    cc.DeliverPolicy = js_DeliverAll;
    jsConsumerInfo* ci = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddConsumer(&ci, js.get(), "CMDS", &cc, nullptr, &code);
    INFO(nats::describe(s, code));
    REQUIRE(s == NATS_OK);
    jsConsumerInfo_Destroy(ci);
    nats::StreamInfo info = stream_info(js.get(), "CMDS");
    REQUIRE(info);
    REQUIRE(info->Cluster);
    REQUIRE(info->Cluster->Leader);
    victim = cluster.index_of(info->Cluster->Leader);
  }
  REQUIRE(victim >= 0);
  const int sub_node = victim == 0 ? 1 : 0;
  const int pub_node = 3 - victim - sub_node;

  nats::Connection sub_conn = nats::connect(cluster.url(sub_node), &why);
  nats::Connection pub_conn = nats::connect(cluster.url(pub_node), &why);
  INFO(why);
  REQUIRE(sub_conn);
  REQUIRE(pub_conn);
  nats::Js js_sub = nats::jetstream(sub_conn.get());
  nats::Js js_pub = nats::jetstream(pub_conn.get());
  REQUIRE(js_sub);
  REQUIRE(js_pub);

  AsyncSubscription sub;
  {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "CMDS";
    so.Consumer = "agent-site-c";
    so.ManualAck = true;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s =
        js_Subscribe(&sub.sub, js_sub.get(), "cmds.>", record_and_ack, &inbox, nullptr, &so, &code);
    INFO(nats::describe(s, code));
    REQUIRE(s == NATS_OK);
  }

  const std::string subject = "cmds.site-a.robot1.cmd.move";
  int duplicates_acked = 0;
  int failed_attempts = 0;
  auto publish_range = [&](int from, int to) {
    for (int k = from; k <= to; ++k) {
      const std::string data = "cmd-" + std::to_string(k);
      nats::PubAck ack =
          publish_until_acked(js_pub.get(), subject, data, "site-a:1:" + std::to_string(k), 30s,
                              &why, &failed_attempts);
      INFO("command " << k << ": " << why);
      REQUIRE(ack);
      if (ack->Duplicate) duplicates_acked++;
    }
  };

  publish_range(1, 20);
  CHECK(inbox.wait_for_all(numbered("cmd-", 1, 20), 30s));

  cluster.kill(victim, SIGKILL);
  REQUIRE_FALSE(cluster.running(victim));

  publish_range(21, 40);
  CHECK(inbox.wait_for_all(numbered("cmd-", 1, 40), 60s));
  {
    nats::StreamInfo info = stream_info(js_pub.get(), "CMDS");
    REQUIRE(info);
    CHECK(info->State.Msgs == 40);  // retried publishes were stored once
  }

  // The killed node comes back with its store and catches up.
  const bool restarted = cluster.restart(victim);
  INFO(cluster.last_error());
  REQUIRE(restarted);
  const bool caught_up = curvebus::test::wait_until(
      [&] {
        nats::StreamInfo info = stream_info(js_pub.get(), "CMDS");
        if (!info || !info->Cluster || info->Cluster->ReplicasLen != 2) return false;
        for (int r = 0; r < info->Cluster->ReplicasLen; ++r) {
          const jsPeerInfo* peer = info->Cluster->Replicas[r];
          if (!peer->Current || peer->Offline) return false;
        }
        return true;
      },
      30s, 250ms);
  CHECK(caught_up);

  publish_range(41, 41);
  CHECK(inbox.wait_for_all(numbered("cmd-", 1, 41), 30s));

  const auto distinct = inbox.distinct();
  std::size_t deliveries = 0;
  {
    std::lock_guard<std::mutex> lock(inbox.mutex);
    deliveries = inbox.received.size();
  }
  INFO("deliveries " << deliveries << ", distinct " << distinct.size()
                     << ", publishes acked as duplicates " << duplicates_acked
                     << ", publish attempts that failed " << failed_attempts << " (last: " << why
                     << ")");
  CHECK(distinct == numbered("cmd-", 1, 41));
}
