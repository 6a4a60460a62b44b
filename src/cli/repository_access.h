// Turning --store/--key-file/--s3-* flags into an unlocked Repository, with
// the operator-facing messages for the usual mistakes (missing key file, store
// not initialised, wrong key file).
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "cli/flags.h"
#include "crypto/aead.h"
#include "engine/repository.h"
#include "storage/object_store.h"
#include "storage/store_url.h"

namespace kindling::cli {

// The store and the repository that refers to it: keep them together.
struct OpenedRepository {
  std::unique_ptr<storage::ObjectStore> store;
  std::optional<engine::Repository> repository;  // set on success
};

// Flags first, then AWS_* environment variables for whatever is still empty.
storage::StoreOptions StoreOptionsFrom(const StoreFlags& flags);

// Validates the URL and opens the store (no network traffic yet).
[[nodiscard]] Result<std::unique_ptr<storage::ObjectStore>> OpenStoreFrom(const StoreFlags& flags);

// Loads --key-file; a missing file is an invalid argument (exit 2).
[[nodiscard]] Result<crypto::Key> LoadKeyFrom(const StoreFlags& flags);

// OpenStoreFrom + LoadKeyFrom + Repository::Open.
[[nodiscard]] Result<OpenedRepository> OpenRepositoryFrom(const StoreFlags& flags);

// Rewrites Repository::Open/Init errors into messages naming the key file and
// the store: kWrongKey keeps its kind and says "wrong key file".
Error ExplainUnlockError(const Error& error, const StoreFlags& flags,
                         const storage::ObjectStore& store);

// The manifest of --backup (and --volume-id when given).
[[nodiscard]] Result<repo::Manifest> FindManifest(const engine::Repository& repository,
                                                  std::string_view backup_id,
                                                  std::string_view volume_id);

}  // namespace kindling::cli
