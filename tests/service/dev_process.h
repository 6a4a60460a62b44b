// DevProcess: the built `kindling dev` binary run by a test, with the
// KINDLING_* lines it prints read back; helpers shared by the tests that run
// it (tests/service).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "service/child_process.h"

namespace kindling::service {

inline std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A running `kindling dev`, its output in <dir>/dev.log.
class DevProcess {
 public:
  // `extra_args` go after `dev --state-dir DIR --listen 127.0.0.1:0
  // --edge-listen 127.0.0.1:0`.
  explicit DevProcess(const std::filesystem::path& state_dir,
                      const std::vector<std::string>& extra_args = {})
      : log_(state_dir.parent_path() / "dev.log") {
    // A fresh log per start: the lines of an earlier start must not be read.
    std::error_code ec;
    std::filesystem::rename(log_, log_.string() + ".previous", ec);
    SpawnOptions spawn;
    spawn.args = {KINDLING_BINARY, "dev",         "--state-dir",   state_dir.string(),
                  "--listen",      "127.0.0.1:0", "--edge-listen", "127.0.0.1:0"};
    spawn.args.insert(spawn.args.end(), extra_args.begin(), extra_args.end());
    spawn.log_file = log_;
    spawn.extra_env = {"KINDLING_LOG_LEVEL=info"};
    auto started = ChildProcess::Spawn(spawn);
    if (!started) throw std::runtime_error(started.error().message());
    process_.emplace(std::move(*started));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      std::istringstream lines(ReadAll(log_));
      std::string line;
      while (std::getline(lines, line)) {
        const auto eq = line.find('=');
        if (line.starts_with("KINDLING_") && eq != std::string::npos)
          values_[line.substr(0, eq)] = line.substr(eq + 1);
      }
      if (values_.contains("KINDLING_DSN")) return;
      if (!process_->Running())
        throw std::runtime_error("kindling dev exited: " + FileTail(log_, 3000));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("kindling dev not ready in 120 s: " + FileTail(log_, 3000));
  }
  ~DevProcess() {
    if (process_ && process_->Running()) process_->Stop(std::chrono::seconds(60));
  }

  std::string value(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? "" : it->second;
  }
  int port() const {
    const std::string url = value("KINDLING_URL");
    return std::stoi(url.substr(url.rfind(':') + 1));
  }
  // SIGTERM; the exit status, nullopt when still running after `timeout`.
  std::optional<int> Terminate(std::chrono::milliseconds timeout) {
    process_->Signal(SIGTERM);
    return process_->WaitFor(timeout);
  }
  const std::filesystem::path& log() const { return log_; }

 private:
  std::filesystem::path log_;
  std::optional<ChildProcess> process_;
  std::map<std::string, std::string> values_;
};

// The pid of the `kindling serve` child whose --state-dir is `state_dir`.
inline std::optional<pid_t> ChildPid(const std::filesystem::path& state_dir) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::string cmdline = ReadAll(entry.path() / "cmdline");
    std::vector<std::string> args;
    std::string arg;
    for (char c : cmdline) {
      if (c == '\0') {
        args.push_back(arg);
        arg.clear();
      } else {
        arg += c;
      }
    }
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--state-dir" && args[i + 1] == state_dir.string() &&
          std::find(args.begin(), args.end(), "serve") != args.end())
        return static_cast<pid_t>(std::stoi(name));
    }
  }
  return std::nullopt;
}

}  // namespace kindling::service
