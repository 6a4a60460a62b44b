// The store's data keys and how the operator's key file unlocks them.
//
// `store init` draws two random 32-byte keys (one keys chunk ids, one encrypts
// every object) and stores them at kConfigKey sealed with the config key,
// DeriveKey(key file's key, kStoreConfigPurpose): the key file of a store the
// control plane made is the cluster master key, which has other uses. The
// config object is: envelope(type config) whose associated data also binds
// an 8-byte fingerprint of the sealing key, stored in clear after the
// envelope header, so a wrong key file is told apart from a damaged object.
// Configs written before the config key (sealed with the key file's key
// itself, and its fingerprint) still open; nothing rewrites them (the data
// keys they hold are the store's and do not change).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "crypto/aead.h"
#include "storage/object_store.h"

namespace kindling::repo {

struct DataKeys {
  std::string store_id;      // 16 random bytes, hex: names the store in messages
  crypto::Key chunk_id_key;  // HMAC key for chunk ids
  crypto::Key data_key;      // AES-256-GCM key for every object
  std::uint32_t default_chunk_size = 4u << 20;
};

// Creates the config object with ObjectStore::PutIfAbsent, so a config is
// never replaced: kAlreadyExists when the store is initialised, also when
// another init wins a race (atomically on a local store and on S3 services
// that honour If-None-Match; see storage::S3Store::PutIfAbsent).
[[nodiscard]] Result<DataKeys> InitStoreKeys(storage::ObjectStore& store,
                                             const crypto::Key& key_file_key,
                                             std::uint32_t default_chunk_size);

// The config object for `keys`, sealed with `key_file_key` (InitStoreKeys
// draws the keys; tests and golden samples give fixed ones).
[[nodiscard]] Result<std::string> EncodeStoreConfig(const DataKeys& keys,
                                                    const crypto::Key& key_file_key);

// Reads and unlocks the config object. kNotFound when the store has none
// ("not initialised"), kWrongKey when the key file is not this store's,
// kCorruption when the object was altered.
[[nodiscard]] Result<DataKeys> OpenStoreKeys(storage::ObjectStore& store,
                                             const crypto::Key& key_file_key);

}  // namespace kindling::repo
