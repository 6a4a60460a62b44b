#include "storage/object_store.h"

namespace kindling::storage {

bool IsValidObjectKey(std::string_view key) {
  if (key.empty() || key.size() > 1024 || key.front() == '/' || key.back() == '/') return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

namespace {

// Each Put goes straight to the store.
class ImmediateBatch final : public PutBatch {
 public:
  explicit ImmediateBatch(ObjectStore& store) : store_(store) {}
  Status Put(std::string_view key, std::string_view data) override { return store_.Put(key, data); }
  Status Commit() override { return OkStatus(); }

 private:
  ObjectStore& store_;
};

}  // namespace

Result<std::unique_ptr<PutBatch>> ObjectStore::NewBatch() {
  return std::make_unique<ImmediateBatch>(*this);
}

}  // namespace kindling::storage
