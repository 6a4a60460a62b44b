#include "repo/store_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "crypto/kdf.h"
#include "crypto/sha256.h"
#include "repo/envelope.h"
#include "repo/layout.h"
#include "storage/local_store.h"
#include "testutil/temp_dir.h"

namespace kindling::repo {
namespace {

class StoreKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::LocalStore::Open(dir_ / "store");
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
  }
  void FlipConfigByte(std::size_t offset) {
    auto object = store_->Get(kConfigKey);
    ASSERT_TRUE(object);
    ASSERT_LT(offset, object->size());
    (*object)[offset] = static_cast<char>((*object)[offset] ^ 0x20);
    ASSERT_TRUE(store_->Put(kConfigKey, *object));
  }

  testutil::TempDir dir_;
  std::unique_ptr<storage::LocalStore> store_;
  crypto::Key key_ = crypto::RandomKey();
};

TEST_F(StoreKeysTest, InitThenOpenGivesTheSameKeys) {
  auto created = InitStoreKeys(*store_, key_, 1u << 20);
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ(created->store_id.size(), 32u);
  EXPECT_EQ(created->default_chunk_size, 1u << 20);
  EXPECT_NE(created->chunk_id_key, created->data_key);
  EXPECT_NE(created->data_key, key_);

  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->store_id, created->store_id);
  EXPECT_EQ(opened->chunk_id_key, created->chunk_id_key);
  EXPECT_EQ(opened->data_key, created->data_key);
  EXPECT_EQ(opened->default_chunk_size, 1u << 20);
}

// A config sealed with the key file's key itself (its fingerprint in clear),
// as stores initialised before the config subkey have it, written here the
// way that code did.
std::string LegacyConfigObject(const crypto::Key& key_file_key, const DataKeys& keys) {
  std::string payload;
  ByteWriter w(payload);
  w.U32(1);
  w.ShortString(keys.store_id);
  w.Raw(crypto::KeyBytes(keys.chunk_id_key));
  w.Raw(crypto::KeyBytes(keys.data_key));
  w.U32(keys.default_chunk_size);
  const std::string fingerprint(
      crypto::DigestBytes(
          crypto::HmacSha256(crypto::KeyBytes(key_file_key), "kindling key file fingerprint v1"))
          .substr(0, 8));
  std::string object;
  SealEnvelope(key_file_key,
               EnvelopeHeader{ObjectType::kConfig, kFormatVersion, Codec::kNone,
                              static_cast<std::uint32_t>(payload.size())},
               payload, "config:" + fingerprint, object);
  object.insert(kEnvelopeHeaderSize, fingerprint);
  return object;
}

TEST_F(StoreKeysTest, ConfigIsSealedWithASubkeyOfTheKeyFile) {
  auto created = InitStoreKeys(*store_, key_, 1u << 20);
  ASSERT_TRUE(created);
  const std::string object = *store_->Get(kConfigKey);
  const std::string fingerprint = object.substr(kEnvelopeHeaderSize, 8);
  const std::string sealed =
      object.substr(0, kEnvelopeHeaderSize) + object.substr(kEnvelopeHeaderSize + 8);
  std::string payload;
  EXPECT_TRUE(OpenEnvelope(crypto::DeriveKey(key_, crypto::kStoreConfigPurpose), sealed,
                           ObjectType::kConfig, "config:" + fingerprint, payload));
  EXPECT_FALSE(OpenEnvelope(key_, sealed, ObjectType::kConfig, "config:" + fingerprint, payload));
}

TEST_F(StoreKeysTest, ConfigSealedWithTheKeyFileItselfStillOpens) {
  DataKeys keys;
  keys.store_id = std::string(32, 'a');
  keys.chunk_id_key = crypto::RandomKey();
  keys.data_key = crypto::RandomKey();
  keys.default_chunk_size = 1u << 20;
  ASSERT_TRUE(store_->Put(kConfigKey, LegacyConfigObject(key_, keys)));
  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->store_id, keys.store_id);
  EXPECT_EQ(opened->chunk_id_key, keys.chunk_id_key);
  EXPECT_EQ(opened->data_key, keys.data_key);
  EXPECT_EQ(opened->default_chunk_size, 1u << 20);
  // Another key file still does not.
  auto wrong = OpenStoreKeys(*store_, crypto::RandomKey());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(StoreKeysTest, ConfigObjectDoesNotContainKeysInClear) {
  auto created = InitStoreKeys(*store_, key_, 4u << 20);
  ASSERT_TRUE(created);
  auto object = store_->Get(kConfigKey);
  ASSERT_TRUE(object);
  EXPECT_EQ(object->find(crypto::KeyBytes(created->data_key)), std::string::npos);
  EXPECT_EQ(object->find(crypto::KeyBytes(created->chunk_id_key)), std::string::npos);
  EXPECT_EQ(object->find(crypto::KeyBytes(key_)), std::string::npos);
}

TEST_F(StoreKeysTest, InitTwiceIsAlreadyExists) {
  auto first = InitStoreKeys(*store_, key_, 4u << 20);
  ASSERT_TRUE(first);
  const std::string before = *store_->Get(kConfigKey);
  auto second = InitStoreKeys(*store_, crypto::RandomKey(), 4u << 20);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(*store_->Get(kConfigKey), before);
  EXPECT_TRUE(OpenStoreKeys(*store_, key_));
}

TEST_F(StoreKeysTest, WrongKeyIsWrongKey) {
  ASSERT_TRUE(InitStoreKeys(*store_, key_, 4u << 20));
  auto opened = OpenStoreKeys(*store_, crypto::RandomKey());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(StoreKeysTest, NotInitialisedIsNotFound) {
  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kNotFound);
}

TEST_F(StoreKeysTest, FlippedByteInSealedPartIsCorruption) {
  ASSERT_TRUE(InitStoreKeys(*store_, key_, 4u << 20));
  const std::size_t size = store_->Get(kConfigKey)->size();
  // Header bytes, then everything after the 8-byte fingerprint (nonce,
  // ciphertext, tag). The fingerprint itself identifies the key file, so a
  // flip there reads as a wrong key; both are refusals.
  for (std::size_t offset = 0; offset < size; ++offset) {
    if (offset >= 12 && offset < 20) continue;
    FlipConfigByte(offset);
    auto opened = OpenStoreKeys(*store_, key_);
    ASSERT_FALSE(opened) << "offset " << offset;
    EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption) << "offset " << offset;
    FlipConfigByte(offset);
  }
  EXPECT_TRUE(OpenStoreKeys(*store_, key_));
}

TEST_F(StoreKeysTest, FlippedFingerprintIsRefused) {
  ASSERT_TRUE(InitStoreKeys(*store_, key_, 4u << 20));
  FlipConfigByte(14);
  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_FALSE(opened);
  EXPECT_TRUE(opened.error().kind() == ErrorKind::kWrongKey ||
              opened.error().kind() == ErrorKind::kCorruption)
      << ErrorKindName(opened.error().kind());
}

TEST_F(StoreKeysTest, TruncatedConfigIsCorruption) {
  ASSERT_TRUE(InitStoreKeys(*store_, key_, 4u << 20));
  const std::string object = *store_->Get(kConfigKey);
  for (std::size_t len :
       {std::size_t{0}, std::size_t{11}, std::size_t{19}, std::size_t{30}, object.size() - 1}) {
    ASSERT_TRUE(store_->Put(kConfigKey, object.substr(0, len)));
    auto opened = OpenStoreKeys(*store_, key_);
    ASSERT_FALSE(opened) << len;
    EXPECT_EQ(opened.error().kind(), ErrorKind::kCorruption) << len;
  }
}

TEST_F(StoreKeysTest, ConfigFromAnotherStoreWithAnotherKeyIsWrongKey) {
  auto other = storage::LocalStore::Open(dir_ / "other");
  ASSERT_TRUE(other);
  ASSERT_TRUE(InitStoreKeys(**other, crypto::RandomKey(), 4u << 20));
  ASSERT_TRUE(InitStoreKeys(*store_, key_, 4u << 20));
  ASSERT_TRUE(store_->Put(kConfigKey, *(*other)->Get(kConfigKey)));
  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind(), ErrorKind::kWrongKey);
}

TEST_F(StoreKeysTest, TwoStoresHaveIndependentKeys) {
  auto other = storage::LocalStore::Open(dir_ / "other");
  ASSERT_TRUE(other);
  auto a = InitStoreKeys(*store_, key_, 4u << 20);
  auto b = InitStoreKeys(**other, key_, 4u << 20);
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->store_id, b->store_id);
  EXPECT_NE(a->data_key, b->data_key);
  EXPECT_NE(a->chunk_id_key, b->chunk_id_key);
}

// A store whose HEAD never finds anything: every racing init passes the
// early check, so the config's create-only write alone must decide.
class BlindHeadStore final : public storage::ObjectStoreWrapper {
 public:
  using ObjectStoreWrapper::ObjectStoreWrapper;
  Result<std::uint64_t> Head(std::string_view key) override {
    return NotFound("pretend " + std::string(key) + " is missing");
  }
};

TEST_F(StoreKeysTest, RacingInitsHaveOneWinnerWhoseKeyOpensTheStore) {
  BlindHeadStore blind(*store_);
  constexpr int kRacers = 8;
  std::vector<crypto::Key> keys(kRacers);
  for (auto& k : keys) k = crypto::RandomKey();
  std::vector<std::optional<Result<DataKeys>>> results(kRacers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = InitStoreKeys(blind, keys[i], 4u << 20);
    });
  go = true;
  for (auto& t : threads) t.join();
  int winner = -1;
  for (int i = 0; i < kRacers; ++i) {
    if (*results[i]) {
      EXPECT_EQ(winner, -1) << "two inits succeeded";
      winner = i;
    } else {
      EXPECT_EQ(results[i]->error().kind(), ErrorKind::kAlreadyExists);
      EXPECT_THAT(results[i]->error().message(), ::testing::HasSubstr("already initialised"));
    }
  }
  ASSERT_NE(winner, -1);
  auto opened = OpenStoreKeys(*store_, keys[winner]);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->data_key, (*results[winner])->data_key);
  EXPECT_EQ(opened->chunk_id_key, (*results[winner])->chunk_id_key);
}

// An init whose config write succeeded but whose answer was lost, retried:
// the config found is its own, so it succeeds rather than report a rival.
TEST_F(StoreKeysTest, InitRetriedAfterALostAnswerSucceeds) {
  class LostAnswerStore final : public storage::ObjectStoreWrapper {
   public:
    using ObjectStoreWrapper::ObjectStoreWrapper;
    Status PutIfAbsent(std::string_view key, std::string_view data) override {
      KINDLING_RETURN_IF_ERROR(base().PutIfAbsent(key, data));
      return base().PutIfAbsent(key, data);  // the retry of a lost answer
    }
  };
  LostAnswerStore store(*store_);
  auto created = InitStoreKeys(store, key_, 4u << 20);
  ASSERT_TRUE(created) << created.error().message();
  auto opened = OpenStoreKeys(*store_, key_);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->data_key, created->data_key);
}

}  // namespace
}  // namespace kindling::repo
