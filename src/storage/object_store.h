// ObjectStore: the one interface between the backup engine and where bytes live.
//
// Contract for every implementation:
// - Thread-safe: any number of threads may call any method concurrently.
// - Put is atomic: a reader sees either no object or the whole object, never a
//   prefix. Put overwrites; PutIfAbsent never does (objects that must not be
//   replaced, such as the store config).
// - Get/Head/Delete on a missing key: kNotFound from Get/Head, success from Delete.
// - Errors that a retry may fix (5xx, 429, timeouts, resets) are kTransient;
//   credentials rejected are kPermissionDenied. Wrappers (retry, metrics, fault
//   injection) derive from ObjectStoreWrapper and override only what they change.
// - Keys are '/'-separated relative paths of [A-Za-z0-9._/-], never starting
//   with '/' nor containing "..".
// - Batches (NewBatch) put many objects that are needed together, such as a
//   backup's chunks before its manifest: a store whose Put pays a sync of its
//   own (a local directory) syncs the batch's objects together at Commit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kindling::storage {

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  // When the object was last written (Unix ms, the store's clock); 0 when
  // the backend does not say.
  std::int64_t modified_unix_ms = 0;
};

// Puts whose objects become visible and durable together, at Commit.
// Thread-safe: any number of threads may Put at once.
class PutBatch {
 public:
  virtual ~PutBatch() = default;

  // As ObjectStore::Put, except that the object may be neither visible (Get,
  // Head, List) nor durable before Commit returns OK.
  [[nodiscard]] virtual Status Put(std::string_view key, std::string_view data) = 0;
  // Makes every object Put through the batch visible and durable, as if each
  // had been Put on the store. REQUIRES: called once, after every Put
  // returned. On an error some objects may be visible (each whole and
  // durable), others not: the caller puts them again or gives up. A batch
  // destroyed before a successful Commit removes what it has not made
  // visible; what a killed process staged, a later batch on the same store
  // removes.
  [[nodiscard]] virtual Status Commit() = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  [[nodiscard]] virtual Status Put(std::string_view key, std::string_view data) = 0;
  // As Put, but kAlreadyExists when an object has `key` already; then the
  // existing object is untouched. Of racing callers at most one succeeds
  // where the backend decides atomically (a local directory; S3 services
  // that honour If-None-Match on PUT), see each implementation.
  [[nodiscard]] virtual Status PutIfAbsent(std::string_view key, std::string_view data) = 0;
  [[nodiscard]] virtual Result<std::string> Get(std::string_view key) = 0;
  // Size of the object; kNotFound when absent.
  [[nodiscard]] virtual Result<std::uint64_t> Head(std::string_view key) = 0;
  [[nodiscard]] virtual Status Delete(std::string_view key) = 0;
  // Every object whose key starts with `prefix`, in lexical key order.
  [[nodiscard]] virtual Result<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  // Where the store points, for messages and logs: never contains a secret.
  virtual std::string Describe() const = 0;
  // A new batch of Puts. The default puts each object at once through this
  // store's Put, and its Commit does nothing: right for stores whose Put
  // syncs nothing of its own (S3), and for wrappers, whose own Put then runs.
  // A wrapper that only forwards, or that rewrites keys, overrides this to
  // keep its base store's batches.
  [[nodiscard]] virtual Result<std::unique_ptr<PutBatch>> NewBatch();
};

// Forwards every call to a base store it does not own, but for NewBatch (see
// there).
class ObjectStoreWrapper : public ObjectStore {
 public:
  explicit ObjectStoreWrapper(ObjectStore& base) : base_(base) {}

  Status Put(std::string_view key, std::string_view data) override { return base_.Put(key, data); }
  Status PutIfAbsent(std::string_view key, std::string_view data) override {
    return base_.PutIfAbsent(key, data);
  }
  Result<std::string> Get(std::string_view key) override { return base_.Get(key); }
  Result<std::uint64_t> Head(std::string_view key) override { return base_.Head(key); }
  Status Delete(std::string_view key) override { return base_.Delete(key); }
  Result<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    return base_.List(prefix);
  }
  std::string Describe() const override { return base_.Describe(); }

 protected:
  ObjectStore& base() { return base_; }
  const ObjectStore& base() const { return base_; }

 private:
  ObjectStore& base_;
};

// True when `key` follows the key rules above.
bool IsValidObjectKey(std::string_view key);

}  // namespace kindling::storage
