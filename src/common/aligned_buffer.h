// A heap buffer aligned for direct I/O: its storage starts on a 4 KiB
// boundary, so 4 KiB-aligned slices of it can be read or written with
// O_DIRECT. Fixed capacity, variable size; not copyable. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <string_view>

namespace kindling {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlignment = 4096;

  explicit AlignedBuffer(std::size_t capacity) : data_(Allocate(capacity)), capacity_(capacity) {}

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  std::string_view view() const { return {data_.get(), size_}; }

  // REQUIRES: size <= capacity(). Contents up to the new size are kept.
  void resize(std::size_t size) { size_ = size; }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  static char* Allocate(std::size_t capacity) {
    const std::size_t rounded = (capacity + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<char*>(p);
  }

  std::unique_ptr<char, Free> data_;
  std::size_t capacity_;
  std::size_t size_ = 0;
};

}  // namespace kindling
