// mixtape status | ls | tapes: what the catalog knows, without touching tape.
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/json.h"
#include "cli/tape_report.h"

namespace mixtape::cli {
namespace {

using catalog::Catalog;

std::string mode_string(std::uint32_t mode) {
  std::string s = S_ISDIR(mode) ? "d" : S_ISLNK(mode) ? "l" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

struct LsArgs {
  std::string catalog;
  std::string path = "/";
  bool versions = false;
  bool replicas = false;
  bool recursive = false;
  bool json = false;
};

void print_replicas(Catalog& catalog, catalog::Id version_id, const char* indent) {
  for (const auto& r : catalog.copies_of(version_id)) {
    std::printf("%sreplica %s:%lld:%llu%s\n", indent, r.tape.serial.c_str(),
                static_cast<long long>(r.archive.archive_file),
                static_cast<unsigned long long>(r.archive.first_block),
                r.tape.state == catalog::TapeState::kRetired ? " (retired)" : "");
  }
}

void print_file(Catalog& catalog, const std::string& path, const catalog::Entry& entry,
                const LsArgs& args) {
  const auto& v = entry.version;
  std::printf("%s %12llu %s %s", mode_string(v.attrs.mode).c_str(),
              static_cast<unsigned long long>(v.size), format_time_ns(v.attrs.mtime_ns).c_str(),
              printable(path).c_str());
  if (v.kind == catalog::VersionKind::kSymlink)
    std::printf(" -> %s", printable(v.symlink_target).c_str());
  std::printf("\n");
  if (args.versions) {
    int n = 0;
    for (const auto& version : catalog.versions_of(entry.file_id)) {
      std::printf("  version %d %s %llu %s copies %d/%d\n", ++n,
                  format_time_ns(version.attrs.mtime_ns).c_str(),
                  static_cast<unsigned long long>(version.size), to_hex(version.hash).c_str(),
                  version.copies, version.goal);
      if (args.replicas) print_replicas(catalog, version.id, "    ");
    }
  } else if (args.replicas) {
    print_replicas(catalog, v.id, "  ");
  }
}

void print_dir(const std::string& path, const catalog::DirRow& dir) {
  // Directories above the backup roots were never scanned: no metadata.
  std::string time = dir.first_seen_run ? format_time_ns(dir.attrs.mtime_ns) : "-";
  std::printf("%s %12s %-20s %s/\n", mode_string(dir.attrs.mode | S_IFDIR).c_str(), "-",
              time.c_str(), printable(path == "/" ? "" : path).c_str());
}

// ------------------------------------------------------------ ls --json

void json_replicas(JsonWriter& json, Catalog& catalog, catalog::Id version_id) {
  json.key("replicas").begin_array();
  for (const auto& r : catalog.copies_of(version_id)) {
    json.begin_object()
        .field("tape", r.tape.serial)
        .field("tape_file", r.archive.archive_file)
        .field("block", r.archive.first_block)
        .field("retired", r.tape.state == catalog::TapeState::kRetired)
        .end_object();
  }
  json.end_array();
}

void json_version_fields(JsonWriter& json, const catalog::VersionRow& v) {
  json.field("type", v.kind == catalog::VersionKind::kSymlink ? "symlink" : "file")
      .field("mode", static_cast<std::uint64_t>(v.attrs.mode & 07777))
      .field("uid", static_cast<std::uint64_t>(v.attrs.uid))
      .field("gid", static_cast<std::uint64_t>(v.attrs.gid))
      .field("size", v.size)
      .key("mtime")
      .value(rfc3339_ns(v.attrs.mtime_ns))
      .field("hash", to_hex(v.hash))
      .field("copies", v.copies)
      .field("goal", v.goal);
  if (v.kind == catalog::VersionKind::kSymlink) json.field("target", v.symlink_target);
}

void json_file(JsonWriter& json, Catalog& catalog, const std::string& path,
               const catalog::Entry& entry, const LsArgs& args) {
  json.begin_object().field("path", path);
  json_version_fields(json, entry.version);
  if (args.replicas) json_replicas(json, catalog, entry.version.id);
  if (args.versions) {
    json.key("versions").begin_array();
    for (const auto& version : catalog.versions_of(entry.file_id)) {
      json.begin_object();
      json_version_fields(json, version);
      if (args.replicas) json_replicas(json, catalog, version.id);
      json.end_object();
    }
    json.end_array();
  }
  json.end_object();
}

void json_dir(JsonWriter& json, const std::string& path, const catalog::DirRow& dir) {
  json.begin_object()
      .field("path", path)
      .field("type", "directory")
      .field("mode", static_cast<std::uint64_t>(dir.attrs.mode & 07777))
      .key("mtime");
  if (dir.first_seen_run)
    json.value(rfc3339_ns(dir.attrs.mtime_ns));
  else
    json.null();  // above the backup roots: never scanned
  json.end_object();
}

void ls(LsArgs& args) {
  apply_settings(args.catalog);
  auto catalog = open_checked(args.catalog);
  // A path as the catalog has it: relative ones from the working directory.
  const std::string path = absolute_path(args.path);
  auto view = catalog::View::latest();
  auto target = catalog.resolve(path, view);
  if (!target) throw Error(path + ": not in the catalog");
  std::optional<JsonWriter> json;
  if (args.json) {
    json.emplace();
    json->begin_object().field("path", path).key("entries").begin_array();
  }
  auto show = [&](const std::string& p, const catalog::Entry& e) {
    if (json && e.is_dir) json_dir(*json, p, e.dir);
    if (json && !e.is_dir) json_file(*json, catalog, p, e, args);
    if (!json && e.is_dir) print_dir(p, e.dir);
    if (!json && !e.is_dir) print_file(catalog, p, e, args);
  };
  if (!target->is_dir) {
    show(path, *target);
  } else if (args.recursive) {
    catalog.walk(path, view, show);
  } else {
    std::string after;
    for (;;) {
      auto entries = catalog.list_dir(target->dir.id, view, after, 1024);
      if (entries.empty()) break;
      for (const auto& e : entries) show((path == "/" ? "" : path) + "/" + e.name, e);
      after = entries.back().name;
    }
  }
  if (json) json->end_array().end_object();
}

// ------------------------------------------------------------ status

// How a tape's verifications read in status: the result that matters most.
std::string verified_text(const TapeVerification& v) {
  if (v.failed)
    return std::string("last verify ") + catalog::to_string(v.result) + " " +
           format_time_ns(v.failed_at_ns);
  if (v.verified == 0) return "never verified";
  if (!v.complete())
    return "last verify ok " + format_time_ns(v.newest_ns) + " (" + std::to_string(v.verified) +
           " of " + std::to_string(v.archives) + " archives)";
  return "last verify ok " + format_time_ns(v.verified_at_ns);
}

void status_json(Catalog& catalog, const std::string& path, const catalog::CatalogStatus& s) {
  JsonWriter json;
  json.begin_object()
      .field("catalog", path)
      .field("catalog_id", catalog.catalog_id())
      .field("files", s.files)
      .field("directories", s.dirs)
      .field("versions", s.versions)
      .field("version_bytes", s.version_bytes)
      .field("copies", s.copies)
      .key("below_goal")
      .begin_object()
      .field("versions", s.below_goal_versions)
      .field("bytes", s.below_goal_bytes)
      .end_object()
      .field("dirty_files", s.dirty_files)
      .key("copy_goals")
      .begin_array();
  for (const auto& goal : catalog.copy_goals())
    json.begin_object().field("path", goal.prefix).field("copies", goal.copies).end_object();
  json.end_array().key("tapes").begin_array();
  for (const auto& t : s.tapes) write_tape_json(json, catalog, t);
  json.end_array().end_object();
}

void status(std::string path, bool as_json) {
  apply_settings(path);
  auto catalog = open_checked(path);
  auto s = catalog.status();
  if (as_json) {
    status_json(catalog, path, s);
    return;
  }
  std::printf("catalog %s (id %s)\n", path.c_str(), catalog.catalog_id().c_str());
  std::printf("files: %llu in %llu directories; versions: %llu (%s)\n",
              static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.dirs),
              static_cast<unsigned long long>(s.versions), format_size(s.version_bytes).c_str());
  std::printf("copies: %llu; below copy goal: %llu versions (%s); dirty: %llu files\n",
              static_cast<unsigned long long>(s.copies),
              static_cast<unsigned long long>(s.below_goal_versions),
              format_size(s.below_goal_bytes).c_str(),
              static_cast<unsigned long long>(s.dirty_files));
  if (s.below_goal_versions > 0) {
    // What the next backup can copy (on disk as hashed), and what it cannot.
    std::uint64_t on_disk = 0, bytes = 0;
    catalog.for_each_pending(0, [&](const catalog::PendingVersion& p) {
      ++on_disk;
      bytes += p.version.size;
    });
    std::printf(
        "below copy goal: %llu versions (%s) still on disk, which the next backup copies; %llu "
        "no longer on disk\n",
        static_cast<unsigned long long>(on_disk), format_size(bytes).c_str(),
        static_cast<unsigned long long>(s.below_goal_versions - on_disk));
  }
  std::printf("copy goal: %d (default)\n", catalog.default_copy_goal());
  for (const auto& goal : catalog.copy_goals())
    if (goal.prefix != "/") std::printf("copy goal: %d for %s\n", goal.copies, goal.prefix.c_str());
  for (const auto& t : s.tapes) {
    std::string state = catalog::to_string(t.tape.state);
    if (t.tape.state == catalog::TapeState::kRetired)
      state += " (" + t.tape.retired_reason + ", " + format_time_ns(t.tape.retired_at_ns) + ")";
    std::string where = t.tape.location.empty() ? "" : "; at " + printable(t.tape.location);
    std::printf("tape %s: %s, %s of %s, %llu archives, %llu files; %s%s\n", t.tape.serial.c_str(),
                state.c_str(), format_size(t.tape.bytes_used).c_str(),
                format_size(t.tape.capacity).c_str(), static_cast<unsigned long long>(t.archives),
                static_cast<unsigned long long>(t.members),
                verified_text(verification_of(catalog, t.tape)).c_str(), where.c_str());
  }
}

// ------------------------------------------------------------ tapes

struct TapesArgs {
  std::string catalog;
  std::optional<std::string> location;  // a glob; none: every tape ("" : those with none)
  bool json = false;
};

void tapes(TapesArgs& args) {
  apply_settings(args.catalog);
  auto catalog = open_checked(args.catalog);
  std::vector<catalog::TapeUsage> shown;
  for (auto& t : catalog.status().tapes)
    if (!args.location || ::fnmatch(args.location->c_str(), t.tape.location.c_str(), 0) == 0)
      shown.push_back(std::move(t));
  if (args.json) {
    JsonWriter json;
    json.begin_object().key("tapes").begin_array();
    for (const auto& t : shown) write_tape_json(json, catalog, t);
    json.end_array().end_object();
    return;
  }
  std::printf("%-10s %-9s %12s %12s %8s %8s  %-10s  %s\n", "serial", "state", "used", "capacity",
              "archives", "files", "verified", "location");
  for (const auto& t : shown) {
    const TapeVerification v = verification_of(catalog, t.tape);
    std::string verified = v.failed           ? catalog::to_string(v.result)
                           : v.verified_at_ns ? format_time_ns(v.verified_at_ns).substr(0, 10)
                                              : "never";
    std::string location = printable(t.tape.location);
    if (t.tape.state == catalog::TapeState::kRetired)
      location = "(" + t.tape.retired_reason + ")" + (location.empty() ? "" : " " + location);
    std::printf("%-10s %-9s %12s %12s %8llu %8llu  %-10s  %s\n", t.tape.serial.c_str(),
                catalog::to_string(t.tape.state), format_size(t.tape.bytes_used).c_str(),
                format_size(t.tape.capacity).c_str(), static_cast<unsigned long long>(t.archives),
                static_cast<unsigned long long>(t.members), verified.c_str(), location.c_str());
  }
}

}  // namespace

void add_catalog_commands(CLI::App& app) {
  struct StatusArgs {
    std::string catalog;
    bool json = false;
  };
  auto [status_cmd, status_args] =
      add_catalog_command<StatusArgs>(app, "status", "Totals, files below their copy goal, tapes",
                                      [](StatusArgs& a) { status(a.catalog, a.json); });
  add_json_option(status_cmd, status_args->json);

  auto [ls_cmd, ls_args] =
      add_catalog_command<LsArgs>(app, "ls", "List what the catalog holds", ls);
  ls_cmd->add_option("path", ls_args->path,
                     "Path (default /; a relative one is taken from the working directory)");
  ls_cmd->add_flag("--versions", ls_args->versions, "List every version of each file");
  ls_cmd->add_flag("--replicas", ls_args->replicas, "List the tape copies (serial:file:block)");
  ls_cmd->add_flag("-R,--recursive", ls_args->recursive, "Everything below PATH");
  add_json_option(ls_cmd, ls_args->json);

  auto [tapes_cmd, tapes_args] = add_catalog_command<TapesArgs>(
      app, "tapes", "Every tape: serial, state, use, location", tapes);
  tapes_cmd->add_option("--location", tapes_args->location,
                        "Only tapes whose location matches this pattern (e.g. 'offsite*')");
  add_json_option(tapes_cmd, tapes_args->json);
}

}  // namespace mixtape::cli
