// Hash functor for chunk ids in unordered containers: ids are keyed
// cryptographic hashes, so their first bytes are already uniform.
#pragma once

#include <cstring>

#include "repo/layout.h"

namespace kindling::engine {

struct ChunkIdHash {
  std::size_t operator()(const repo::ChunkId& id) const {
    std::size_t h;
    std::memcpy(&h, id.data(), sizeof h);
    return h;
  }
};

}  // namespace kindling::engine
