#include "testutil/fault_injecting_store.h"

namespace kindling::testutil {

void FaultInjectingStore::SetRule(Rule rule) {
  std::lock_guard lock(mu_);
  rule_ = std::move(rule);
}

void FaultInjectingStore::FailMatching(StoreOp op, std::string needle, ErrorKind kind) {
  SetRule([op, needle = std::move(needle), kind](StoreOp o,
                                                 std::string_view key) -> std::optional<Error> {
    if (o == op && key.find(needle) != std::string_view::npos)
      return Error(kind, "injected fault on " + std::string(key));
    return std::nullopt;
  });
}

void FaultInjectingStore::Clear() { SetRule({}); }

std::optional<Error> FaultInjectingStore::Check(StoreOp op, std::string_view key) {
  calls_[static_cast<int>(op)]++;
  Rule rule;
  {
    std::lock_guard lock(mu_);
    rule = rule_;
  }
  return rule ? rule(op, key) : std::nullopt;
}

Status FaultInjectingStore::Put(std::string_view key, std::string_view data) {
  if (auto e = Check(StoreOp::kPut, key)) return std::unexpected(*e);
  return base().Put(key, data);
}

Status FaultInjectingStore::PutIfAbsent(std::string_view key, std::string_view data) {
  if (auto e = Check(StoreOp::kPut, key)) return std::unexpected(*e);
  return base().PutIfAbsent(key, data);
}
Result<std::string> FaultInjectingStore::Get(std::string_view key) {
  if (auto e = Check(StoreOp::kGet, key)) return std::unexpected(*e);
  return base().Get(key);
}
Result<std::uint64_t> FaultInjectingStore::Head(std::string_view key) {
  if (auto e = Check(StoreOp::kHead, key)) return std::unexpected(*e);
  return base().Head(key);
}
Status FaultInjectingStore::Delete(std::string_view key) {
  if (auto e = Check(StoreOp::kDelete, key)) return std::unexpected(*e);
  return base().Delete(key);
}
Result<std::vector<storage::ObjectInfo>> FaultInjectingStore::List(std::string_view prefix) {
  if (auto e = Check(StoreOp::kList, prefix)) return std::unexpected(*e);
  return base().List(prefix);
}

class FaultInjectingStore::Batch final : public storage::PutBatch {
 public:
  Batch(FaultInjectingStore& store, std::unique_ptr<storage::PutBatch> base)
      : store_(store), base_(std::move(base)) {}
  Status Put(std::string_view key, std::string_view data) override {
    if (auto e = store_.Check(StoreOp::kPut, key)) return std::unexpected(*e);
    return base_->Put(key, data);
  }
  Status Commit() override {
    if (auto e = store_.Check(StoreOp::kCommit, "")) return std::unexpected(*e);
    return base_->Commit();
  }

 private:
  FaultInjectingStore& store_;
  std::unique_ptr<storage::PutBatch> base_;
};

Result<std::unique_ptr<storage::PutBatch>> FaultInjectingStore::NewBatch() {
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<storage::PutBatch> base_batch, base().NewBatch());
  return std::make_unique<Batch>(*this, std::move(base_batch));
}

}  // namespace kindling::testutil
