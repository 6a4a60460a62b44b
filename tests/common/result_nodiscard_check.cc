// Compiled, not run, by the result_nodiscard.* tests (tests/CMakeLists.txt):
// with no KINDLING_DROP_* macro it must compile cleanly; with one, the
// compiler must report the dropped result. Result, Status and ControlResult
// carry [[nodiscard]] on their type, which is what covers virtual functions
// (g++ ignores the attribute on a virtual function's declaration) and calls
// through std::function.
#include <functional>

#include "common/result.h"
#include "control/control_error.h"

namespace kindling {
namespace {

Status Sync() { return OkStatus(); }
Result<int> Count() { return 1; }
control::ControlResult<int> Decide() { return 2; }

class Store {
 public:
  virtual ~Store() = default;
  virtual Status Flush() = 0;
};

class MemoryStore final : public Store {
 public:
  Status Flush() override { return OkStatus(); }
};

}  // namespace
}  // namespace kindling

int main() {
  using namespace kindling;
  MemoryStore memory;
  Store& store = memory;
  const std::function<Status()> callback = Sync;
  IgnoreError(store.Flush(), "the check compiles a deliberate discard");
#if defined(KINDLING_DROP_PLAIN)
  Sync();
#elif defined(KINDLING_DROP_RESULT)
  Count();
#elif defined(KINDLING_DROP_VIRTUAL)
  store.Flush();
#elif defined(KINDLING_DROP_FUNCTION)
  callback();
#elif defined(KINDLING_DROP_CONTROL)
  Decide();
#endif
  return Sync() && Count() && Decide() && callback() ? 0 : 1;
}
