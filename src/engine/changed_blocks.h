// Changed-block tracking: which chunks of an image cannot have changed since
// an earlier snapshot, learnt from the two snapshots' extent maps alone.
//
// Two reflink snapshots (engine/snapshots.h) that both exist now share the
// physical blocks of every range the image did not write between them: a
// shared block is never written in place (copy on write), and a block one
// of them holds is not given to anything else. So a byte range that both
// maps place at the same physical address holds the same bytes in both.
// The comparison is by byte range, not by extent record (the two maps may
// split one run into records differently).
//
// Everything uncertain counts as changed: a range that is a hole in one map
// and data in the other, unwritten in one and written in the other, or
// carries a flag that makes its address meaningless (unknown, delalloc,
// encoded or compressed, encrypted, inline, tail-packed, not aligned);
// extents past the file's size are ignored; overlapping or unsorted records
// make the whole map unusable. Addresses are never remembered between runs:
// both maps come from files that exist while they are compared, and the
// caller checks that the earlier snapshot's map did not move meanwhile
// (ExtentMapsStable) and, on btrfs, that no balance ran.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/extents.h"
#include "common/result.h"

namespace kindling::engine {

struct ByteRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;  // exclusive
  bool operator==(const ByteRange&) const = default;
};

// The ranges of [0, min(before_size, after_size)) that hold the same bytes in
// a file mapped by `before` (of `before_size` bytes) and one mapped by
// `after`, sorted and merged. kCorruption when a map's records overlap or are
// not sorted.
[[nodiscard]] Result<std::vector<ByteRange>> UnchangedRanges(const ExtentMap& before,
                                                             std::uint64_t before_size,
                                                             const ExtentMap& after,
                                                             std::uint64_t after_size);

// Per chunk of the new image (`after_size` bytes cut in `chunk_size`
// chunks): true when the chunk is unchanged, i.e. it has the same offset and
// length in the old image (`before_size` bytes) and `unchanged` covers all of
// it. REQUIRES: chunk_size > 0; `unchanged` sorted and merged.
std::vector<bool> UnchangedChunks(const std::vector<ByteRange>& unchanged,
                                  std::uint64_t before_size, std::uint64_t after_size,
                                  std::uint32_t chunk_size);

}  // namespace kindling::engine
