#include "storage/prefixed_store.h"

namespace kindling::storage {

PrefixedStore::PrefixedStore(ObjectStore& base, std::string prefix)
    : ObjectStoreWrapper(base), prefix_(prefix.empty() ? "" : prefix + "/") {}

std::string PrefixedStore::FullKey(std::string_view key) const {
  return prefix_ + std::string(key);
}

Status PrefixedStore::Put(std::string_view key, std::string_view data) {
  return base().Put(FullKey(key), data);
}

Status PrefixedStore::PutIfAbsent(std::string_view key, std::string_view data) {
  return base().PutIfAbsent(FullKey(key), data);
}
Result<std::string> PrefixedStore::Get(std::string_view key) { return base().Get(FullKey(key)); }
Result<std::uint64_t> PrefixedStore::Head(std::string_view key) {
  return base().Head(FullKey(key));
}
Status PrefixedStore::Delete(std::string_view key) { return base().Delete(FullKey(key)); }

Result<std::vector<ObjectInfo>> PrefixedStore::List(std::string_view prefix) {
  KINDLING_ASSIGN_OR_RETURN(auto objects, base().List(FullKey(prefix)));
  for (auto& object : objects) object.key.erase(0, prefix_.size());
  return objects;
}

namespace {

class PrefixedBatch final : public PutBatch {
 public:
  PrefixedBatch(std::unique_ptr<PutBatch> base, const PrefixedStore& store)
      : base_(std::move(base)), store_(store) {}
  Status Put(std::string_view key, std::string_view data) override {
    return base_->Put(store_.FullKey(key), data);
  }
  Status Commit() override { return base_->Commit(); }

 private:
  std::unique_ptr<PutBatch> base_;
  const PrefixedStore& store_;
};

}  // namespace

Result<std::unique_ptr<PutBatch>> PrefixedStore::NewBatch() {
  KINDLING_ASSIGN_OR_RETURN(std::unique_ptr<PutBatch> base_batch, base().NewBatch());
  return std::make_unique<PrefixedBatch>(std::move(base_batch), *this);
}

std::string PrefixedStore::Describe() const {
  if (prefix_.empty()) return base().Describe();
  return base().Describe() + ", prefix " + prefix_.substr(0, prefix_.size() - 1);
}

}  // namespace kindling::storage
