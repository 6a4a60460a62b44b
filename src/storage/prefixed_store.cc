#include "storage/prefixed_store.h"

namespace kindling::storage {

PrefixedStore::PrefixedStore(ObjectStore& base, std::string prefix)
    : ObjectStoreWrapper(base), prefix_(prefix.empty() ? "" : prefix + "/") {}

std::string PrefixedStore::Full(std::string_view key) const { return prefix_ + std::string(key); }

Status PrefixedStore::Put(std::string_view key, std::string_view data) {
  return base().Put(Full(key), data);
}

Status PrefixedStore::PutIfAbsent(std::string_view key, std::string_view data) {
  return base().PutIfAbsent(Full(key), data);
}
Result<std::string> PrefixedStore::Get(std::string_view key) { return base().Get(Full(key)); }
Result<std::uint64_t> PrefixedStore::Head(std::string_view key) { return base().Head(Full(key)); }
Status PrefixedStore::Delete(std::string_view key) { return base().Delete(Full(key)); }

Result<std::vector<ObjectInfo>> PrefixedStore::List(std::string_view prefix) {
  KINDLING_ASSIGN_OR_RETURN(auto objects, base().List(Full(prefix)));
  for (auto& object : objects) object.key.erase(0, prefix_.size());
  return objects;
}

std::string PrefixedStore::Describe() const {
  if (prefix_.empty()) return base().Describe();
  return base().Describe() + ", prefix " + prefix_.substr(0, prefix_.size() - 1);
}

}  // namespace kindling::storage
