// FaultInjectingStore: a wrapper that fails chosen calls, for crash and retry
// tests. Its batches are the base store's (a local store's stage their
// objects until Commit), with each Put checked as kPut and Commit as
// kCommit (key ""). Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "storage/object_store.h"

namespace kindling::testutil {

enum class StoreOp { kPut, kGet, kHead, kDelete, kList, kCommit };

class FaultInjectingStore final : public storage::ObjectStoreWrapper {
 public:
  // Returns an error to inject for (op, key), or nullopt to pass the call on.
  using Rule = std::function<std::optional<Error>(StoreOp op, std::string_view key)>;

  explicit FaultInjectingStore(storage::ObjectStore& base) : ObjectStoreWrapper(base) {}
  void SetRule(Rule rule);
  // Fails every call of `op` on keys containing `needle` with `kind`.
  void FailMatching(StoreOp op, std::string needle, ErrorKind kind);
  void Clear();
  int calls(StoreOp op) const { return calls_[static_cast<int>(op)].load(); }

  Status Put(std::string_view key, std::string_view data) override;
  // Faults as for kPut.
  Status PutIfAbsent(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::uint64_t> Head(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Result<std::vector<storage::ObjectInfo>> List(std::string_view prefix) override;
  Result<std::unique_ptr<storage::PutBatch>> NewBatch() override;

 private:
  class Batch;
  std::optional<Error> Check(StoreOp op, std::string_view key);

  mutable std::mutex mu_;
  Rule rule_;
  std::atomic<int> calls_[6] = {};
};

}  // namespace kindling::testutil
