#include "crypto/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/hex.h"
#include "testutil/temp_dir.h"

namespace kindling::crypto {
namespace {

class KeyFileTest : public ::testing::Test {
 protected:
  testutil::TempDir dir_;
};

TEST_F(KeyFileTest, CreateWritesHexWithMode0600) {
  const auto path = dir_ / "store.key";
  auto key = CreateKeyFile(path);
  ASSERT_TRUE(key) << key.error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string content = testutil::ReadFileOrDie(path);
  EXPECT_EQ(content, HexEncode(KeyBytes(*key)) + "\n");
  auto loaded = LoadKeyFile(path);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, *key);
}

TEST_F(KeyFileTest, KeyFileTextIsHexAndANewline) {
  Key key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0xf0 + i % 16);
  const Secret text = KeyFileText(key);
  EXPECT_EQ(text.Reveal(), HexEncode(KeyBytes(key)) + "\n");
  EXPECT_EQ(text.size(), 65u);
}

TEST_F(KeyFileTest, CreateDrawsFreshKeys) {
  auto a = CreateKeyFile(dir_ / "a.key");
  auto b = CreateKeyFile(dir_ / "b.key");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
}

TEST_F(KeyFileTest, CreateRefusesToOverwrite) {
  const auto path = dir_ / "store.key";
  ASSERT_TRUE(CreateKeyFile(path));
  const std::string before = testutil::ReadFileOrDie(path);
  auto again = CreateKeyFile(path);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(testutil::ReadFileOrDie(path), before);

  testutil::WriteFile(dir_ / "other", "not a key");
  auto over_other = CreateKeyFile(dir_ / "other");
  ASSERT_FALSE(over_other);
  EXPECT_EQ(over_other.error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(testutil::ReadFileOrDie(dir_ / "other"), "not a key");
}

TEST_F(KeyFileTest, LoadsHexForms) {
  const std::string hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  Key expected{};
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<std::uint8_t>(i);
  for (const std::string& content : {hex, hex + "\n", hex + "\r\n",
                                     std::string("000102030405060708090A0B0C0D0E0F"
                                                 "101112131415161718191A1B1C1D1E1F\n")}) {
    testutil::WriteFile(dir_ / "k", content);
    auto key = LoadKeyFile(dir_ / "k");
    ASSERT_TRUE(key) << key.error().message();
    EXPECT_EQ(*key, expected);
  }
}

TEST_F(KeyFileTest, LoadsRaw32Bytes) {
  std::string raw(32, '\0');
  for (int i = 0; i < 32; ++i) raw[static_cast<std::size_t>(i)] = static_cast<char>(255 - i);
  testutil::WriteFile(dir_ / "raw", raw);
  auto key = LoadKeyFile(dir_ / "raw");
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(KeyBytes(*key), raw);
}

TEST_F(KeyFileTest, MissingIsNotFound) {
  auto key = LoadKeyFile(dir_ / "missing.key");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().kind(), ErrorKind::kNotFound);
}

TEST_F(KeyFileTest, BadContentIsInvalidArgument) {
  const std::string hex64(64, 'a');
  for (const std::string& content :
       {std::string(), std::string("\n"), std::string(62, 'a'), std::string(66, 'a'),
        std::string(63, 'a') + "g", "0x" + std::string(62, 'a'), std::string(31, 'k'),
        std::string(33, 'k'), hex64 + "\n\nextra", " " + hex64}) {
    testutil::WriteFile(dir_ / "bad", content);
    auto key = LoadKeyFile(dir_ / "bad");
    ASSERT_FALSE(key) << "accepted: '" << content << "'";
    EXPECT_EQ(key.error().kind(), ErrorKind::kInvalidArgument) << content;
  }
}

TEST_F(KeyFileTest, ErrorMessageDoesNotLeakContent) {
  const std::string almost = std::string(63, 'c') + "z";
  testutil::WriteFile(dir_ / "bad", almost);
  auto key = LoadKeyFile(dir_ / "bad");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().message().find(almost), std::string::npos);
}

// Racing creators of one key file: one key is written and returned, the
// others get kAlreadyExists; the file holds the winner's key.
TEST_F(KeyFileTest, RacingCreatorsHaveOneWinner) {
  const auto path = dir_ / "store.key";
  constexpr int kRacers = 8;
  std::vector<std::optional<Result<Key>>> results(kRacers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = CreateKeyFile(path);
    });
  go = true;
  for (auto& t : threads) t.join();
  std::optional<Key> winner;
  for (const auto& r : results) {
    if (*r) {
      EXPECT_FALSE(winner) << "two creators succeeded";
      winner = **r;
    } else {
      EXPECT_EQ(r->error().kind(), ErrorKind::kAlreadyExists);
    }
  }
  ASSERT_TRUE(winner);
  auto loaded = LoadKeyFile(path);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, *winner);
}

}  // namespace
}  // namespace kindling::crypto
