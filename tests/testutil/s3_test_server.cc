#include "testutil/s3_test_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/subprocess.h"
#include "testutil/test_certificate.h"

extern char** environ;

namespace kindling::testutil {
namespace {

namespace fs = std::filesystem;

constexpr auto kStartTimeout = std::chrono::seconds(30);

const fs::path kServerDir = fs::path(KINDLING_SOURCE_DIR) / "tests/s3";

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kindling-s3-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  return tmpl;
}

// Reads the child's stdout until the "PORT <n>" line, or throws.
int ReadPort(int fd, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  std::string buffer;
  while (true) {
    const auto newline = buffer.find('\n');
    if (newline != std::string::npos) {
      const std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      if (line.rfind("PORT ", 0) == 0) return std::stoi(line.substr(5));
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("S3 test server did not start in time");
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char chunk[256];
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int status = 0;
      ::waitpid(pid, &status, WNOHANG);
      throw std::runtime_error(
          "S3 test server exited before printing its port (see its stderr above)");
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

void StopProcess(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno == ECHILD)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace

S3TestServer::S3TestServer(S3TestServerOptions options) : options_(std::move(options)) {
  if (!fs::exists(kServerDir / "node_modules/@20minutes/s3rver"))
    throw std::runtime_error("S3 test server: " + (kServerDir / "node_modules").string() +
                             " is missing; run scripts/install-deps.sh (npm ci in tests/s3)");
  if (options_.tls && options_.fault_rate > 0)
    throw std::invalid_argument("S3 test server: tls excludes fault_rate (the proxy is HTTP only)");
  dir_ = MakeTempDir();
  fs::create_directories(fs::path(dir_) / "data");
  if (options_.fault_rate > 0) proxy_stats_path_ = (fs::path(dir_) / "proxy-stats").string();
  std::optional<TlsFiles> tls;
  if (options_.tls) {
    try {
      // Other users (pgBackRest runs as postgres) reach the CA file inside.
      ::chmod(dir_.c_str(), 0711);
      tls = MakeLocalhostCertificate(fs::path(dir_) / "tls", "kindling S3 test CA");
    } catch (...) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
      throw;
    }
    ca_file_ = tls->ca.string();
  }

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls are allowed in a multi-threaded parent.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "KINDLING_S3_", 12) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("KINDLING_S3_DIR=" + (fs::path(dir_) / "data").string());
  env_strings.push_back("KINDLING_S3_BUCKET=" + options_.bucket);
  env_strings.push_back("KINDLING_S3_ACCESS_KEY=" + options_.access_key_id);
  env_strings.push_back("KINDLING_S3_SECRET_KEY=" + options_.secret_access_key);
  env_strings.push_back("KINDLING_S3_FAULT_RATE=" + std::to_string(options_.fault_rate));
  env_strings.push_back("KINDLING_S3_STATS_FILE=" + proxy_stats_path_);
  if (tls) {
    env_strings.push_back("KINDLING_S3_TLS_KEY=" + tls->key.string());
    env_strings.push_back("KINDLING_S3_TLS_CERT=" + tls->cert.string());
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string node = "node";
  // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
  // only has in its legacy provider; without it every truncated listing is a 500.
  std::string legacy = "--openssl-legacy-provider";
  std::string script = (kServerDir / "server.js").string();
  char* argv[] = {node.data(), legacy.data(), script.data(), nullptr};
  const pid_t parent = ::getpid();

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // The server must not outlive a test binary that crashes or is killed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    // Sockets and files of the test process are not the server's business.
    ::close_range(3, ~0U, 0);
    ::execvpe(node.c_str(), argv, envp.data());
    static constexpr char kMessage[] = "S3TestServer: cannot run node (is it on PATH?)\n";
    (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  server_pid_ = pid;
  try {
    const int port = ReadPort(pipe_fds[0], pid);
    host_port_ = (tls ? "localhost:" : "127.0.0.1:") + std::to_string(port);
    endpoint_ = (tls ? "https://" : "http://") + host_port_;
  } catch (...) {
    ::close(pipe_fds[0]);
    StopProcess(server_pid_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
  // The server prints nothing more; its stderr goes to ours.
  ::close(pipe_fds[0]);
}

S3TestServer::~S3TestServer() {
  Stop();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

void S3TestServer::Stop() {
  StopProcess(server_pid_);
  server_pid_ = -1;
}

std::string S3TestServer::data_dir() const { return (fs::path(dir_) / "data").string(); }

int S3TestServer::faults_injected() const {
  if (proxy_stats_path_.empty()) return 0;
  std::ifstream in(proxy_stats_path_);
  int count = 0;
  if (!(in >> count)) return 0;
  return count;
}

}  // namespace kindling::testutil
