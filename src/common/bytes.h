// Little-endian encoding of fixed-width integers into byte strings, and a
// bounds-checked reader. Everything on disk or on the wire uses these.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace kindling {

class ByteWriter {
 public:
  explicit ByteWriter(std::string& out) : out_(out) {}
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(std::uint16_t v) { Le(v, 2); }
  void U32(std::uint32_t v) { Le(v, 4); }
  void U64(std::uint64_t v) { Le(v, 8); }
  void Raw(std::string_view bytes) { out_.append(bytes); }
  // u16 length, then the bytes. REQUIRES: bytes.size() < 65536.
  void ShortString(std::string_view bytes) {
    U16(static_cast<std::uint16_t>(bytes.size()));
    Raw(bytes);
  }

 private:
  void Le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

// Every getter returns nullopt once the input runs short; callers turn that
// into a corruption error.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  std::optional<std::uint8_t> U8() { return Le<std::uint8_t>(1); }
  std::optional<std::uint16_t> U16() { return Le<std::uint16_t>(2); }
  std::optional<std::uint32_t> U32() { return Le<std::uint32_t>(4); }
  std::optional<std::uint64_t> U64() { return Le<std::uint64_t>(8); }
  std::optional<std::string_view> Raw(std::size_t n) {
    if (in_.size() - pos_ < n) return std::nullopt;
    std::string_view out = in_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::optional<std::string_view> ShortString() {
    auto n = U16();
    if (!n) return std::nullopt;
    return Raw(*n);
  }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  template <typename T>
  std::optional<T> Le(int n) {
    if (in_.size() - pos_ < static_cast<std::size_t>(n)) return std::nullopt;
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ + static_cast<std::size_t>(i)])) << (8 * i);
    pos_ += static_cast<std::size_t>(n);
    return static_cast<T>(v);
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace kindling
