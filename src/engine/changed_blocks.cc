#include "engine/changed_blocks.h"

#include <linux/fiemap.h>

#include <algorithm>

namespace kindling::engine {
namespace {

// Flags under which an extent's address says nothing about its bytes.
constexpr std::uint32_t kUncertain = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                     FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED |
                                     FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE |
                                     FIEMAP_EXTENT_DATA_TAIL;

// A run of a file's bytes [begin, end): a hole, or data at `physical`
// (the address of `begin`).
struct Segment {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  bool data = false;
  std::uint64_t physical = 0;
  std::uint32_t flags = 0;
};

// `map` as segments covering [0, limit) exactly, holes filling the gaps.
Result<std::vector<Segment>> Segments(const ExtentMap& map, std::uint64_t limit) {
  std::vector<Segment> out;
  std::uint64_t at = 0;
  std::uint64_t covered = 0;  // where the segments end so far (<= limit)
  for (const Extent& e : map) {
    if (e.length == 0) continue;
    // Every record is checked, those past the size too.
    if (e.logical < at || e.logical + e.length < e.logical)
      return Corruption("extent map records overlap or are not sorted");
    at = e.logical + e.length;
    if (e.logical >= limit) continue;
    if (e.logical > covered) out.push_back(Segment{covered, e.logical, false, 0, 0});
    const std::uint64_t end = std::min(limit, at);
    out.push_back(Segment{e.logical, end, true, e.physical, e.flags});
    covered = end;
  }
  if (covered < limit) out.push_back(Segment{covered, limit, false, 0, 0});
  return out;
}

bool SameBytes(const Segment& a, const Segment& b, std::uint64_t at) {
  if (!a.data && !b.data) return true;  // both holes: zeros
  if (a.data != b.data) return false;
  if ((a.flags & kUncertain) != 0 || (b.flags & kUncertain) != 0) return false;
  if ((a.flags & FIEMAP_EXTENT_UNWRITTEN) != (b.flags & FIEMAP_EXTENT_UNWRITTEN)) return false;
  return a.physical + (at - a.begin) == b.physical + (at - b.begin);
}

}  // namespace

Result<std::vector<ByteRange>> UnchangedRanges(const ExtentMap& before, std::uint64_t before_size,
                                               const ExtentMap& after, std::uint64_t after_size) {
  const std::uint64_t limit = std::min(before_size, after_size);
  KINDLING_ASSIGN_OR_RETURN(const std::vector<Segment> a, Segments(before, limit));
  KINDLING_ASSIGN_OR_RETURN(const std::vector<Segment> b, Segments(after, limit));
  std::vector<ByteRange> out;
  std::size_t i = 0;
  std::size_t j = 0;
  std::uint64_t at = 0;
  while (at < limit && i < a.size() && j < b.size()) {
    const std::uint64_t end = std::min(a[i].end, b[j].end);
    if (SameBytes(a[i], b[j], at)) {
      if (!out.empty() && out.back().end == at)
        out.back().end = end;
      else
        out.push_back(ByteRange{at, end});
    }
    at = end;
    if (a[i].end == at) ++i;
    if (b[j].end == at) ++j;
  }
  return out;
}

std::vector<bool> UnchangedChunks(const std::vector<ByteRange>& unchanged,
                                  std::uint64_t before_size, std::uint64_t after_size,
                                  std::uint32_t chunk_size) {
  const std::uint64_t count = (after_size + chunk_size - 1) / chunk_size;
  std::vector<bool> out(count, false);
  std::size_t r = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t begin = i * chunk_size;
    const std::uint64_t end = std::min(after_size, begin + chunk_size);
    const std::uint64_t end_before = std::min(before_size, begin + chunk_size);
    if (end != end_before) continue;  // past the old image, or of another length there
    while (r < unchanged.size() && unchanged[r].end <= begin) ++r;
    out[i] = r < unchanged.size() && unchanged[r].begin <= begin && unchanged[r].end >= end;
  }
  return out;
}

}  // namespace kindling::engine
