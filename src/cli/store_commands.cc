// `kindling store init` and `kindling version`.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cancel.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "cli/output.h"
#include "cli/repository_access.h"
#include "crypto/key_file.h"
#include "engine/repository.h"

namespace kindling::cli {

int RunStoreInit(const StoreInitFlags& flags, const CommonFlags& common) {
  std::optional<std::uint32_t> chunk_size;
  if (!flags.chunk_size.empty()) {
    auto parsed = ParseChunkSize(flags.chunk_size);
    if (!parsed) return ReportError(parsed.error());
    chunk_size = *parsed;
  }
  auto store = OpenStoreFrom(flags.store);
  if (!store) return ReportError(store.error());

  bool key_created = false;
  auto key = crypto::LoadKeyFile(flags.store.key_file);
  if (!key && key.error().is_not_found()) {
    key = crypto::CreateKeyFile(flags.store.key_file);
    key_created = key.has_value();
    // A racing init created it first: use that key (it is never replaced).
    if (!key && key.error().kind() == ErrorKind::kAlreadyExists)
      key = crypto::LoadKeyFile(flags.store.key_file);
  }
  if (!key) return ReportError(key.error().WithContext("key file " + flags.store.key_file));

  bool initialised_now = true;
  auto repository = chunk_size ? engine::Repository::Init(**store, *key, *chunk_size)
                               : engine::Repository::Init(**store, *key);
  if (!repository && repository.error().kind() == ErrorKind::kAlreadyExists) {
    // Idempotent: an initialised store that this key unlocks is success.
    initialised_now = false;
    repository = engine::Repository::Open(**store, *key);
    // Initialised already (perhaps by an init that won a race) with another
    // key file: say so, rather than only that this key does not unlock it.
    if (!repository && repository.error().kind() == ErrorKind::kWrongKey)
      return FailCommand(
          Error(ErrorKind::kWrongKey, "wrong key file: the store " + (*store)->Describe() +
                                          " is already initialised with another key file; " +
                                          flags.store.key_file + " does not unlock it"));
  }
  if (!repository) return FailCommand(ExplainUnlockError(repository.error(), flags.store, **store));

  const repo::DataKeys& keys = repository->keys();
  if (common.json) {
    PrintJsonLine({
        {"store", (*store)->Describe()},
        {"store_id", keys.store_id},
        {"key_file", flags.store.key_file},
        {"key_created", key_created},
        {"initialised", initialised_now},
        {"chunk_size", keys.default_chunk_size},
    });
    return kExitOk;
  }
  if (key_created) {
    std::printf(
        "created key file %s\n  keep a copy somewhere safe: without it no backup in this store "
        "can be restored\n",
        flags.store.key_file.c_str());
  }
  std::printf(
      "%s store %s (store id %s, chunk size %s)\n",
      initialised_now ? "initialised" : "already initialised:", (*store)->Describe().c_str(),
      keys.store_id.c_str(), FormatBytes(keys.default_chunk_size).c_str());
  if (!initialised_now && chunk_size && *chunk_size != keys.default_chunk_size) {
    std::printf(
        "  note: the store keeps its chunk size; --chunk-size applies only to new stores\n");
  }
  return kExitOk;
}

int RunVersion(const CommonFlags& common) {
  if (common.json) {
    PrintJsonLine({{"version", KINDLING_VERSION}});
  } else {
    std::printf("kindling %s\n", KINDLING_VERSION);
  }
  return kExitOk;
}

}  // namespace kindling::cli
