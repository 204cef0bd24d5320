// Federation driven the way users drive it: the `curvebus` command-line tool
// run from a script (DESIGN.md "Command-line contract", docs/federation.md),
// against the bench of fed_env.hpp (3-node NATS cluster, brokers lab-a,
// lab-b, lab-c, the robot alex behind lab-c).  Every check is on what a
// script sees: exit status, files and their modes, stdout and stderr.
// Timing only as generous liveness bounds.
#include <google/protobuf/util/json_util.h>
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cctype>
#include <string>
#include <vector>

#include "fed_env.hpp"

using namespace curvebus;
using namespace curvebus::test;

namespace {

// Runs `curvebus ARGS...` as `name` of `broker` (its client environment) to
// completion; logs go under `dir`.
RunResult cli(const TempDir& dir, const BrokerHarness& broker, const std::string& name,
              const std::vector<std::string>& args,
              std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run(argv, dir / ("cli-" + std::to_string(++n)), broker.client_env(name), timeout);
}

// Runs `curvebus keygen ARGS...` with no broker at all.
RunResult keygen(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN, "keygen"};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run(argv, dir / ("keygen-" + std::to_string(++n)));
}

// Starts `curvebus ARGS...` as `name` of `broker` in the background.
std::unique_ptr<Process> cli_background(const TempDir& dir, const BrokerHarness& broker,
                                        const std::string& name,
                                        const std::vector<std::string>& args) {
  std::vector<std::string> argv{CURVEBUS_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return std::make_unique<Process>(argv, dir / ("cli-bg-" + std::to_string(++n)),
                                   broker.client_env(name));
}

int file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// A key file as documented: one line of 64 lower-case hex digits.
bool is_hex_key_line(const std::string& text) {
  std::string s = text;
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (s.size() != 64) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  return true;
}

// `curvebus admin federation --json` as `admin`, parsed; nullopt when the
// command failed or printed something that is not an AdminReply.
std::optional<v1::FederationStatus> admin_federation_json(const TempDir& dir,
                                                          const BrokerHarness& broker,
                                                          const std::string& admin,
                                                          std::string* raw = nullptr) {
  const RunResult r = cli(dir, broker, admin, {"admin", "federation", "--json"});
  if (raw) *raw = r.out + r.err;
  if (r.status != 0) return std::nullopt;
  v1::AdminReply reply;
  if (!google::protobuf::util::JsonStringToMessage(r.out, &reply).ok()) return std::nullopt;
  return reply.federation();
}

std::uint64_t refused_for(const v1::FederationStatus& st, const std::string& cause) {
  const auto it = st.refused().find(cause);
  return it == st.refused().end() ? 0 : it->second;
}

bool has_peer(const v1::FederationStatus& st, const std::string& name) {
  for (const auto& p : st.peers())
    if (p.name() == name) return true;
  return false;
}

// Waits until `broker`'s federation reports it is connected to NATS.
bool federation_connected(const TempDir& dir, const BrokerHarness& broker,
                          const std::string& admin) {
  return wait_until(
      [&] {
        const auto st = admin_federation_json(dir, broker, admin);
        return st && st->connected();
      },
      30000ms, 200ms);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

TEST_CASE(
    "federation cli: keygen --sign and --federation-key write 64-hex key files with the "
    "documented modes, and a second --federation-key on the same file is refused",
    "[federation][cli]") {
  TempDir dir{"fcli-keys"};
  const std::string keys = dir / "keys";

  RunResult r = keygen(dir, {"--sign", "lab-q", "--dir", keys});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string pub = keys + "/lab-q.sign", secret = keys + "/lab-q.sign_secret";
  CHECK(file_mode(pub) == 0644);
  CHECK(file_mode(secret) == 0600);
  const std::string pub_text = read_file(pub), secret_text = read_file(secret);
  CHECK(is_hex_key_line(pub_text));
  CHECK(is_hex_key_line(secret_text));
  CHECK(pub_text != secret_text);
  // The public file is the public half of the secret one, and the tool
  // printed it.
  auto pair = fed::read_signing_keys(secret);
  REQUIRE(pair);
  auto public_key = fed::read_signing_public_key(pub);
  REQUIRE(public_key);
  CHECK(*public_key == pair->public_key);
  CHECK(r.out.find(pub_text.substr(0, 64)) != std::string::npos);

  const std::string fkey = dir / "federation-2027.key";
  r = keygen(dir, {"--federation-key", fkey});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(file_mode(fkey) == 0600);
  const std::string fkey_text = read_file(fkey);
  CHECK(is_hex_key_line(fkey_text));
  REQUIRE(fed::read_federation_key(fkey));

  // Never overwrites: the key in use survives a second keygen by mistake.
  r = keygen(dir, {"--federation-key", fkey});
  CHECK(r.status != 0);
  CHECK(r.err.rfind("curvebus: ", 0) == 0);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(read_file(fkey) == fkey_text);
  CHECK(file_mode(fkey) == 0600);
}

TEST_CASE(
    "federation cli: brokers keyed with curvebus keygen federate — curvebus sub on lab-c prints "
    "telemetry that curvebus pub sent on lab-a, as lab-a/dev, and lab-a sees the robot's",
    "[federation][cli]") {
  FedEnv env(3, FedEnv::KeySource::kCli);
  INFO(env.error);
  REQUIRE(env.ok);

  auto sub =
      cli_background(env.dir, env.c(), "fedadmin",
                     {"sub", "robot/bravo/telemetry", "--count", "1", "--timeout", "40", "--json"});
  // Streams are at most once and the import side subscribes in the
  // background: publish until the subscriber has its message.
  int published = 0;
  REQUIRE(wait_until(
      [&] {
        const RunResult p = cli(env.dir, env.a(), "dev",
                                {"pub", "--json", "robot/bravo/telemetry",
                                 "{\"sample\":\"" + std::to_string(424200 + published) + "\"}"});
        INFO(p.err);
        REQUIRE(p.status == 0);
        ++published;
        return !sub->running();
      },
      40000ms, 300ms));
  REQUIRE(sub->wait(5000ms) == 0);
  const auto got = lines_of(sub->out());
  INFO(sub->out() << sub->err());
  REQUIRE(got.size() == 1);
  CHECK(got[0].find("\"topic\":\"robot/bravo/telemetry\"") != std::string::npos);
  CHECK(got[0].find("\"publisher\":\"lab-a/dev\"") != std::string::npos);
  CHECK(got[0].find("\"sample\":\"4242") != std::string::npos);

  // The other way: the robot's telemetry (agent on lab-c) on lab-a.
  const RunResult far =
      cli(env.dir, env.a(), "op1",
          {"sub", "robot/alex/telemetry", "--count", "1", "--timeout", "20", "--json"});
  INFO(far.err);
  REQUIRE(far.status == 0);
  CHECK(far.out.find("\"publisher\":\"lab-c/alex\"") != std::string::npos);
}

TEST_CASE(
    "federation cli: admin federation on lab-c shows the backbone connected and peers lab-a "
    "and lab-b, and counts forged garbage as malformed, in text and in --json",
    "[federation][cli]") {
  FedEnv env;
  INFO(env.error);
  REQUIRE(env.ok);
  REQUIRE(federation_connected(env.dir, env.c(), "fedadmin"));

  std::string raw;
  auto st = admin_federation_json(env.dir, env.c(), "fedadmin", &raw);
  INFO(raw);
  REQUIRE(st);
  CHECK(st->name() == "lab-c");
  CHECK(st->connected());
  CHECK(has_peer(*st, "lab-a"));
  CHECK(has_peer(*st, "lab-b"));
  CHECK(!has_peer(*st, "lab-c"));
  CHECK(refused_for(*st, "malformed") == 0);

  RunResult text = cli(env.dir, env.c(), "fedadmin", {"admin", "federation"});
  INFO(text.out << text.err);
  REQUIRE(text.status == 0);
  CHECK(text.out.find("federation lab-c, connected to nats://127.0.0.1:") != std::string::npos);
  bool row_a = false, row_b = false;
  for (const auto& line : lines_of(text.out)) {
    row_a = row_a || line.rfind("lab-a ", 0) == 0;
    row_b = row_b || line.rfind("lab-b ", 0) == 0;
  }
  CHECK(row_a);
  CHECK(row_b);

  // A client without the admin right is refused (exit 5, one line).
  const RunResult viewer = cli(env.dir, env.c(), "viewer", {"admin", "federation"});
  CHECK(viewer.status == 5);
  CHECK(lines_of(viewer.err).size() == 1);

  // Garbage on a subject lab-c imports, straight onto the backbone.
  auto raw_nc = nats::connect(env.nats.url(1));
  REQUIRE(raw_nc);
  const std::string subject = "curvebus.s.lab-a.robot.alex.telemetry";
  const std::string garbage = "FORGED garbage, not an envelope";
  REQUIRE(natsConnection_Publish(raw_nc.get(), subject.c_str(), garbage.data(),
                                 static_cast<int>(garbage.size())) == NATS_OK);
  REQUIRE(natsConnection_Flush(raw_nc.get()) == NATS_OK);
  REQUIRE(wait_until(
      [&] {
        st = admin_federation_json(env.dir, env.c(), "fedadmin");
        return st && refused_for(*st, "malformed") >= 1;
      },
      15000ms, 200ms));
  CHECK(refused_for(*st, "malformed") == 1);

  text = cli(env.dir, env.c(), "fedadmin", {"admin", "federation"});
  REQUIRE(text.status == 0);
  bool refused_line = false;
  for (const auto& line : lines_of(text.out))
    refused_line = refused_line || (line.rfind("refused ", 0) == 0 &&
                                    line.find("malformed 1") != std::string::npos);
  CHECK(refused_line);
}

TEST_CASE(
    "federation cli: pub --json of a robot command on lab-a exits 0 with the backbone up and the "
    "robot acks it, and with the NATS cluster down it exits 5 naming FEDERATION_UNAVAILABLE",
    "[federation][cli][faults]") {
  FedEnv env;
  INFO(env.error);
  REQUIRE(env.ok);
  // "connected" is not enough: commands are accepted once the broker has set
  // up its JetStream streams and consumer, which admin federation shows as
  // "ready" (a script waits for it the same way).
  auto backbone_ready = [&](const BrokerHarness& broker, const std::string& admin) {
    return wait_until(
        [&] {
          const auto st = admin_federation_json(env.dir, broker, admin);
          return st && st->ready();
        },
        30000ms, 200ms);
  };
  REQUIRE(backbone_ready(env.a(), "dev"));
  REQUIRE(backbone_ready(env.c(), "fedadmin"));

  // The robot's answer, watched from lab-a as a script would.
  auto acks =
      cli_background(env.dir, env.a(), "op1",
                     {"sub", "robot/alex/ack", "--count", "1", "--timeout", "40", "--json"});
  REQUIRE(wait_until(
      [&] {
        const RunResult c = cli(env.dir, env.a(), "dev", {"admin", "clients", "--json"});
        return c.status == 0 && c.out.find("robot/alex/ack") != std::string::npos;
      },
      10000ms, 100ms));

  RunResult r = cli(env.dir, env.a(), "op1",
                    {"pub", "--json", "robot/alex/cmd", R"({"id":"fcli-stats-1","getStats":{}})"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  CHECK(acks->wait(45000ms) == 0);
  INFO(acks->out() << acks->err());
  CHECK(acks->out().find("\"id\":\"fcli-stats-1\"") != std::string::npos);
  CHECK(acks->out().find("\"publisher\":\"lab-c/alex\"") != std::string::npos);

  env.nats.stop();
  r = cli(env.dir, env.a(), "op1",
          {"pub", "--json", "robot/alex/cmd", R"({"id":"fcli-stats-2","getStats":{}})", "--timeout",
           "15"});
  INFO(r.err);
  CHECK(r.status == 5);
  CHECK(r.err.rfind("curvebus: ", 0) == 0);
  CHECK(lines_of(r.err).size() == 1);
  CHECK(r.err.find("not stored in the federation") != std::string::npos);
  // The refusal names its code, so a script tells it from a denial (also exit 5).
  CHECK(r.err.rfind("curvebus: FEDERATION_UNAVAILABLE: ", 0) == 0);

  // lab-a's admin sees it too: not connected, the command counted as refused.
  std::optional<v1::FederationStatus> st;
  CHECK(wait_until(
      [&] {
        st = admin_federation_json(env.dir, env.a(), "dev");
        return st && !st->connected() && st->commands_unavailable() >= 1;
      },
      15000ms, 200ms));
  const RunResult text = cli(env.dir, env.a(), "dev", {"admin", "federation"});
  CHECK(text.status == 0);
  CHECK(text.out.find("NOT connected") != std::string::npos);
}
