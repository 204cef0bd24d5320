// A child process for integration tests: started with fork/exec, its stdout
// and stderr captured to files, stopped by PID (SIGTERM, then SIGKILL) when the
// object goes away.  Only processes a test started are ever signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace curvebus::test {

class Process {
 public:
  Process() = default;
  // Starts argv[0] with the given arguments; `env` entries are added to (or
  // override) the environment.  stdout/stderr go to `log_prefix`.out/.err.
  Process(std::vector<std::string> argv, const std::string& log_prefix,
          const std::map<std::string, std::string>& env = {}, bool stdin_pipe = false);
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit status (128+signal if killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL.  Returns the exit status.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  // Writes to the child's stdin (stdin_pipe must be true); close_stdin() sends EOF.
  bool write_stdin(const std::string& data);
  void close_stdin();

  std::string out() const;  // captured stdout so far
  std::string err() const;  // captured stderr so far
  const std::string& out_path() const { return out_path_; }
  const std::string& err_path() const { return err_path_; }

  // Waits until stdout (or stderr) contains `needle`.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                       bool in_stderr = false);

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
  int stdin_fd_ = -1;
  std::string out_path_, err_path_;
};

// Runs a command to completion (bounded by `timeout`, then killed), returns
// exit status and captured output.
struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};
RunResult run(std::vector<std::string> argv, const std::string& log_prefix,
              const std::map<std::string, std::string>& env = {},
              std::chrono::milliseconds timeout = std::chrono::milliseconds(20000),
              const std::string& stdin_data = "");

std::string read_file(const std::string& path);
// Writes `line` and a newline to a control FIFO without blocking; false when
// nobody reads it or the write was short.
bool write_control_line(const std::string& fifo, const std::string& line);
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(20));

}  // namespace curvebus::test
