// import_into: a foreign tape's index copied into a catalog under
// /imported/<serial>/.
#include <sys/stat.h>

#include <map>

#include "engine/foreign/foreign.h"

namespace mixtape::foreign {

std::string import_prefix(const std::string& serial) {
  return "/imported/" + serial;
}

ImportReport import_into(catalog::Catalog& catalog, const std::string& index_path,
                         const std::string& serial) {
  auto index = catalog::Catalog::open_read_only(index_path);
  auto tapes = index.tapes();
  if (tapes.size() != 1 || !tapes.front().is_foreign())
    throw ForeignError(index_path + " is not the index of one foreign tape");
  catalog::TapeRow tape = tapes.front();
  ImportReport report;
  report.serial = serial.empty() ? tape.serial : serial;
  tape::check_serial(report.serial);
  report.prefix = import_prefix(report.serial);
  if (auto known = catalog.tape_by_foreign_id(tape.foreign_id)) {
    report.serial = known->serial;
    report.prefix = import_prefix(known->serial);
    report.already = true;
    return report;
  }
  if (catalog.tape_by_serial(report.serial)) {
    throw ForeignError("the catalog has a tape " + report.serial +
                       " already; import this one under another serial (--serial)");
  }

  auto transaction = catalog.transaction();
  const catalog::Id run_id = catalog.begin_run(catalog::RunKind::kScan, {report.prefix});
  catalog::TapeRow row = tape;
  row.serial = report.serial;
  const catalog::Id tape_id = catalog.add_tape(row);
  std::map<std::int64_t, catalog::Id> archives;  // by tape file
  for (catalog::ArchiveRow a : index.archives_of_tape(tape.id)) {
    a.tape_id = tape_id;
    a.run_id = run_id;
    archives[a.archive_file] = catalog.add_archive(a);
  }
  // Nothing but this tape holds these files, and nothing can copy them
  // (they are on no disk): one copy is all they can have.
  bool has_goal = false;
  for (const auto& goal : catalog.copy_goals()) has_goal = has_goal || goal.prefix == "/imported";
  if (!has_goal) catalog.set_copy_goal("/imported", 1);

  catalog::Attributes imported;
  imported.mode = S_IFDIR | 0755;
  catalog.touch_dir(catalog.ensure_dir("/imported"), imported, run_id);
  index.walk("/", catalog::View::latest(), [&](const std::string& path, const catalog::Entry& e) {
    if (!e.is_dir) return;
    catalog.touch_dir(catalog.ensure_dir(report.prefix + (path == "/" ? "" : path)), e.dir.attrs,
                      run_id);
    ++report.directories;
  });
  std::map<catalog::Id, catalog::Id> versions;  // index version id -> ours
  index.for_each_copy_on_tape(tape.id, [&](const catalog::CopyWithVersion& c) {
    auto version = versions.find(c.version.id);
    if (version == versions.end()) {
      const std::string path = report.prefix + c.path;
      const std::size_t slash = path.rfind('/');
      const catalog::Id dir_id = catalog.ensure_dir(path.substr(0, slash));
      const catalog::Id file_id = catalog.ensure_file(dir_id, path.substr(slash + 1));
      const catalog::Id id = catalog.record_version(file_id, c.version, run_id).id;
      catalog.close_latest_version(file_id, run_id);
      version = versions.emplace(c.version.id, id).first;
      ++report.files;
      if (c.version.kind == catalog::VersionKind::kFile) report.bytes += c.version.size;
    }
    catalog::CopyRow copy = c.copy;
    copy.archive_id = archives.at(c.archive_file);
    copy.version_id = version->second;
    catalog.add_copy(copy);
  });
  catalog.finish_run(run_id);
  transaction.commit();
  return report;
}

}  // namespace mixtape::foreign
