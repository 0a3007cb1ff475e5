// mixtape snapshots | diff | find: the history the catalog keeps, without
// touching tape.
#include <cstdio>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/json.h"
#include "engine/restore/restore.h"

namespace mixtape::cli {
namespace {

using catalog::Catalog;

std::string roots_text(const std::vector<std::string>& roots) {
  std::string out;
  for (const auto& root : roots) out += (out.empty() ? "" : " ") + printable(root);
  return out;
}

// ------------------------------------------------------------ snapshots

struct SnapshotsArgs {
  std::string catalog;
  bool json = false;
};

void snapshots(SnapshotsArgs& args) {
  apply_settings(args.catalog);
  auto catalog = open_checked(args.catalog);
  std::vector<catalog::RunRow> runs;
  for (auto& run : catalog.runs())
    if (run.kind == catalog::RunKind::kBackup) runs.push_back(std::move(run));
  if (args.json) {
    JsonWriter json;
    json.begin_object().key("snapshots").begin_array();
    for (const auto& run : runs) {
      json.begin_object()
          .field("id", run.id)
          .time_field("started_at", run.started_at_ns)
          .time_field("finished_at", run.finished_at_ns)
          .field("roots", run.roots)
          .key("files");
      run.files ? json.value(*run.files) : json.null();
      json.key("bytes");
      run.bytes ? json.value(*run.bytes) : json.null();
      json.end_object();
    }
    json.end_array().end_object();
    return;
  }
  std::printf("%6s  %-20s  %-11s %10s %12s  %s\n", "id", "started", "finished", "files", "bytes",
              "roots");
  for (const auto& run : runs) {
    const std::string files = run.files ? std::to_string(*run.files) : "-";
    const std::string bytes = run.bytes ? std::to_string(*run.bytes) : "-";
    const std::string finished = run.finished_at_ns ? "yes" : "interrupted";
    std::printf("%6lld  %-20s  %-11s %10s %12s  %s\n", static_cast<long long>(run.id),
                format_time_ns(run.started_at_ns).c_str(), finished.c_str(), files.c_str(),
                bytes.c_str(), roots_text(run.roots).c_str());
  }
}

// ------------------------------------------------------------ diff

// A snapshot named on the command line: its id (`mixtape snapshots`),
// "latest", or a time (the newest backup run started at or before it).
catalog::RunRow snapshot_named(Catalog& catalog, const std::string& name) {
  const auto runs = catalog.runs();
  auto backup_runs = [&] {
    std::vector<catalog::RunRow> out;
    for (const auto& r : runs)
      if (r.kind == catalog::RunKind::kBackup) out.push_back(r);
    return out;
  }();
  if (name == "latest") {
    if (backup_runs.empty()) throw Error("the catalog has no backup run yet");
    return backup_runs.back();
  }
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
    const catalog::Id id = std::stoll(name);
    for (const auto& r : runs)
      if (r.id == id) return r;
    throw Error("no run " + name + " in the catalog (see `mixtape snapshots`)");
  }
  const auto at = restore::parse_time(name);
  if (!at)
    throw Error("'" + name +
                "' names no snapshot: give a run id (mixtape snapshots), latest, or a UTC time "
                "like 2026-11-21T10:00:00Z");
  const catalog::RunRow* found = nullptr;
  for (const auto& r : backup_runs)
    if (r.started_at_ns <= *at) found = &r;
  if (!found) throw Error("no backup run started at or before " + name);
  return *found;
}

struct DiffArgs {
  std::string catalog;
  std::string from;
  std::string to;
};

void diff(DiffArgs& args) {
  apply_settings(args.catalog);
  auto catalog = open_checked(args.catalog);
  const catalog::RunRow from = snapshot_named(catalog, args.from);
  const catalog::RunRow to = snapshot_named(catalog, args.to);
  std::uint64_t added = 0, removed = 0, changed = 0;
  for (const auto& change : catalog.changes_between(from.id, to.id)) {
    const char* what = !change.before ? "added  " : !change.after ? "removed" : "changed";
    (!change.before ? added : !change.after ? removed : changed) += 1;
    const catalog::VersionRow& shown = change.after ? *change.after : *change.before;
    std::string size = std::to_string(shown.size);
    if (change.before && change.after && change.before->size != change.after->size)
      size = std::to_string(change.before->size) + " -> " + size;
    std::printf("%s  %s  (%s bytes)\n", what, printable(change.path).c_str(), size.c_str());
  }
  std::printf("%llu added, %llu removed, %llu changed between run %lld (%s) and run %lld (%s)\n",
              static_cast<unsigned long long>(added), static_cast<unsigned long long>(removed),
              static_cast<unsigned long long>(changed), static_cast<long long>(from.id),
              format_time_ns(from.started_at_ns).c_str(), static_cast<long long>(to.id),
              format_time_ns(to.started_at_ns).c_str());
}

// ------------------------------------------------------------ find

struct FindArgs {
  std::string catalog;
  std::string pattern;
};

void find(FindArgs& args) {
  apply_settings(args.catalog);
  auto catalog = open_checked(args.catalog);
  std::uint64_t files = 0, versions = 0;
  for (const auto& [file_id, path] : catalog.files_named(args.pattern)) {
    ++files;
    for (const auto& v : catalog.versions_of(file_id)) {
      ++versions;
      std::string tapes;
      for (const auto& replica : catalog.copies_of(v.id)) {
        tapes += (tapes.empty() ? "" : ",") + replica.tape.serial;
        if (replica.tape.state == catalog::TapeState::kRetired) tapes += "(retired)";
      }
      std::printf("%s %12llu  %-13s  %s\n", format_time_ns(v.attrs.mtime_ns).c_str(),
                  static_cast<unsigned long long>(v.size), tapes.empty() ? "-" : tapes.c_str(),
                  printable(path).c_str());
    }
  }
  if (files == 0) throw Error("no file in the catalog is named like " + args.pattern);
}

}  // namespace

void add_history_commands(CLI::App& app) {
  auto [snapshots_cmd, snapshots_args] = add_catalog_command<SnapshotsArgs>(
      app, "snapshots", "The backup runs: when, which roots, how many files and bytes they found",
      snapshots);
  add_json_option(snapshots_cmd, snapshots_args->json);

  auto [diff_cmd, diff_args] = add_catalog_command<DiffArgs>(
      app, "diff",
      "Files added, removed and changed (by hash) between two snapshots, from the catalog", diff);
  diff_cmd->add_option("from", diff_args->from, "Snapshot: run id, latest, or a UTC time")
      ->required();
  diff_cmd->add_option("to", diff_args->to, "Snapshot: run id, latest, or a UTC time")->required();

  auto [find_cmd, find_args] = add_catalog_command<FindArgs>(
      app, "find", "Files whose name matches a pattern, every version: time, size, tapes", find);
  find_cmd->add_option("pattern", find_args->pattern, "Name pattern (*, ?, [...]), e.g. '*.raw'")
      ->required();
}

}  // namespace mixtape::cli
