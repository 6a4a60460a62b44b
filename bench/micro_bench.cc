// Micro-benchmarks of the data path's primitives: chunk encode/decode
// (HMAC id + zstd + AES-256-GCM), SHA-256 and the all-zero test. Run:
//   build/bench/micro_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "common/files.h"
#include "crypto/aead.h"
#include "crypto/sha256.h"
#include "repo/chunk_codec.h"
#include "repo/store_keys.h"

namespace kindling {
namespace {

std::string RandomBytes(std::size_t size) {
  std::mt19937_64 rng(42);
  std::string out(size, '\0');
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

std::string TextBytes(std::size_t size) {
  static constexpr const char* kWords[] = {"volume",  "backup", "chunk",      "the", "of",  "error",
                                           "request", "inode",  "2024-01-01", "GET", "200", "\n"};
  std::mt19937_64 rng(7);
  std::string out;
  out.reserve(size + 16);
  while (out.size() < size) {
    out += kWords[rng() % std::size(kWords)];
    out += ' ';
  }
  out.resize(size);
  return out;
}

repo::DataKeys Keys() {
  repo::DataKeys keys;
  keys.store_id = "bench";
  keys.chunk_id_key = crypto::RandomKey();
  keys.data_key = crypto::RandomKey();
  return keys;
}

std::string Data(bool text, std::size_t size) { return text ? TextBytes(size) : RandomBytes(size); }

// Arguments: chunk size, text (1) or random (0), zstd level.
void BM_ChunkEncode(benchmark::State& state) {
  const auto keys = Keys();
  repo::ChunkCodec codec(keys, static_cast<int>(state.range(2)));
  const std::string plain = Data(state.range(1) != 0, static_cast<std::size_t>(state.range(0)));
  std::string object;
  for (auto _ : state) {
    const repo::ChunkId id = *codec.Id(plain);
    codec.Encode(plain, id, object);
    benchmark::DoNotOptimize(object.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(plain.size()));
  state.counters["ratio"] = static_cast<double>(plain.size()) /
                            static_cast<double>(std::max<std::size_t>(object.size(), 1));
  state.SetLabel(state.range(1) != 0 ? "text" : "random");
}
BENCHMARK(BM_ChunkEncode)
    ->ArgsProduct({{4 << 20}, {0, 1}, {1, 3}})
    ->Args({1 << 20, 1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ChunkDecode(benchmark::State& state) {
  const auto keys = Keys();
  repo::ChunkCodec codec(keys, 1);
  const std::string plain = Data(state.range(1) != 0, static_cast<std::size_t>(state.range(0)));
  const repo::ChunkId id = *codec.Id(plain);
  std::string object;
  codec.Encode(plain, id, object);
  std::string out;
  for (auto _ : state) {
    if (!codec.Decode(object, id, out)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(plain.size()));
  state.SetLabel(state.range(1) != 0 ? "text" : "random");
}
BENCHMARK(BM_ChunkDecode)
    ->ArgsProduct({{4 << 20}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ChunkId(benchmark::State& state) {
  const auto keys = Keys();
  repo::ChunkCodec codec(keys, 1);
  const std::string plain = RandomBytes(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(*codec.Id(plain));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_ChunkId)->Arg(4 << 20)->Unit(benchmark::kMillisecond);

void BM_Sha256(benchmark::State& state) {
  const std::string data = RandomBytes(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(crypto::Sha256Of(data));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(64 << 10)->Arg(4 << 20);

void BM_Sha256UpdateZeros(benchmark::State& state) {
  for (auto _ : state) {
    crypto::Sha256 h;
    h.UpdateZeros(static_cast<std::uint64_t>(state.range(0)));
    benchmark::DoNotOptimize(*h.Finish());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256UpdateZeros)->Arg(4 << 20);

void BM_AesGcmSeal(benchmark::State& state) {
  const crypto::Key key = crypto::RandomKey();
  const std::string data = RandomBytes(static_cast<std::size_t>(state.range(0)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    crypto::SealAppend(key, data, "aad", out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_AesGcmSeal)->Arg(4 << 20);

// The common case is an all-zero chunk (scanned to the end); the other is data
// that differs early (stops at once).
void BM_IsAllZero(benchmark::State& state) {
  std::string data(static_cast<std::size_t>(state.range(0)), '\0');
  if (state.range(1) != 0) data[data.size() / 2] = 1;
  for (auto _ : state) benchmark::DoNotOptimize(IsAllZero(data.data(), data.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  state.SetLabel(state.range(1) != 0 ? "nonzero in the middle" : "all zero");
}
BENCHMARK(BM_IsAllZero)->Args({4 << 20, 0})->Args({4 << 20, 1})->Args({64 << 10, 0});

}  // namespace
}  // namespace kindling

BENCHMARK_MAIN();
