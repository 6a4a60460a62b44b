// Secret: no implicit copy, no conversion or streaming; wiped on
// destruction, move and assignment (WipeString zeroes the whole buffer).
#include "common/secret.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <ostream>
#include <string>
#include <type_traits>

namespace kindling {
namespace {

template <typename T>
concept Streamable = requires(std::ostream& os, const T& t) {
  os << t;
};

static_assert(!std::is_copy_constructible_v<Secret>);
static_assert(!std::is_copy_assignable_v<Secret>);
static_assert(std::is_nothrow_move_constructible_v<Secret>);
static_assert(!std::is_convertible_v<Secret, std::string>);
static_assert(!std::is_convertible_v<Secret, std::string_view>);
static_assert(!std::is_convertible_v<std::string, Secret>);  // explicit only
static_assert(!Streamable<Secret>);

bool AllZero(const char* data, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i)
    if (data[i] != '\0') return false;
  return true;
}

TEST(SecretTest, WipeStringZeroesTheWholeBuffer) {
  std::string text(100, 'k');
  text = "short";  // the tail of the longer value stays in the buffer
  const char* data = text.data();
  const std::size_t capacity = text.capacity();
  ASSERT_GE(capacity, 100u);
  WipeString(text);
  EXPECT_TRUE(text.empty());
  EXPECT_EQ(text.data(), data);  // the same buffer, now zero
  EXPECT_TRUE(AllZero(data, capacity));

  std::string small = "abc";  // in the object itself (SSO)
  WipeString(small);
  EXPECT_TRUE(small.empty());
  EXPECT_TRUE(AllZero(small.data(), small.capacity()));
}

TEST(SecretTest, HoldsMovesAndClones) {
  Secret secret(std::string("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
  EXPECT_EQ(secret.Reveal(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  EXPECT_EQ(secret.size(), 40u);

  Secret moved(std::move(secret));
  EXPECT_EQ(moved.Reveal(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
  EXPECT_TRUE(secret.empty());  // NOLINT(bugprone-use-after-move): wiped, empty

  Secret copy = moved.Clone();
  EXPECT_EQ(copy, moved);
  copy = Secret::FromView("other-value");
  EXPECT_EQ(copy.Reveal(), "other-value");
  EXPECT_FALSE(copy == moved);

  Secret empty;
  EXPECT_TRUE(empty.empty());
}

TEST(SecretTest, WipeOnExitZeroesTheObject) {
  std::array<std::uint8_t, 32> key{};
  key.fill(0xab);
  {
    const WipeOnExit wipe(key);
    EXPECT_EQ(key[0], 0xab);
  }
  EXPECT_TRUE(AllZero(reinterpret_cast<const char*>(key.data()), key.size()));
}

TEST(SecretTest, TakesTheBufferOfAnRvalue) {
  std::string value(64, 's');
  const char* data = value.data();
  Secret secret(std::move(value));
  EXPECT_EQ(secret.Reveal().data(), data);  // no copy left behind
}

TEST(SecretTest, WipesTheShortValueItMovedFrom) {
  // A short value lives in the string object (SSO): moving it copies the
  // bytes, so the source is wiped too.
  std::string value = "short-secret";
  Secret secret(std::move(value));
  EXPECT_EQ(secret.Reveal(), "short-secret");
  // NOLINTNEXTLINE(bugprone-use-after-move): wiped, empty
  EXPECT_TRUE(value.empty());
  EXPECT_TRUE(AllZero(value.data(), value.capacity()));
}

TEST(SecretTest, SharedSecretCopiesShareOneBuffer) {
  const SharedSecret empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.Reveal(), "");
  EXPECT_TRUE(SharedSecret(Secret()).empty());

  SharedSecret first = Secret::FromView("a long enough secret value, on the heap");
  const SharedSecret second = first;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(second.Reveal(), "a long enough secret value, on the heap");
  // The same bytes, not a copy of them.
  EXPECT_EQ(first.Reveal().data(), second.Reveal().data());
  first = SharedSecret();
  EXPECT_TRUE(first.empty());
  EXPECT_EQ(second.Reveal(), "a long enough secret value, on the heap");
}

}  // namespace
}  // namespace kindling
