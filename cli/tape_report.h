// What the catalog says of a tape, as status, tapes, check and verify
// --oldest show it: its verifications summed up, and its JSON object.
#pragma once

#include <cstdint>
#include <string>

#include "cli/json.h"
#include "engine/catalog/catalog.h"

namespace mixtape::cli {

// A tape's verifications: for each archive the newest result for the
// archive as a whole (full or --quick), summed up.
struct TapeVerification {
  std::uint64_t archives = 0;
  std::uint64_t verified = 0;  // archives with a result
  // The oldest of the archives' newest results: when the whole tape was
  // last verified (0 unless every archive has a result).
  std::int64_t verified_at_ns = 0;
  std::int64_t newest_ns = 0;  // the newest result of any archive
  // An archive whose newest result is not ok: the first such, in tape order.
  bool failed = false;
  catalog::VerifyResult result = catalog::VerifyResult::kOk;
  std::string detail;
  std::int64_t failed_at_ns = 0;
  bool complete() const { return archives > 0 && verified == archives; }
};
TapeVerification verification_of(catalog::Catalog& catalog, const catalog::TapeRow& tape);

// One tape as a JSON object (docs/CLI.md, "tapes").
void write_tape_json(JsonWriter& json, catalog::Catalog& catalog, const catalog::TapeUsage& usage);

}  // namespace mixtape::cli
