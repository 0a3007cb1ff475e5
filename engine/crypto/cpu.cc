// Which instruction sets the crypto kernels may use: the CPU's, capped by
// MIXTAPE_CPU so that one machine can run (and test, and measure) the code
// an older CPU gets.
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "engine/crypto/crypto.h"

namespace mixtape::crypto {

namespace {

constexpr EnumNames<CpuLevel, 3> kCpuLevels{
    {{CpuLevel::kGeneric, "generic"}, {CpuLevel::kAvx2, "avx2"}, {CpuLevel::kAvx512, "avx512"}}};

}  // namespace

const char* to_string(CpuLevel level) {
  return kCpuLevels.name(level);
}

std::optional<CpuLevel> parse_cpu_level(std::string_view text) {
  std::string name;
  for (char c : text)
    if (c != '-' && c != '_')
      name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kCpuLevels.parse(name);
}

// libgcc fills in the CPU model before main (so no __builtin_cpu_init()),
// and counts a vector extension only if the OS saves its registers.
CpuLevel cpu_level_of_hardware() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
    return CpuLevel::kAvx512;
  if (__builtin_cpu_supports("avx2")) return CpuLevel::kAvx2;
  return CpuLevel::kGeneric;
}

CpuLevel cpu_level() {
  struct Setting {
    std::optional<CpuLevel> cap;
    std::string invalid;  // MIXTAPE_CPU's value when it names no level
  };
  static const Setting setting = [] {
    Setting s;
    const char* value = std::getenv("MIXTAPE_CPU");
    if (value == nullptr || *value == '\0') return s;
    s.cap = parse_cpu_level(value);
    if (!s.cap) s.invalid = value;
    return s;
  }();
  if (!setting.invalid.empty()) {
    throw Error("MIXTAPE_CPU=" + setting.invalid +
                ": expected avx512, avx2 or generic (the instruction sets mixtape may use)");
  }
  const CpuLevel hardware = cpu_level_of_hardware();
  return setting.cap ? std::min(*setting.cap, hardware) : hardware;
}

}  // namespace mixtape::crypto
