#include "cli/repository_access.h"

#include <spdlog/spdlog.h>

#include <string>

#include "crypto/key_file.h"

namespace kindling::cli {

storage::StoreOptions StoreOptionsFrom(const StoreFlags& flags) {
  storage::StoreOptions options;
  options.s3_endpoint = flags.s3_endpoint;
  options.s3_region = flags.s3_region;
  options.FillFromEnvironment();
  return options;
}

Result<std::unique_ptr<storage::ObjectStore>> OpenStoreFrom(const StoreFlags& flags) {
  KINDLING_ASSIGN_OR_RETURN(storage::StoreUrl url, storage::ParseStoreUrl(flags.url));
  const storage::StoreOptions options = StoreOptionsFrom(flags);
  if (url.scheme == storage::StoreUrl::Scheme::kS3 &&
      (options.access_key_id.empty() || options.secret_access_key.empty())) {
    return InvalidArgument(
        "an s3:// store needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  auto store = storage::OpenStore(flags.url, options);
  if (!store) return std::unexpected(store.error().WithContext("open store " + flags.url));
  // Never log the options themselves: they hold the secret key.
  spdlog::debug("store {} (endpoint '{}', region '{}')", (*store)->Describe(), options.s3_endpoint,
                options.s3_region);
  return store;
}

Result<crypto::Key> LoadKeyFrom(const StoreFlags& flags) {
  auto key = crypto::LoadKeyFile(flags.key_file);
  if (key) return key;
  if (key.error().is_not_found()) {
    return InvalidArgument("key file not found: " + flags.key_file +
                           " (`kindling store init` creates one)");
  }
  return std::unexpected(key.error().WithContext("key file " + flags.key_file));
}

Error ExplainUnlockError(const Error& error, const StoreFlags& flags,
                         const storage::ObjectStore& store) {
  switch (error.kind()) {
    case ErrorKind::kWrongKey:
      return Error(ErrorKind::kWrongKey, "wrong key file: " + flags.key_file +
                                             " does not unlock the store at " + store.Describe());
    case ErrorKind::kNotFound:
      return Error(ErrorKind::kNotFound, "store not initialised: " + store.Describe() +
                                             " (run `kindling store init` first)");
    default:
      return error.WithContext("open store " + store.Describe());
  }
}

Result<OpenedRepository> OpenRepositoryFrom(const StoreFlags& flags) {
  OpenedRepository opened;
  KINDLING_ASSIGN_OR_RETURN(opened.store, OpenStoreFrom(flags));
  KINDLING_ASSIGN_OR_RETURN(crypto::Key key, LoadKeyFrom(flags));
  auto repository = engine::Repository::Open(*opened.store, key);
  if (!repository)
    return std::unexpected(ExplainUnlockError(repository.error(), flags, *opened.store));
  opened.repository.emplace(std::move(*repository));
  return opened;
}

Result<repo::Manifest> FindManifest(const engine::Repository& repository,
                                    std::string_view backup_id, std::string_view volume_id) {
  auto manifest = volume_id.empty() ? repository.FindBackup(backup_id)
                                    : repository.LoadManifest(volume_id, backup_id);
  if (!manifest && manifest.error().is_not_found()) {
    std::string message = "backup not found: " + std::string(backup_id);
    if (!volume_id.empty()) message += " of volume " + std::string(volume_id);
    return NotFound(message + " in " + repository.store().Describe());
  }
  return manifest;
}

}  // namespace kindling::cli
