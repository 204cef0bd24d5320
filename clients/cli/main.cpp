// curvebus: the command-line tool (DESIGN.md "Command-line contract").
//
//   curvebus keygen NAME [--dir DIR]
//   curvebus keygen --sign NAME [--dir DIR]      (federation signing key pair)
//   curvebus keygen --federation-key FILE        (federation symmetric key)
//   curvebus pub TOPIC [MESSAGE] [--retain] [--no-ack] [--json]
//   curvebus sub PATTERN... [--count N] [--timeout SEC] [--json] [--retained]
//   curvebus pull TOPIC [--since SEQ] [--json]
//   curvebus topics [PATTERN] [--json]
//   curvebus admin status|clients|topics|stats|federation|kick NAME|revoke NAME|revoke-key KEY|
//                  unrevoke NAME|KEY|revocations|reload [--reason TEXT] [--json]
//   curvebus teleop [--robot ID]
//
// Exit status: 0 ok, 1 usage or configuration, 2 no broker / key refused,
// 3 timeout with no message, 4 not found, 5 refused by the broker.  Every
// failure prints one line "curvebus: ..." on stderr.
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>

#include "commands.hpp"
#include "curvebus/certificate.hpp"
#include "curvebus/federation.hpp"
#include "format.hpp"

namespace curvebus::cli {

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) {
  g_interrupted = true;
}

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "curvebus: %s\n", message.c_str());
  return code;
}

int exit_code_for(const Status& s) {
  switch (s.status_code()) {
    case StatusCode::kUsage:
      return kExitUsage;
    case StatusCode::kNoBroker:
    case StatusCode::kRefused:
    case StatusCode::kTimeout:
    case StatusCode::kClosed:
      return kExitNoBroker;
    case StatusCode::kNotFound:
      return kExitNotFound;
    default:
      return kExitRefused;
  }
}

// A broker's refusal names its code first ("DENIED: ...",
// "FEDERATION_UNAVAILABLE: ..."), so a script can tell refusals apart
// without matching English text; exit codes stay as documented.
std::string error_text(const Status& s) {
  const bool broker_code =
      static_cast<int>(s.status_code()) >= static_cast<int>(StatusCode::kMalformed);
  return broker_code ? s.code() + ": " + s.message() : s.message();
}

int fail(const Status& s) {
  return fail(exit_code_for(s), error_text(s));
}

Result<std::unique_ptr<Client>> connect_client(const Connection& conn) {
  auto options = resolve_client_options(conn.settings);
  if (!options) return options.status();
  options->client_name = "curvebus-cli";
  auto client = std::make_unique<Client>(*options);
  if (Status s = client->connect(
          std::chrono::milliseconds(static_cast<int>(conn.connect_timeout_s * 1000)));
      !s)
    return s;
  return client;
}

void add_connection_options(CLI::App* app, Connection& conn) {
  app->add_option("--endpoint", conn.settings.endpoint, "Broker endpoint (env CURVEBUS_ENDPOINT)");
  app->add_option("--server-key", conn.settings.server_key,
                  "Broker public key: Z85 or certificate file (env CURVEBUS_SERVER_KEY)");
  app->add_option("--key", conn.settings.key, "Your secret certificate file (env CURVEBUS_KEY)");
  app->add_option("--home", conn.settings.home,
                  "curvebus home folder (env CURVEBUS_HOME, default ./.curvebus)");
  app->add_option("--connect-timeout", conn.connect_timeout_s, "Seconds to wait for the broker")
      ->capture_default_str();
}

// ------------------------------------------------------------------ keygen
std::string keygen_dir(std::string dir, const std::string& home_flag) {
  if (dir.empty()) {
    std::string home = home_flag;
    if (home.empty()) {
      const char* env = std::getenv("CURVEBUS_HOME");
      home = env && *env ? env : "./.curvebus";
    }
    dir = home + "/keys";
  }
  return dir;
}

// A federation broker's Ed25519 pair: DIR/NAME.sign and DIR/NAME.sign_secret.
int run_keygen_sign(const std::string& name, const std::string& dir, bool force) {
  const fed::SigningKeys keys = fed::generate_signing_keys();
  if (Status s = fed::write_signing_keys(dir, name, keys, force); !s)
    return fail(kExitUsage, "keygen: " + s.message());
  std::printf(
      "signing key %s\npublic      %s/%s.sign\nsecret      %s/%s.sign_secret (mode 0600, keep it "
      "private)\n",
      fed::hex_encode(keys.public_key.data(), keys.public_key.size()).c_str(), dir.c_str(),
      name.c_str(), dir.c_str(), name.c_str());
  return kExitOk;
}

// A federation key: never overwrites, so a rotation cannot destroy the key
// in use by mistake.
int run_keygen_federation(const std::string& file) {
  const fed::FederationKey key = fed::generate_federation_key();
  if (Status s = fed::write_federation_key(file, key, false); !s)
    return fail(kExitUsage, "keygen: " + s.message());
  std::printf(
      "key id      %08x\nfederation  %s (mode 0600, copy it to every broker, keep it private)\n",
      key.id, file.c_str());
  return kExitOk;
}

int run_keygen(const std::string& name, const std::string& sign_name,
               const std::string& federation_file, const std::string& dir_flag,
               const std::string& home_flag, bool force) {
  const int modes = !name.empty() + !sign_name.empty() + !federation_file.empty();
  if (modes != 1)
    return fail(kExitUsage, "keygen: give exactly one of NAME, --sign NAME, --federation-key FILE");
  if (!federation_file.empty()) {
    if (force)
      return fail(kExitUsage, "keygen: --federation-key never overwrites a key (no --force)");
    if (!dir_flag.empty())
      return fail(kExitUsage, "keygen: --federation-key takes a file path, not --dir");
    return run_keygen_federation(federation_file);
  }
  const std::string& plain = name.empty() ? sign_name : name;
  if (plain.find('/') != std::string::npos || plain.find("..") != std::string::npos)
    return fail(kExitUsage, "keygen: NAME must be a plain file name");
  const std::string dir = keygen_dir(dir_flag, home_flag);
  if (!sign_name.empty()) return run_keygen_sign(sign_name, dir, force);
  const KeyPair keys = generate_keypair();
  if (Status s = write_certificate(dir, name, keys, force); !s)
    return fail(kExitUsage, "keygen: " + s.message());
  std::printf(
      "public key  %s\nfingerprint %s\npublic      %s/%s\nsecret      %s/%s_secret (mode 0600, "
      "keep it private)\n",
      keys.public_key.c_str(), key_fingerprint(keys.public_key).c_str(), dir.c_str(), name.c_str(),
      dir.c_str(), name.c_str());
  return kExitOk;
}

// ------------------------------------------------------------------ pub
int run_pub(const Connection& conn, const std::string& topic,
            const std::vector<std::string>& message, bool retain, bool no_ack, bool json,
            double ack_timeout_s) {
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  PublishOptions opts;
  opts.retain = retain;
  opts.wait_ack = !no_ack;
  opts.ack_timeout = std::chrono::milliseconds(static_cast<int>(ack_timeout_s * 1000));
  auto publish_one = [&](const std::string& text, const std::string& where, int& worst) -> bool {
    std::string payload = text, error;
    if (json && !encode_json_payload(topic, text, payload, error)) {
      std::fprintf(stderr, "curvebus: %sbad JSON: %s\n", where.c_str(), error.c_str());
      worst = std::max(worst, kExitUsage);
      return true;
    }
    Status s = (*client)->publish(topic, payload, opts);
    if (!s) {
      std::fprintf(stderr, "curvebus: %s%s\n", where.c_str(), error_text(s).c_str());
      const int code = exit_code_for(s);
      worst = worst == kExitOk ? code : std::max(worst, code);
      return code != kExitNoBroker;  // without a broker the rest would fail too
    }
    return true;
  };
  int worst = kExitOk;
  if (!message.empty()) {
    std::string text;
    for (std::size_t i = 0; i < message.size(); ++i) text += (i ? " " : "") + message[i];
    publish_one(text, "", worst);
  } else {
    std::string line;
    int n = 0;
    while (!g_interrupted && std::getline(std::cin, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (json && line.find_first_not_of(" \t") == std::string::npos) continue;
      if (!publish_one(line, "line " + std::to_string(n) + ": ", worst)) break;
    }
  }
  (*client)->close();
  return worst;
}

// ------------------------------------------------------------------ sub / pull
int run_sub(const Connection& conn, const std::vector<std::string>& patterns, int count,
            double timeout_s, bool json, bool retained) {
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> lines;
  Status s = (*client)->subscribe(
      patterns,
      [&](const Message& m) {
        std::string line = message_line(m, json);
        std::lock_guard<std::mutex> lock(mu);
        lines.push_back(std::move(line));
        cv.notify_all();
      },
      retained);
  if (!s) return fail(s);
  int printed = 0;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  while (!g_interrupted && (count <= 0 || printed < count)) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return !lines.empty(); });
    while (!lines.empty() && (count <= 0 || printed < count)) {
      std::fwrite(lines.front().data(), 1, lines.front().size(), stdout);
      std::fputc('\n', stdout);
      lines.pop_front();
      ++printed;
    }
    std::fflush(stdout);
    if (timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) break;
  }
  (*client)->close();
  if (g_interrupted) return kExitOk;
  if (count > 0 && printed < count)
    return fail(kExitTimeout, "timeout: " + std::to_string(printed) + " of " +
                                  std::to_string(count) + " messages in " +
                                  CLI::detail::to_string(timeout_s) + " s");
  if (count <= 0 && printed == 0 && timeout_s > 0) return fail(kExitTimeout, "timeout: no message");
  return kExitOk;
}

int run_pull(const Connection& conn, const std::string& topic, std::uint64_t since, bool json) {
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  auto r = (*client)->pull(topic, since);
  (*client)->close();
  if (!r) return fail(r.status());
  if (r->empty())
    return fail(kExitNotFound, "nothing kept on " + topic + " after seq " + std::to_string(since));
  for (const auto& m : *r) std::printf("%s\n", message_line(m, json).c_str());
  return kExitOk;
}

std::string to_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = false;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string topics_table(const google::protobuf::RepeatedPtrField<v1::TopicInfo>& topics) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : topics) {
    std::string pubs;
    for (const auto& p : t.publishers()) pubs += (pubs.empty() ? "" : ",") + p;
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f/s", t.rate());
    rows.push_back({t.topic(), std::to_string(t.last_seq()), std::to_string(t.subscribers()), rate,
                    std::to_string(t.messages()), t.retained() ? "yes" : "no",
                    pubs.empty() ? "-" : pubs});
  }
  return table({"TOPIC", "SEQ", "SUBS", "RATE", "MESSAGES", "RETAINED", "PUBLISHERS"}, rows);
}

int run_topics(const Connection& conn, const std::string& pattern, bool json) {
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  auto r = (*client)->topics(pattern);
  (*client)->close();
  if (!r) return fail(r.status());
  if (json) {
    std::printf("%s\n", to_json(*r).c_str());
  } else {
    std::fputs(topics_table(r->topics()).c_str(), stdout);
  }
  return kExitOk;
}

// ------------------------------------------------------------------ admin
std::string role_name(v1::Role r) {
  switch (r) {
    case v1::ROLE_AGENT:
      return "agent";
    case v1::ROLE_PROVIDER:
      return "provider";
    default:
      return "client";
  }
}

void print_status(const v1::BrokerStatus& st) {
  const auto& c = st.counters();
  std::printf("broker     %s (id %s) at %s\n", st.version().c_str(), st.broker_id().c_str(),
              st.endpoint().c_str());
  std::printf("uptime     %s\n", format_duration_ms(st.uptime_ms()).c_str());
  std::printf("peers      %u\ntopics     %u\n", st.peers(), st.topics());
  std::printf("messages   in %llu, out %llu (frames %llu); bytes in %llu, out %llu\n",
              static_cast<unsigned long long>(c.messages_in()),
              static_cast<unsigned long long>(c.messages_out()),
              static_cast<unsigned long long>(c.frames_out()),
              static_cast<unsigned long long>(c.bytes_in()),
              static_cast<unsigned long long>(c.bytes_out()));
  std::printf("routing    publications %llu, deliveries %llu, dropped %llu\n",
              static_cast<unsigned long long>(c.publications()),
              static_cast<unsigned long long>(c.deliveries()),
              static_cast<unsigned long long>(c.dropped()));
  std::printf(
      "refusals   denials %llu, errors sent %llu, malformed %llu, oversized %llu, rate-limited "
      "%llu\n",
      static_cast<unsigned long long>(c.denials()),
      static_cast<unsigned long long>(c.errors_sent()),
      static_cast<unsigned long long>(c.malformed()),
      static_cast<unsigned long long>(c.oversized()),
      static_cast<unsigned long long>(c.rate_limited()));
  std::printf("security   handshake failures %llu, keys refused %llu\n",
              static_cast<unsigned long long>(c.handshake_failures()),
              static_cast<unsigned long long>(c.auth_denied()));
  std::printf(
      "identity   mismatches %llu, chosen routing ids refused %llu, sessions over cap %llu\n",
      static_cast<unsigned long long>(c.identity_mismatches()),
      static_cast<unsigned long long>(c.routing_ids_refused()),
      static_cast<unsigned long long>(c.sessions_refused()));
  std::printf("budgets    work refused %llu, quota refused %llu, input deferred %llu\n",
              static_cast<unsigned long long>(c.budget_refused()),
              static_cast<unsigned long long>(c.quota_refused()),
              static_cast<unsigned long long>(c.input_deferred()));
  std::printf("storage    %llu bytes of history and retained values, %llu idle topics freed\n",
              static_cast<unsigned long long>(c.stored_bytes()),
              static_cast<unsigned long long>(c.topics_freed()));
  std::printf("audit      %llu events, %llu aggregated\n",
              static_cast<unsigned long long>(c.audit_events()),
              static_cast<unsigned long long>(c.audit_aggregated()));
  std::printf("sessions   opened %llu, timed out %llu\n",
              static_cast<unsigned long long>(c.sessions_opened()),
              static_cast<unsigned long long>(c.sessions_timed_out()));
  std::printf("retained   saved %llu times, save failures %llu\n",
              static_cast<unsigned long long>(c.retained_saves()),
              static_cast<unsigned long long>(c.retained_save_failures()));
}

void print_federation(const v1::FederationStatus& f) {
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf(
      "federation %s, %s%s%s (reconnects %llu)\n", f.name().c_str(),
      f.connected() ? "connected to " : "NOT connected to the NATS backbone", f.server().c_str(),
      f.connected()
          ? (f.ready() ? ", ready for commands" : ", JetStream not set up yet: commands refused")
          : "",
      u(f.reconnects()));
  std::printf("export     %llu envelopes, %llu dropped, %u waiting\n", u(f.exported()),
              u(f.export_dropped()), f.export_queue());
  std::printf("commands   stored %llu, refused (FEDERATION_UNAVAILABLE) %llu\n",
              u(f.commands_stored()), u(f.commands_unavailable()));
  std::printf("import     %llu delivered here, %llu dropped (queue full)\n", u(f.imported()),
              u(f.import_dropped()));
  std::printf("remote commands delivered %llu, duplicates %llu, held %llu, expired %llu\n",
              u(f.commands_delivered()), u(f.commands_duplicate()), u(f.commands_held()),
              u(f.commands_expired()));
  std::string refused;
  std::map<std::string, std::uint64_t> causes(f.refused().begin(), f.refused().end());
  for (const auto& [cause, n] : causes)
    refused += (refused.empty() ? "" : ", ") + cause + " " + std::to_string(n);
  std::printf("refused    %s\n", refused.empty() ? "none" : refused.c_str());
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : f.peers())
    rows.push_back({p.name(), std::to_string(p.accepted()), std::to_string(p.refused()),
                    p.last_seen_us() ? format_time_us(p.last_seen_us()) : "-",
                    p.last_seen_us() ? std::to_string(p.lag_us() / 1000) + " ms" : "-"});
  std::fputs(table({"PEER", "ACCEPTED", "REFUSED", "LAST SEEN", "LAG"}, rows).c_str(), stdout);
}

int run_admin(const Connection& conn, const std::string& what, const std::string& arg,
              const std::string& reason, bool json) {
  static const std::map<std::string, v1::AdminCommand> commands = {
      {"status", v1::ADMIN_STATUS},
      {"clients", v1::ADMIN_CLIENTS},
      {"topics", v1::ADMIN_TOPICS},
      {"stats", v1::ADMIN_STATS},
      {"kick", v1::ADMIN_KICK},
      {"revoke", v1::ADMIN_REVOKE},
      {"revoke-key", v1::ADMIN_REVOKE_KEY},
      {"unrevoke", v1::ADMIN_UNREVOKE},
      {"revocations", v1::ADMIN_REVOCATIONS},
      {"reload", v1::ADMIN_RELOAD},
      {"federation", v1::ADMIN_FEDERATION}};
  auto it = commands.find(what);
  if (it == commands.end())
    return fail(kExitUsage, "admin: unknown command '" + what +
                                "' (status, clients, topics, stats, kick, revoke, revoke-key, "
                                "unrevoke, revocations, reload, federation)");
  const bool needs_arg = it->second == v1::ADMIN_KICK || it->second == v1::ADMIN_REVOKE ||
                         it->second == v1::ADMIN_REVOKE_KEY || it->second == v1::ADMIN_UNREVOKE;
  if (needs_arg && arg.empty())
    return fail(kExitUsage,
                "admin " + what +
                    (it->second == v1::ADMIN_REVOKE_KEY ? ": KEY (or fingerprint) missing"
                                                        : ": NAME missing"));
  auto client = connect_client(conn);
  if (!client) return fail(client.status());
  auto r = (*client)->admin(it->second, arg, std::chrono::milliseconds(5000), reason);
  (*client)->close();
  if (!r) return fail(r.status());
  if (json) {
    std::printf("%s\n", to_json(*r).c_str());
    return kExitOk;
  }
  switch (it->second) {
    case v1::ADMIN_STATUS:
    case v1::ADMIN_STATS:
      print_status(r->status());
      break;
    case v1::ADMIN_CLIENTS: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& c : r->clients()) {
        std::string subs;
        for (const auto& s : c.subscriptions()) subs += (subs.empty() ? "" : ",") + s;
        rows.push_back({c.name(), role_name(c.role()), c.key_fingerprint(),
                        c.address().empty() ? "-" : c.address(),
                        c.listener().empty() ? "-" : c.listener(), format_time_us(c.connected_us()),
                        format_time_us(c.last_seen_us()), c.heartbeat_state(),
                        std::to_string(c.queue_depth()), std::to_string(c.dropped()),
                        std::to_string(c.messages_in()) + "/" + std::to_string(c.messages_out()),
                        subs.empty() ? "-" : subs});
      }
      std::fputs(table({"NAME", "ROLE", "KEY", "ADDRESS", "ENDPOINT", "SINCE", "LAST SEEN",
                        "HEARTBEAT", "QUEUE", "DROPPED", "IN/OUT", "SUBSCRIPTIONS"},
                       rows)
                     .c_str(),
                 stdout);
      if (r->truncated()) std::printf("(listing truncated)\n");
      break;
    }
    case v1::ADMIN_FEDERATION:
      print_federation(r->federation());
      break;
    case v1::ADMIN_REVOCATIONS: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& rev : r->revocations())
        rows.push_back({rev.kind(), rev.value(), rev.by().empty() ? "-" : rev.by(),
                        format_time_us(rev.at_us()), rev.reason().empty() ? "-" : rev.reason()});
      if (rows.empty())
        std::printf("no revocations\n");
      else
        std::fputs(table({"KIND", "NAME OR KEY", "BY", "AT", "REASON"}, rows).c_str(), stdout);
      break;
    }
    case v1::ADMIN_TOPICS:
      std::fputs(topics_table(r->topics()).c_str(), stdout);
      break;
    default:
      std::printf("%s\n", r->message().empty() ? "done" : r->message().c_str());
      break;
  }
  return kExitOk;
}

}  // namespace curvebus::cli

int main(int argc, char** argv) {
  using namespace curvebus::cli;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  CLI::App app{"curvebus: publish, subscribe and administer a curvebus broker", "curvebus"};
  app.set_version_flag("--version", std::string("curvebus ") + CURVEBUS_VERSION);
  app.require_subcommand(1);

  std::string name, dir, home, sign_name, federation_file;
  bool force = false;
  auto* keygen = app.add_subcommand(
      "keygen", "Create a key pair (NAME public, NAME_secret 0600) in ZeroMQ's format");
  keygen->add_option("NAME", name, "Name of the key pair");
  keygen
      ->add_option("--sign", sign_name,
                   "Instead: a federation signing key pair (Ed25519), NAME.sign and "
                   "NAME.sign_secret (0600)")
      ->option_text("NAME");
  keygen
      ->add_option("--federation-key", federation_file,
                   "Instead: a new federation key in FILE (0600; never overwrites)")
      ->option_text("FILE");
  keygen->add_option("--dir", dir, "Directory (default HOME/keys)");
  keygen->add_option("--home", home, "curvebus home folder (env CURVEBUS_HOME)");
  keygen->add_flag("--force", force, "Overwrite an existing pair");

  Connection conn;
  std::string topic;
  std::vector<std::string> message;
  bool retain = false, no_ack = false, json = false;
  double ack_timeout = 5;
  auto* pub = app.add_subcommand("pub", "Publish MESSAGE, or one message per line of stdin");
  pub->add_option("TOPIC", topic, "Topic")->required();
  pub->add_option("MESSAGE", message, "Payload (default: one publication per stdin line)");
  pub->add_flag("--retain", retain, "Keep as the topic's retained value");
  pub->add_flag("--no-ack", no_ack, "Do not wait for the broker's ack");
  pub->add_flag(
      "--json", json,
      "Payload is JSON: on robot/<id>/cmd a Command in Protobuf's JSON mapping (id and issuedUs "
      "filled in when missing)");
  pub->add_option("--timeout", ack_timeout, "Seconds to wait for each ack")->capture_default_str();
  add_connection_options(pub, conn);

  std::vector<std::string> patterns;
  int count = 0;
  double timeout = 0;
  bool retained = false;
  auto* sub = app.add_subcommand("sub", "Print matching messages, one line each");
  sub->add_option("PATTERN", patterns, "Topic patterns (+ one level, # the rest)")->required();
  sub->add_option("--count,-n", count, "Exit after N messages");
  sub->add_option("--timeout,-t", timeout,
                  "Give up after SEC seconds (exit 3 if short of --count or nothing came)");
  sub->add_flag("--json", json, "One JSON object per line");
  sub->add_flag("--retained", retained, "Start with the retained values of matching topics");
  add_connection_options(sub, conn);

  std::uint64_t since = 0;
  auto* pull = app.add_subcommand("pull", "Latest value of TOPIC (or its history after --since)");
  pull->add_option("TOPIC", topic, "Topic")->required();
  pull->add_option("--since", since, "Kept publications after this seq");
  pull->add_flag("--json", json, "JSON output");
  add_connection_options(pull, conn);

  std::string pattern = "#";
  auto* topics = app.add_subcommand("topics", "Topics you may see, with publishers and rates");
  topics->add_option("PATTERN", pattern, "Filter")->capture_default_str();
  topics->add_flag("--json", json, "JSON output");
  add_connection_options(topics, conn);

  std::string what, arg;
  std::string reason;
  auto* admin = app.add_subcommand("admin", "Administer the broker (admin right needed)");
  admin
      ->add_option("COMMAND", what,
                   "status | clients | topics | stats | kick NAME | revoke NAME | revoke-key KEY "
                   "| unrevoke NAME|KEY | revocations | reload")
      ->required();
  admin->add_option("NAME", arg,
                    "For kick and revoke: a name; for revoke-key: a Z85 public key or its "
                    "fingerprint (b2:...); for unrevoke: either");
  admin->add_option("--reason", reason, "Why (kept with a revocation, and in the audit trail)");
  admin->add_flag("--json", json, "JSON output");
  add_connection_options(admin, conn);

  TeleopOptions teleop_opts;
  auto* teleop =
      app.add_subcommand("teleop", "Drive a robot from the keyboard (arrows/WASD, space stops)");
  add_teleop_options(teleop, teleop_opts);
  add_connection_options(teleop, conn);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    std::cout << "curvebus " << CURVEBUS_VERSION << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      std::cout << app.help();
      return kExitOk;
    }
    return fail(kExitUsage, std::string(e.what()) + " (see curvebus --help)");
  }

  if (*keygen) return run_keygen(name, sign_name, federation_file, dir, home, force);
  if (*pub) return run_pub(conn, topic, message, retain, no_ack, json, ack_timeout);
  if (*sub) return run_sub(conn, patterns, count, timeout, json, retained);
  if (*pull) return run_pull(conn, topic, since, json);
  if (*topics) return run_topics(conn, pattern, json);
  if (*admin) return run_admin(conn, what, arg, reason, json);
  if (*teleop) return run_teleop(conn, teleop_opts);
  return kExitUsage;
}
