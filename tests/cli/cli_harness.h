// Test kit for end-to-end tests of the kindling binary: runs it as a child
// process (stdout/stderr captured to files, stdin /dev/null), parses its JSON
// results, and builds test images. Header-only so that every tests/cli/*_test.cc
// can include it (the layer's test target globs *_test.cc).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/demo_image.h"
#include "cli/flags.h"
#include "crypto/sha256.h"
#include "testutil/temp_dir.h"

extern char** environ;

namespace kindling::clitest {

namespace fs = std::filesystem;

using Env = std::vector<std::pair<std::string, std::string>>;

struct RunResult {
  int exit_code = -1;   // -1 when killed by a signal
  int term_signal = 0;  // the signal that ended the process, 0 if it exited
  std::string out;
  std::string err;

  // The last non-empty line of stdout.
  std::string LastLine() const {
    std::size_t end = out.size();
    while (end > 0 && out[end - 1] == '\n') --end;
    const std::size_t begin = out.rfind('\n', end == 0 ? 0 : end - 1);
    return out.substr(begin == std::string::npos ? 0 : begin + 1,
                      end - (begin == std::string::npos ? 0 : begin + 1));
  }
  // The last line of stdout parsed as JSON (a discarded value when it is not).
  nlohmann::json Json() const { return nlohmann::json::parse(LastLine(), nullptr, false); }
  // For assertion messages.
  std::string Describe() const {
    std::ostringstream s;
    s << "exit " << exit_code << " signal " << term_signal << "\n--- stdout:\n"
      << out.substr(0, 4000) << "\n--- stderr (tail):\n"
      << (err.size() > 4000 ? err.substr(err.size() - 4000) : err);
    return s.str();
  }
};

inline std::string ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A running kindling process.
class Child {
 public:
  Child(const std::vector<std::string>& args, const Env& env) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/kindling-cli-out-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
    out_dir_ = pattern;

    std::vector<std::string> argv_storage;
    argv_storage.push_back(KINDLING_BINARY);
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (const auto& [key, value] : env) overridden = overridden || key == name;
      if (!overridden) env_storage.push_back(entry);
    }
    for (const auto& [key, value] : env) env_storage.push_back(key + "=" + value);
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);

    const std::string out_path = (out_dir_ / "stdout").string();
    const std::string err_path = (out_dir_ / "stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv_storage[0] + " failed");
    start_ = std::chrono::steady_clock::now();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    fs::remove_all(out_dir_, ec);
  }

  void Signal(int signo) {
    if (pid_ > 0) ::kill(pid_, signo);
  }
  // The process id until Wait reaped it.
  pid_t pid() const { return pid_; }
  // True while the process has not exited (does not reap it).
  bool Running() {
    siginfo_t info{};
    return pid_ > 0 &&
           ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
  }
  std::string StderrSoFar() const { return ReadWholeFile(out_dir_ / "stderr"); }

  // Waits for the exit (SIGKILL after `timeout`, reported as a test failure).
  RunResult Wait(std::chrono::seconds timeout = std::chrono::seconds(600)) {
    RunResult result;
    int status = 0;
    for (;;) {
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (std::chrono::steady_clock::now() - start_ > timeout) {
        ADD_FAILURE() << "kindling did not finish within " << timeout.count() << " s; killing it";
        ::kill(pid_, SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
    result.out = ReadWholeFile(out_dir_ / "stdout");
    result.err = ReadWholeFile(out_dir_ / "stderr");
    return result;
  }

 private:
  pid_t pid_ = -1;
  fs::path out_dir_;
  std::chrono::steady_clock::time_point start_;
};

inline RunResult RunKindling(const std::vector<std::string>& args, const Env& env = {}) {
  Child child(args, env);
  return child.Wait();
}

// ---- images -----------------------------------------------------------------

inline std::string RandomBytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j)
      data[i + j] = static_cast<char>((v >> (8 * j)) & 0xff);
  }
  return data;
}

// Creates `path` of apparent size `size` (a hole everywhere).
inline void MakeSparse(const fs::path& path, std::uint64_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  fs::resize_file(path, size);
}

// Writes `data` at `offset` of an existing file (extending it if needed).
inline void WriteAt(const fs::path& path, std::uint64_t offset, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path.string());
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("pwrite " + path.string());
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

inline void WriteWhole(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("write " + path.string());
}

inline std::string FileSha256(const fs::path& path) {
  auto digest = cli::Sha256OfFile(path, nullptr);
  if (!digest) throw std::runtime_error(digest.error().message());
  return crypto::DigestHex(*digest);
}

inline std::uint64_t AllocatedBytes(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

// Every regular file under `dir` whose name starts with '.' and contains ".tmp-".
inline std::vector<fs::path> TempFilesUnder(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name.front() == '.' && name.find(".tmp-") != std::string::npos)
      found.push_back(it->path());
  }
  return found;
}

// Object files of a file:// store under `prefix` (e.g. "chunks", "project-volumes").
inline std::vector<fs::path> StoreObjects(const fs::path& store_dir, const std::string& prefix) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(store_dir / prefix, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_regular_file() && !name.empty() && name.front() != '.') found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

inline void FlipByte(const fs::path& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x01);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  if (!f) throw std::runtime_error("flip byte in " + path.string());
}

// Seed for randomised tests: KINDLING_TEST_SEED when set, else `fallback`.
inline std::uint64_t TestSeed(std::uint64_t fallback) {
  const char* env = std::getenv("KINDLING_TEST_SEED");
  return env && *env ? std::strtoull(env, nullptr, 10) : fallback;
}

// ---- fixture ------------------------------------------------------------------

// A temp dir with a file:// store; S3 fixtures replace store_args_ and env_.
class CliTest : public ::testing::Test {
 protected:
  CliTest()
      : store_dir_(dir_.path() / "store"),
        key_file_(dir_.path() / "store.key"),
        store_args_(
            {"--store", "file://" + store_dir_.string(), "--key-file", key_file_.string()}) {}

  fs::path Path(const std::string& name) const { return dir_.path() / name; }

  // kindling <command...> <store flags> <extra...>
  RunResult Run(std::vector<std::string> command, const std::vector<std::string>& extra = {}) {
    command.insert(command.end(), store_args_.begin(), store_args_.end());
    command.insert(command.end(), extra.begin(), extra.end());
    return RunKindling(command, env_);
  }
  std::unique_ptr<Child> Start(std::vector<std::string> command,
                               const std::vector<std::string>& extra = {}) {
    command.insert(command.end(), store_args_.begin(), store_args_.end());
    command.insert(command.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(command, env_);
  }

  // Backs up `image`, restores it, and checks the bytes and the reported hashes.
  void ExpectRoundTrip(const fs::path& image, const std::string& volume) {
    SCOPED_TRACE(image.filename().string());
    const std::string sha = FileSha256(image);
    const std::string digest = Digest(image);
    const auto created = Create(volume, image);
    ASSERT_TRUE(created.is_object());
    EXPECT_EQ(created["image_sha256"], digest);
    EXPECT_EQ(created["image_size"], fs::file_size(image));
    const fs::path restored = Path(image.filename().string() + ".restored");
    const auto result = Restore(created["backup_id"], restored);
    ASSERT_TRUE(result.is_object());
    EXPECT_EQ(result["image_sha256"], digest);
    EXPECT_EQ(fs::file_size(restored), fs::file_size(image));
    EXPECT_EQ(FileSha256(restored), sha);
    const auto verified = Verify(created["backup_id"]);
    EXPECT_EQ(verified["ok"], true);
    EXPECT_EQ(verified["problems"].size(), 0u);
  }

  // The following expect success and return the --json result.
  nlohmann::json Init(const std::string& chunk_size = "65536") {
    nlohmann::json result = Expect(Run({"store", "init", "--json", "--chunk-size", chunk_size}), 0);
    if (auto parsed = cli::ParseChunkSize(chunk_size)) chunk_size_ = *parsed;
    return result;
  }
  // The image digest (image_sha256) a backup into the Init'ed store records
  // for `image`, computed independently of the engine.
  std::string Digest(const fs::path& image) const {
    return testutil::ImageDigestOfFile(image, chunk_size_);
  }
  nlohmann::json Create(const std::string& volume, const fs::path& image,
                        std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--volume-id",  volume,   "--image",
                                     image.string(), "--json", "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Expect(Run({"backup", "create"}, args), 0);
  }
  nlohmann::json Restore(const std::string& backup_id, const fs::path& to,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--backup",  backup_id, "--to",
                                     to.string(), "--json",  "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Expect(Run({"backup", "restore"}, args), 0);
  }
  nlohmann::json Verify(const std::string& backup_id, int expected_exit = 0) {
    return Expect(Run({"backup", "verify"}, {"--backup", backup_id, "--json", "--quiet"}),
                  expected_exit);
  }
  nlohmann::json List(const std::string& volume = "") {
    std::vector<std::string> args = {"--json"};
    if (!volume.empty()) args.insert(args.end(), {"--volume-id", volume});
    return Expect(Run({"backup", "list"}, args), 0);
  }

  nlohmann::json Expect(const RunResult& result, int exit_code) {
    EXPECT_EQ(result.exit_code, exit_code) << result.Describe();
    nlohmann::json json = result.Json();
    if (exit_code == 0) {
      EXPECT_FALSE(json.is_discarded()) << result.Describe();
    }
    return json;
  }

  testutil::TempDir dir_;
  fs::path store_dir_;
  fs::path key_file_;
  std::vector<std::string> store_args_;
  std::uint32_t chunk_size_ = 4u << 20;  // the engine's default until Init
  Env env_;
};

}  // namespace kindling::clitest
