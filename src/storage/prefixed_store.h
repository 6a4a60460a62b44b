// PrefixedStore: puts every key of its base store under "<prefix>/", so that
// several stores (or other data) can share one bucket. List strips the prefix.
#pragma once

#include <string>

#include "storage/object_store.h"

namespace kindling::storage {

class PrefixedStore final : public ObjectStoreWrapper {
 public:
  // REQUIRES: `prefix` is empty or a valid object key (no leading/trailing '/').
  PrefixedStore(ObjectStore& base, std::string prefix);

  Status Put(std::string_view key, std::string_view data) override;
  Status PutIfAbsent(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::uint64_t> Head(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  std::string Describe() const override;
  // The base store's batch, with the prefix put before each key.
  Result<std::unique_ptr<PutBatch>> NewBatch() override;

  // `key` with the prefix before it.
  std::string FullKey(std::string_view key) const;

 private:
  std::string prefix_;  // with a trailing '/', or empty
};

}  // namespace kindling::storage
