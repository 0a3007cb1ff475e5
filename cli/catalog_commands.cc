// mixtape status | ls | tapes: what the catalog knows, without touching tape.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/context.h"

namespace mixtape::cli {
namespace {

using catalog::Catalog;

std::string mode_string(std::uint32_t mode) {
  std::string s = S_ISDIR(mode) ? "d" : S_ISLNK(mode) ? "l" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (mode & (0400 >> i)) ? rwx[i] : '-';
  return s;
}

// Read-only, after a check of the whole file (skipped while the file is
// unchanged since one passed): a damaged catalog is refused with one line
// instead of printing a partial answer.
// A catalog an older mixtape wrote is upgraded first when this user may
// write it, as a writing command would.
Catalog open_checked(const std::string& path) {
  if (Catalog::file_schema_version(path) < Catalog::schema_version() &&
      ::access(path.c_str(), W_OK) == 0)
    Catalog::open(path, catalog::integrity_stamp_dir());
  auto catalog = Catalog::open_read_only(path);
  catalog.check_integrity(catalog::integrity_stamp_dir());
  return catalog;
}

struct LsArgs {
  std::string catalog;
  std::string path = "/";
  bool versions = false;
  bool replicas = false;
  bool recursive = false;
};

void print_replicas(Catalog& catalog, catalog::Id version_id, const char* indent) {
  for (const auto& r : catalog.copies_of(version_id)) {
    std::printf("%sreplica %s:%lld:%llu\n", indent, r.tape.serial.c_str(),
                static_cast<long long>(r.archive.archive_file),
                static_cast<unsigned long long>(r.archive.first_block));
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

void ls(const LsArgs& args) {
  auto catalog = open_checked(args.catalog);
  std::string path = args.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto view = catalog::View::latest();
  auto target = catalog.resolve(path, view);
  if (!target) throw Error(path + ": not in the catalog");
  if (!target->is_dir) {
    print_file(catalog, path, *target, args);
    return;
  }
  if (args.recursive) {
    catalog.walk(path, view, [&](const std::string& p, const catalog::Entry& e) {
      if (e.is_dir)
        print_dir(p, e.dir);
      else
        print_file(catalog, p, e, args);
    });
    return;
  }
  std::string after;
  for (;;) {
    auto entries = catalog.list_dir(target->dir.id, view, after, 1024);
    if (entries.empty()) break;
    for (const auto& e : entries) {
      std::string child = (path == "/" ? "" : path) + "/" + e.name;
      if (e.is_dir)
        print_dir(child, e.dir);
      else
        print_file(catalog, child, e, args);
    }
    after = entries.back().name;
  }
}

void status(const std::string& path) {
  auto catalog = open_checked(path);
  auto s = catalog.status();
  std::printf("catalog %s (id %s)\n", path.c_str(), catalog.catalog_id().c_str());
  std::printf("files: %llu in %llu directories; versions: %llu (%s)\n",
              static_cast<unsigned long long>(s.files), static_cast<unsigned long long>(s.dirs),
              static_cast<unsigned long long>(s.versions), format_size(s.version_bytes).c_str());
  std::printf("copies: %llu; below copy goal: %llu versions (%s); dirty: %llu files\n",
              static_cast<unsigned long long>(s.copies),
              static_cast<unsigned long long>(s.below_goal_versions),
              format_size(s.below_goal_bytes).c_str(),
              static_cast<unsigned long long>(s.dirty_files));
  std::printf("copy goal: %d (default)\n", catalog.default_copy_goal());
  for (const auto& goal : catalog.copy_goals())
    if (goal.prefix != "/") std::printf("copy goal: %d for %s\n", goal.copies, goal.prefix.c_str());
  for (const auto& t : s.tapes) {
    std::string verified = "never verified";
    bool bad = false;  // a bad archive is shown rather than a later good one
    for (const auto& archive : catalog.archives_of_tape(t.tape.id)) {
      auto v = catalog.last_verification(archive.id);
      if (!v || bad) continue;
      verified = std::string("last verify ") + catalog::to_string(v->result) + " " +
                 format_time_ns(v->checked_at_ns);
      bad = v->result != catalog::VerifyResult::kOk;
    }
    std::printf("tape %s: %s, %s of %s, %llu archives, %llu files; %s\n", t.tape.serial.c_str(),
                catalog::to_string(t.tape.state), format_size(t.tape.bytes_used).c_str(),
                format_size(t.tape.capacity).c_str(), static_cast<unsigned long long>(t.archives),
                static_cast<unsigned long long>(t.members), verified.c_str());
  }
}

void tapes(const std::string& path) {
  auto catalog = open_checked(path);
  std::printf("%-10s %-9s %12s %12s %8s %8s\n", "serial", "state", "used", "capacity", "archives",
              "files");
  for (const auto& t : catalog.status().tapes) {
    std::printf("%-10s %-9s %12s %12s %8llu %8llu\n", t.tape.serial.c_str(),
                catalog::to_string(t.tape.state), format_size(t.tape.bytes_used).c_str(),
                format_size(t.tape.capacity).c_str(), static_cast<unsigned long long>(t.archives),
                static_cast<unsigned long long>(t.members));
  }
}

}  // namespace

void add_catalog_commands(CLI::App& app) {
  auto status_path = std::make_shared<std::string>();
  auto* status_cmd = app.add_subcommand("status", "Totals, files below their copy goal, tapes");
  add_catalog_option(status_cmd, *status_path);
  status_cmd->callback([status_path] { status(*status_path); });

  auto ls_args = std::make_shared<LsArgs>();
  auto* ls_cmd = app.add_subcommand("ls", "List what the catalog holds");
  add_catalog_option(ls_cmd, ls_args->catalog);
  ls_cmd->add_option("path", ls_args->path, "Path (default /)");
  ls_cmd->add_flag("--versions", ls_args->versions, "List every version of each file");
  ls_cmd->add_flag("--replicas", ls_args->replicas, "List the tape copies (serial:file:block)");
  ls_cmd->add_flag("-R,--recursive", ls_args->recursive, "Everything below PATH");
  ls_cmd->callback([ls_args] { ls(*ls_args); });

  auto tapes_path = std::make_shared<std::string>();
  auto* tapes_cmd = app.add_subcommand("tapes", "Every tape: serial, state, use");
  add_catalog_option(tapes_cmd, *tapes_path);
  tapes_cmd->callback([tapes_path] { tapes(*tapes_path); });
}

}  // namespace mixtape::cli
