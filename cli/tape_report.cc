#include "cli/tape_report.h"

#include <algorithm>

namespace mixtape::cli {

TapeVerification verification_of(catalog::Catalog& catalog, const catalog::TapeRow& tape) {
  TapeVerification v;
  bool all = true;
  std::int64_t oldest = 0;
  for (const auto& archive : catalog.archives_of_tape(tape.id)) {
    ++v.archives;
    auto last = catalog.last_verification(archive.id);
    if (!last) {
      all = false;
      continue;
    }
    ++v.verified;
    oldest = oldest ? std::min(oldest, last->checked_at_ns) : last->checked_at_ns;
    v.newest_ns = std::max(v.newest_ns, last->checked_at_ns);
    if (last->result != catalog::VerifyResult::kOk && !v.failed) {
      v.failed = true;
      v.result = last->result;
      v.detail = last->detail;
      v.failed_at_ns = last->checked_at_ns;
    }
  }
  if (all && v.archives > 0) v.verified_at_ns = oldest;
  return v;
}

void write_tape_json(JsonWriter& json, catalog::Catalog& catalog, const catalog::TapeUsage& usage) {
  const catalog::TapeRow& t = usage.tape;
  const TapeVerification v = verification_of(catalog, t);
  json.begin_object()
      .field("serial", t.serial)
      .field("state", catalog::to_string(t.state))
      .field("location", t.location)
      .key("retired")
      .object_or_null(t.state == catalog::TapeState::kRetired,
                      [&](JsonWriter& retired) {
                        retired.field("reason", t.retired_reason).time_field("at", t.retired_at_ns);
                      })
      .field("capacity", t.capacity)
      .field("bytes_used", t.bytes_used)
      .field("archives", usage.archives)
      .field("files", usage.members)
      .field("plain_bytes", usage.plain_bytes)
      .field("encrypted", t.encrypted)
      .time_field("labelled_at", t.labelled_at_ns)
      .time_field("written_at", t.written_at_ns)
      .key("verify")
      .begin_object()
      .field("archives_verified", v.verified)
      .time_field("verified_at", v.verified_at_ns)
      .time_field("last_at", v.newest_ns)
      .field("result", v.verified == 0 ? "never"
                       : v.failed      ? catalog::to_string(v.result)
                                       : "ok");
  if (v.failed) json.field("detail", v.detail);
  json.end_object().end_object();
}

}  // namespace mixtape::cli
