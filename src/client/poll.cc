#include "client/poll.h"

#include <algorithm>
#include <thread>

#include "common/durations.h"

namespace kindling::client {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kCancelCheck = std::chrono::milliseconds(50);

}  // namespace

Result<nlohmann::json> PollUntil(const std::function<Result<nlohmann::json>()>& fetch,
                                 const std::function<bool(const nlohmann::json&)>& done,
                                 const std::function<std::string(const nlohmann::json&)>& state,
                                 const PollOptions& options, const std::string& what) {
  auto is_cancelled = [&] { return options.cancelled && options.cancelled(); };
  const auto start = Clock::now();
  const bool has_deadline = options.timeout.count() > 0;
  const Clock::time_point deadline =
      has_deadline ? start + options.timeout : Clock::time_point::max();
  std::string last_state;
  auto timed_out = [&]() -> Result<nlohmann::json> {
    const double seconds = std::chrono::duration<double>(options.timeout).count();
    return MakeError(ErrorKind::kTransient, what + " is still " +
                                                (last_state.empty() ? "unknown" : last_state) +
                                                " after " + FormatAge(seconds));
  };
  auto last_good = start;
  for (;;) {
    if (is_cancelled()) return Cancelled("stopped following " + what);
    auto document = fetch();
    if (document) {
      last_good = Clock::now();
      last_state = state(*document);
      if (options.on_update) options.on_update(*document);
      if (done(*document)) return std::move(*document);
    } else if (!document.error().retryable() ||
               Clock::now() - last_good > options.transient_grace) {
      return std::unexpected(document.error());
    }
    auto wake = Clock::now() + options.interval;
    if (has_deadline) {
      if (Clock::now() >= deadline) return timed_out();
      wake = std::min(wake, deadline);
    }
    for (auto now = Clock::now(); now < wake; now = Clock::now()) {
      if (is_cancelled()) return Cancelled("stopped following " + what);
      std::this_thread::sleep_for(std::min<Clock::duration>(kCancelCheck, wake - now));
    }
  }
}

}  // namespace kindling::client
