#include "repo/store_keys.h"

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "common/hex.h"
#include "crypto/kdf.h"
#include "crypto/sha256.h"
#include "repo/envelope.h"
#include "repo/layout.h"

namespace kindling::repo {
namespace {

constexpr std::size_t kFingerprintSize = 8;
constexpr std::uint32_t kConfigPayloadVersion = 1;

Result<std::string> Fingerprint(const crypto::Key& key) {
  KINDLING_ASSIGN_OR_RETURN(
      const crypto::Digest mac,
      crypto::TryHmacSha256(crypto::KeyBytes(key), "kindling key file fingerprint v1"));
  return std::string(crypto::DigestBytes(mac).substr(0, kFingerprintSize));
}

// What seals the config object: a subkey of the key file's key (which, for
// a store the control plane made, is the cluster master key, also used for
// other purposes). Configs written before the subkey are sealed with the key
// file's key itself; the stored fingerprint tells which (it is the
// fingerprint of the key that sealed).
crypto::Key ConfigKey(const crypto::Key& key_file_key) {
  return crypto::DeriveKey(key_file_key, crypto::kStoreConfigPurpose);
}

std::string Context(std::string_view fingerprint) {
  return std::string("config:") + std::string(fingerprint);
}

}  // namespace

Result<std::string> EncodeStoreConfig(const DataKeys& keys, const crypto::Key& key_file_key) {
  if (keys.store_id.size() > 0xffff) return InvalidArgument("store id too long");
  std::string payload;
  ByteWriter w(payload);
  w.U32(kConfigPayloadVersion);
  w.ShortString(keys.store_id);
  w.Raw(crypto::KeyBytes(keys.chunk_id_key));
  w.Raw(crypto::KeyBytes(keys.data_key));
  w.U32(keys.default_chunk_size);

  const crypto::Key config_key = ConfigKey(key_file_key);
  KINDLING_ASSIGN_OR_RETURN(const std::string fingerprint, Fingerprint(config_key));
  std::string object;
  EnvelopeHeader header{ObjectType::kConfig, kFormatVersion, Codec::kNone,
                        static_cast<std::uint32_t>(payload.size())};
  SealEnvelope(config_key, header, payload, Context(fingerprint), object);
  object.insert(kEnvelopeHeaderSize, fingerprint);
  std::fill(payload.begin(), payload.end(), '\0');
  return object;
}

Result<DataKeys> InitStoreKeys(storage::ObjectStore& store, const crypto::Key& key_file_key,
                               std::uint32_t default_chunk_size) {
  auto existing = store.Head(kConfigKey);
  if (existing)
    return MakeError(ErrorKind::kAlreadyExists,
                     "store is already initialised: " + store.Describe());
  if (!existing.error().is_not_found()) return std::unexpected(existing.error());

  DataKeys keys;
  std::array<std::uint8_t, 16> id{};
  crypto::RandomBytes(id.data(), id.size());
  keys.store_id = HexEncode(std::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
  keys.chunk_id_key = crypto::RandomKey();
  keys.data_key = crypto::RandomKey();
  keys.default_chunk_size = default_chunk_size;
  KINDLING_ASSIGN_OR_RETURN(const std::string object, EncodeStoreConfig(keys, key_file_key));
  // Never replaces a config: the data keys in it may already seal objects.
  auto created = store.PutIfAbsent(kConfigKey, object);
  if (!created && created.error().kind() == ErrorKind::kAlreadyExists) {
    // Ours, when an earlier attempt stored it and only its answer was lost
    // (the nonce makes the sealed bytes unique to this call).
    auto stored = store.Get(kConfigKey);
    if (stored && *stored == object) return keys;
    return MakeError(ErrorKind::kAlreadyExists,
                     "store is already initialised: " + store.Describe());
  }
  KINDLING_RETURN_IF_ERROR(created);
  return keys;
}

Result<DataKeys> OpenStoreKeys(storage::ObjectStore& store, const crypto::Key& key_file_key) {
  auto object = store.Get(kConfigKey);
  if (!object) {
    if (object.error().is_not_found())
      return NotFound("store is not initialised (no " + std::string(kConfigKey) + " in " +
                      store.Describe() + "); run `kindling store init`");
    return std::unexpected(object.error());
  }
  if (object->size() < kEnvelopeHeaderSize + kFingerprintSize)
    return Corruption("store config object is truncated: " + std::string(kConfigKey));
  const std::string stored_fingerprint = object->substr(kEnvelopeHeaderSize, kFingerprintSize);
  crypto::Key sealing_key = ConfigKey(key_file_key);
  KINDLING_ASSIGN_OR_RETURN(const std::string config_fingerprint, Fingerprint(sealing_key));
  if (stored_fingerprint != config_fingerprint) {
    KINDLING_ASSIGN_OR_RETURN(const std::string legacy_fingerprint, Fingerprint(key_file_key));
    if (stored_fingerprint != legacy_fingerprint)
      return MakeError(ErrorKind::kWrongKey,
                       "wrong key file: it does not unlock the store " + store.Describe());
    sealing_key = key_file_key;  // a config written before the subkey
  }
  std::string sealed = object->substr(0, kEnvelopeHeaderSize) +
                       object->substr(kEnvelopeHeaderSize + kFingerprintSize);

  std::string payload;
  auto opened =
      OpenEnvelope(sealing_key, sealed, ObjectType::kConfig, Context(stored_fingerprint), payload);
  if (!opened)
    return std::unexpected(
        opened.error().WithContext("store config object " + std::string(kConfigKey)));

  ByteReader r(payload);
  DataKeys keys;
  auto version = r.U32();
  auto store_id = r.ShortString();
  auto chunk_key = r.Raw(crypto::kKeySize);
  auto data_key = r.Raw(crypto::kKeySize);
  auto chunk_size = r.U32();
  if (!version || *version != kConfigPayloadVersion || !store_id || !chunk_key || !data_key ||
      !chunk_size)
    return Corruption("store config object has an unexpected layout");
  keys.store_id = std::string(*store_id);
  std::memcpy(keys.chunk_id_key.data(), chunk_key->data(), crypto::kKeySize);
  std::memcpy(keys.data_key.data(), data_key->data(), crypto::kKeySize);
  keys.default_chunk_size = *chunk_size;
  std::fill(payload.begin(), payload.end(), '\0');
  return keys;
}

}  // namespace kindling::repo
