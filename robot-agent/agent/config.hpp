// The agent's settings: a TOML file with an [agent] table (keys are the long
// flags with '_' for '-'), overridden by command-line flags.  Unknown keys
// and wrong types are errors naming file and line.
#pragma once

#include <string>
#include <string_view>

#include "agent.hpp"
#include "curvebus/status.hpp"

namespace curvebus::agent {

struct AgentOptions {
  AgentConfig agent;
  std::string endpoint, server_key, key, home;
  std::string log_level = "info";
  std::string log_file;
};

// Applies `text` (TOML) over `options`.  Relative paths resolve against the
// file's directory.
Status apply_agent_toml(std::string_view text, const std::string& source,
                        const std::string& base_dir, AgentOptions& options);
Status load_agent_config(const std::string& path, AgentOptions& options);

}  // namespace curvebus::agent
