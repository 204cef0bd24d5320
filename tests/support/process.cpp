#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace curvebus::test {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

Process::Process(std::vector<std::string> argv, const std::string& log_prefix,
                 const std::map<std::string, std::string>& env, bool stdin_pipe)
    : out_path_(log_prefix + ".out"), err_path_(log_prefix + ".err") {
  int in_pipe[2] = {-1, -1};
  if (stdin_pipe && ::pipe2(in_pipe, O_CLOEXEC) != 0) return;
  // Build argv/envp before fork: only async-signal-safe calls after it.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int out_fd = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    if (stdin_pipe) {
      ::dup2(in_pipe[0], 0);
    } else {
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
    }
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // A bare name is looked up on PATH, as a shell would.
    ::execvpe(args[0], args.data(), envp.data());
    const char msg[] = "exec failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (stdin_pipe) {
    ::close(in_pipe[0]);
    stdin_fd_ = in_pipe[1];
  }
}

Process::~Process() {
  if (pid_ > 0) stop(std::chrono::milliseconds(2000));
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
}

Process::Process(Process&& other) noexcept {
  *this = std::move(other);
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop();
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    pid_ = other.pid_;
    exit_status_ = other.exit_status_;
    stdin_fd_ = other.stdin_fd_;
    out_path_ = std::move(other.out_path_);
    err_path_ = std::move(other.err_path_);
    other.pid_ = -1;
    other.stdin_fd_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
  }
  return false;
}

void Process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_status_;
  bool done = wait_until([this] { return !running(); }, timeout, std::chrono::milliseconds(5));
  return done ? exit_status_ : -1;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return exit_status_;
  signal(SIGTERM);
  if (wait(grace) != -1) return exit_status_;
  signal(SIGKILL);
  return wait(std::chrono::milliseconds(5000));
}

bool Process::write_stdin(const std::string& data) {
  if (stdin_fd_ < 0) return false;
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(stdin_fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void Process::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

std::string Process::out() const {
  return read_file(out_path_);
}
std::string Process::err() const {
  return read_file(err_path_);
}

bool Process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                              bool in_stderr) {
  return wait_until([&] { return (in_stderr ? err() : out()).find(needle) != std::string::npos; },
                    timeout);
}

RunResult run(std::vector<std::string> argv, const std::string& log_prefix,
              const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout,
              const std::string& stdin_data) {
  Process p(std::move(argv), log_prefix, env, true);
  if (!stdin_data.empty()) p.write_stdin(stdin_data);
  p.close_stdin();
  RunResult r;
  r.status = p.wait(timeout);
  if (r.status == -1) r.status = p.stop(std::chrono::milliseconds(500));
  r.out = p.out();
  r.err = p.err();
  return r;
}

bool write_control_line(const std::string& fifo, const std::string& line) {
  const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  const std::string l = line + "\n";
  const bool ok = ::write(fd, l.data(), l.size()) == static_cast<ssize_t>(l.size());
  ::close(fd);
  return ok;
}

}  // namespace curvebus::test
