#include "api/read_cache.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <string_view>

#include "common/ids.h"
#include "db/notifications.h"

namespace kindling::api {
namespace {

// True when `fd` has input (or an error or hangup) waiting, without
// waiting for any.
bool HasInput(int fd, int timeout_ms) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  return ::poll(&p, 1, timeout_ms) != 0;
}

constexpr auto kReconnectDelay = std::chrono::seconds(1);
constexpr std::string_view kSyncPrefix = "sync:";
constexpr auto kPollSlice = std::chrono::milliseconds(200);

}  // namespace

ChangeWatch::ChangeWatch(std::string dsn, std::chrono::milliseconds check_interval,
                         std::function<db::TableCounts()> writes)
    : dsn_(std::move(dsn)),
      check_interval_(check_interval),
      writes_(writes ? std::move(writes)
                     : std::function<db::TableCounts()>(db::ChangedTableWrites)) {}

ChangeWatch::~ChangeWatch() { Stop(); }

void ChangeWatch::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void ChangeWatch::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status ChangeWatch::Sync(const std::function<Status(const std::string& payload)>& send,
                         std::chrono::milliseconds timeout) {
  // Not listening: nothing is answered from memory, and once listening
  // again every value kept before is older than the stamp.
  if (!listening()) return {};
  const std::string token = std::string(kSyncPrefix) + NewUuidV4();
  KINDLING_RETURN_IF_ERROR(send(token));
  std::unique_lock lock(mu_);
  if (!synced_cv_.wait_for(lock, timeout, [&] {
        return std::find(synced_.begin(), synced_.end(), token) != synced_.end();
      })) {
    return TransientError("read cache: changes not caught up within the timeout");
  }
  return {};
}

void ChangeWatch::Publish() {
  if (arrived_.empty()) return;
  std::lock_guard lock(mu_);
  for (std::string& token : arrived_) {
    if (synced_.size() >= 64) synced_.erase(synced_.begin());
    synced_.push_back(std::move(token));
  }
  arrived_.clear();
  synced_cv_.notify_all();
}

Status ChangeWatch::Take(db::Listener& listener) {
  auto taken = listener.Wait(std::chrono::milliseconds(0));
  if (!taken) return std::unexpected(taken.error());
  Count(*taken);
  return {};
}

std::optional<ChangeWatch::Stamp> ChangeWatch::Current(std::uint32_t tables) const {
  const int fd = socket_.load();
  if (fd < 0) return std::nullopt;
  // While the connection is checked, the thread reads its socket; else,
  // input there is not counted yet.
  bool settled = !checking_.load() && !HasInput(fd, 0);
  // Input taken from the socket after the poll is either being counted
  // (phase odd, or moved) or counted already (the counters show it).
  const std::uint64_t phase = phase_.load();
  if (phase % 2 != 0) settled = false;
  std::uint64_t notified = reconnected_.load();
  for (int i = 0; i < kTableCount; ++i) {
    if ((tables & (1u << i)) != 0) notified += notified_[i].load();
  }
  if (phase_.load() != phase || checking_.load()) settled = false;
  if (socket_.load() != fd) return std::nullopt;
  db::TableCounts written = writes_();
  for (int i = 0; i < kTableCount; ++i) {
    if ((tables & (1u << i)) == 0) written[i] = 0;
  }
  return Stamp{.notified = notified, .written = written, .settled = settled};
}

void ChangeWatch::Count(const std::vector<db::Notification>& notifications) {
  const auto& kNames = db::kNotifyingTables;
  for (const db::Notification& notification : notifications) {
    if (notification.payload.starts_with(kSyncPrefix)) {
      // Published once the phase is even again (Publish): a Get after Sync
      // must find the counts settled.
      arrived_.push_back(notification.payload);
      continue;
    }
    const auto it = std::find(kNames.begin(), kNames.end(), notification.payload);
    if (it != kNames.end()) {
      ++notified_[it - kNames.begin()];
    } else {
      ++reconnected_;  // unknown: every table may have changed
    }
  }
}

void ChangeWatch::Run() {
  bool warned = false;
  auto stopping_for = [&](auto delay) {
    std::unique_lock lock(mu_);
    return stop_cv_.wait_for(lock, delay, [&] { return stopping_; });
  };
  while (!stopping_for(std::chrono::milliseconds(0))) {
    auto opened = db::Listener::Open(dsn_, {db::kChangesChannel});
    if (!opened) {
      if (!warned) {
        spdlog::warn("read cache: no change notifications ({}); reads go to the database",
                     opened.error().message());
        warned = true;
      }
      if (stopping_for(kReconnectDelay)) break;
      continue;
    }
    if (warned) spdlog::info("read cache: change notifications back");
    warned = false;
    std::unique_ptr<db::Listener> listener = std::move(*opened);
    const int fd = listener->socket();
    // Changes committed before LISTEN took effect were never notified.
    ++reconnected_;
    socket_.store(fd);
    auto checked = std::chrono::steady_clock::now();
    Status status;
    while (status && !stopping_for(std::chrono::milliseconds(0))) {
      const auto due = checked + check_interval_;
      const auto wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       due - std::chrono::steady_clock::now()),
                                   std::chrono::milliseconds(0), kPollSlice);
      if (HasInput(fd, static_cast<int>(wait.count()))) {
        ++phase_;  // odd before the input is taken: see Current()
        status = Take(*listener);
        ++phase_;
        Publish();
        continue;
      }
      if (std::chrono::steady_clock::now() < due) continue;
      // A connection that died without a word never turns readable: ask.
      checking_.store(true);
      ++phase_;
      status = listener->Check();
      // Notifications the round trip brought in are counted like any.
      if (status) status = Take(*listener);
      ++phase_;
      Publish();
      if (!status) socket_.store(-1);
      checking_.store(false);
      checked = std::chrono::steady_clock::now();
    }
    socket_.store(-1);
    ++reconnected_;
    if (!status) {
      spdlog::warn("read cache: change notifications lost ({}); reads go to the database",
                   status.error().message());
      warned = true;
      if (stopping_for(kReconnectDelay)) break;
    }
  }
  socket_.store(-1);
}

}  // namespace kindling::api
