// libFuzzer harness: the TOML front ends (allow-list, revocation list,
// broker, agent) on arbitrary text must return errors, never crash; a
// revocation list that parses must survive its own save format.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/config.hpp"
#include "curvebus/acl.hpp"
#include "curvebus/broker/config.hpp"
#include "curvebus/revocations.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)curvebus::AllowList::parse(text, "fuzz.toml", "/nonexistent-fuzz-dir");
  auto revoked = curvebus::RevocationList::parse(text, "fuzz.toml");
  if (revoked) {
    auto again = curvebus::RevocationList::parse(revoked->to_toml(), "fuzz-saved.toml");
    if (!again || again->entries().size() != revoked->entries().size()) std::abort();
    for (std::size_t i = 0; i < revoked->entries().size(); ++i) {
      const curvebus::Revocation& a = revoked->entries()[i];
      const curvebus::Revocation& b = again->entries()[i];
      if (a.kind != b.kind || a.value != b.value || a.by != b.by || a.at_us != b.at_us ||
          a.reason != b.reason)
        std::abort();
    }
  }
  curvebus::broker::Config config;
  (void)curvebus::broker::apply_toml(text, "fuzz.toml", "/nonexistent-fuzz-dir", config);
  curvebus::agent::AgentOptions options;
  (void)curvebus::agent::apply_agent_toml(text, "fuzz.toml", "/nonexistent-fuzz-dir", options);
  return 0;
}
