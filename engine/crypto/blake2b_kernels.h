// Private to engine/crypto: the BLAKE2b compression kernels behind
// Blake2b256Lanes (RFC 7693, written for this project).
//
// Each instruction set's kernels live in their own file, compiled for that
// instruction set only (engine/crypto/CMakeLists.txt), and are called only
// after crypto::cpu_level() said the CPU runs them:
//
//   blake2b_avx512.cc  eight lanes in 512-bit registers, four in 256-bit
//                      ones (AVX-512VL rotates), one message row-wise
//   blake2b_avx2.cc    four lanes in 256-bit registers (byte shuffles and
//                      shifts for the rotates), one message row-wise
//   blake2b_scalar.cc  one message in 64-bit registers (any CPU)
//
// The chain values of the lanes are stored side by side: word j of lane l
// is h[j][l]. counters[l] is the lane's byte count including the block
// being compressed (the counter's high word stays 0: no file reaches 2^64
// bytes). A lane whose bit in `active` is clear keeps its chain value (its
// block pointer need only be readable).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mixtape::crypto::blake2b {

inline constexpr std::size_t kLanes = 8;
inline constexpr std::size_t kBlock = 128;
using Chains = std::uint64_t[8][kLanes];

inline constexpr std::uint64_t kIv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

inline constexpr std::uint8_t kSigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

// One block of each lane in `active` (bit l: lane l), lanes 0-7.
void compress_eight_avx512(Chains h, const std::uint8_t* const blocks[kLanes],
                           const std::uint64_t counters[kLanes], unsigned active);
// The same for the four lanes first..first+3 (first is 0 or 4; blocks[i]
// and bit i of active are lane first+i).
void compress_four_avx512(Chains h, std::size_t first, const std::uint8_t* const blocks[4],
                          const std::uint64_t counters[kLanes], unsigned active);
void compress_four_avx2(Chains h, std::size_t first, const std::uint8_t* const blocks[4],
                        const std::uint64_t counters[kLanes], unsigned active);

// One compression of one message, its chain value in order (h[0..7]);
// final_flag is ~0 for the message's last block, else 0.
void compress_one_avx512(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                         std::uint64_t final_flag);
void compress_one_avx2(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                       std::uint64_t final_flag);
void compress_one_scalar(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                         std::uint64_t final_flag);
using CompressOne = void (*)(std::uint64_t h[8], const std::uint8_t* block, std::uint64_t counter,
                             std::uint64_t final_flag);
// The faster on this machine of compress_one_scalar and `vector_code` (a
// row-wise kernel), timed now on 32 KiB (blake2b.cc).
CompressOne fastest_one(CompressOne vector_code);

}  // namespace mixtape::crypto::blake2b
