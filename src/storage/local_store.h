// LocalStore: an ObjectStore in a local directory (the embedded default).
// Each object is a file at <root>/<key>; Put writes a temp file beside it,
// fsyncs, renames and fsyncs the directory, so a crash never leaves a partial
// object under its final name. Directories a Put creates are fsynced, and so
// is the directory holding each, so a stored object survives a crash however
// new its directory. PutIfAbsent moves the temp file with RENAME_NOREPLACE:
// of racing creators exactly one wins. Temp files (".*.tmp-*") and hidden
// directories are never listed.
//
// A batch (NewBatch) writes its objects into a folder of its own,
// <root>/.staging/<uuid>, with no fsync; Commit fdatasyncs them all (the
// disk cache is flushed once or twice for the lot, not twice per object),
// then renames each into place and fsyncs each directory it moved one into.
// So an object is visible only once its content is durable, as with Put. A
// batch holds an flock on its folder; a new batch removes the folders no
// process holds (left by one killed mid-batch).
#pragma once

#include <filesystem>
#include <memory>

#include "storage/object_store.h"

namespace kindling::storage {

class LocalStore final : public ObjectStore {
 public:
  // Creates `root` (and parents) when missing.
  [[nodiscard]] static Result<std::unique_ptr<LocalStore>> Open(const std::filesystem::path& root);

  Status Put(std::string_view key, std::string_view data) override;
  Status PutIfAbsent(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::uint64_t> Head(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  std::string Describe() const override;
  Result<std::unique_ptr<PutBatch>> NewBatch() override;

  const std::filesystem::path& root() const { return root_; }

 private:
  class Batch;

  explicit LocalStore(std::filesystem::path root) : root_(std::move(root)) {}
  Result<std::filesystem::path> PathFor(std::string_view key) const;

  std::filesystem::path root_;
};

}  // namespace kindling::storage
