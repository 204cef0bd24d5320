// libFuzzer harness: the three TOML front ends (ACL, broker, agent) on
// arbitrary text must return errors, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config.hpp"
#include "curvebus/acl.hpp"
#include "curvebus/broker/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)curvebus::AllowList::parse(text, "fuzz.toml", "/nonexistent-fuzz-dir");
  curvebus::broker::Config config;
  (void)curvebus::broker::apply_toml(text, "fuzz.toml", "/nonexistent-fuzz-dir", config);
  curvebus::agent::AgentOptions options;
  (void)curvebus::agent::apply_agent_toml(text, "fuzz.toml", "/nonexistent-fuzz-dir", options);
  return 0;
}
