// restore(): the catalog names what to restore, the recall queue reads it
// in tape order, a Destination writes it.
//
//   resolve every path in the view (latest backed-up, or the snapshot of
//   the backup run --at chose); walk directories
//   create directories, then symlinks (their targets are in the catalog)
//   queue every regular file (empty ones too: the tape must hold an empty
//   file there); the queue orders them by (tape, block) and tries the next
//   copy when one fails
//   wait, reporting progress; collect per-file failures
//   set directory attributes last, deepest first (writing into a directory
//   changes its mtime, and a read-only mode would stop the writes)
#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "engine/format/format.h"
#include "engine/restore/restore.h"

namespace mixtape::restore {

std::optional<std::int64_t> parse_time(std::string_view text) {
  std::string base(text);
  std::int64_t nanos = 0;
  if (base.size() == 10) base += "T00:00:00Z";
  if (base.size() > 6 && base.ends_with("+00:00")) base = base.substr(0, base.size() - 6) + "Z";
  if (auto dot = base.find('.'); dot != std::string::npos) {
    if (!base.ends_with("Z")) return std::nullopt;
    std::string fraction = base.substr(dot + 1, base.size() - dot - 2);
    if (fraction.empty() || fraction.size() > 9 ||
        fraction.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    fraction.resize(9, '0');
    nanos = std::stoll(fraction);
    base = base.substr(0, dot) + "Z";
  }
  std::optional<std::int64_t> seconds = format::parse_utc(base);
  if (!seconds) return std::nullopt;
  return *seconds * 1000000000 + nanos;
}

namespace {

// Counts what the workers commit, for progress drawn on the caller's thread.
struct Counters {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> files{0};
  std::mutex mutex;
  std::string last;
};

class CountingSink final : public RecallSink {
 public:
  CountingSink(std::shared_ptr<RecallSink> inner, Counters& counters, std::string path)
      : inner_(std::move(inner)), counters_(counters), path_(std::move(path)) {}
  void begin(const catalog::VersionRow& version) override {
    size_ = version.size;
    inner_->begin(version);
  }
  void write(ByteSpan data) override { inner_->write(data); }
  void commit() override {
    inner_->commit();
    counters_.bytes += size_;
    ++counters_.files;
    std::lock_guard lock(counters_.mutex);
    counters_.last = path_;
  }
  void abort() noexcept override { inner_->abort(); }
  void fail(const std::string& error) noexcept override { inner_->fail(error); }

 private:
  std::shared_ptr<RecallSink> inner_;
  Counters& counters_;
  std::string path_;
  std::uint64_t size_ = 0;
};

struct Item {
  std::string path;
  catalog::VersionRow version;
};

struct Plan {
  std::vector<std::pair<std::string, catalog::DirRow>> dirs;  // walk order: parents first
  std::vector<Item> links;
  std::vector<Item> files;
};

Plan plan(const std::string& catalog_path, const RestoreOptions& options, RestoreReport& report) {
  auto catalog = catalog::Catalog::open_read_only(catalog_path);
  catalog::View view = catalog::View::latest(true);
  if (options.at_ns) {
    for (const auto& run : catalog.runs())
      if (run.kind == catalog::RunKind::kBackup && run.started_at_ns <= *options.at_ns)
        report.snapshot = run;
    if (!report.snapshot) {
      throw RestoreError("no backup run started at or before " +
                         format::format_utc(*options.at_ns / 1000000000));
    }
    view = catalog::View::snapshot(report.snapshot->id);
  }
  Plan plan;
  std::set<std::string> seen;
  auto add = [&](const std::string& path, const catalog::Entry& entry) {
    if (!seen.insert(path).second) return;
    if (entry.is_dir)
      plan.dirs.emplace_back(path, entry.dir);
    else if (entry.version.kind == catalog::VersionKind::kSymlink)
      plan.links.push_back({path, entry.version});
    else
      plan.files.push_back({path, entry.version});
  };
  for (const auto& path : options.paths) {
    auto top = catalog.resolve(path, view);
    if (!top) {
      report.failures.push_back(
          {path, report.snapshot
                     ? "not in the snapshot of " +
                           format::format_utc(report.snapshot->started_at_ns / 1000000000)
                     : "not in the catalog, or never backed up"});
      continue;
    }
    add(path, *top);
    if (top->is_dir) catalog.walk(path, view, add);
    // The backed-up view leaves out files with no copy on any tape (never
    // backed up, or every copy on a retired tape): named here, not skipped.
    if (!options.at_ns && top->is_dir) {
      catalog.walk(path, catalog::View::latest(),
                   [&](const std::string& p, const catalog::Entry& entry) {
                     if (!entry.is_dir && !seen.count(p))
                       report.failures.push_back(
                           {p, "no copy on any tape (never backed up, or every copy was lost)"});
                   });
    }
  }
  return plan;
}

std::string relative(const std::string& path) {
  return path.size() > 1 ? path.substr(1) : std::string();
}

}  // namespace

RestoreReport restore(const std::string& catalog_path, tape::Library& library,
                      const crypto::AgeDecryptKeys& keys, const RestoreOptions& options,
                      Progress& progress) {
  RestoreReport report;
  Plan todo = plan(catalog_path, options, report);
  Destination destination(options.destination, options.destination_options);

  for (const auto& [path, dir] : todo.dirs) {
    if (path == "/") continue;
    try {
      destination.make_directory(relative(path));
      ++report.directories;
    } catch (const Error& e) {
      report.failures.push_back({path, e.what()});
    }
  }
  for (const auto& link : todo.links) {
    try {
      destination.make_symlink(relative(link.path), link.version.symlink_target,
                               link.version.attrs);
      ++report.symlinks;
    } catch (const Error& e) {
      report.failures.push_back({link.path, e.what()});
    }
  }

  std::uint64_t total = 0;
  for (const auto& f : todo.files) total += f.version.size;
  progress.phase("restore", total, todo.files.size());
  Counters counters;
  std::vector<std::pair<const Item*, RecallHandle>> pending;
  {
    // An empty file is checked on tape too: the tape must hold an empty
    // file there, not a link or anything else.
    RecallOptions recall = options.recall;
    recall.check_empty_files = true;
    RecallQueue queue(catalog_path, library, keys, nullptr, recall);
    for (const auto& item : todo.files) {
      const std::string name = relative(item.path);
      try {
        if (!options.destination_options.overwrite && destination.exists(name)) {
          throw RestoreError(destination.directory() + "/" + name +
                             " exists (use --overwrite to replace it)");
        }
        auto sink = std::make_shared<CountingSink>(file_sink(destination, name, item.version.attrs),
                                                   counters, item.path);
        pending.emplace_back(&item, queue.request({item.version.id, 0, sink, std::nullopt,
                                                   item.version, item.path}));
      } catch (const Error& e) {
        report.failures.push_back({item.path, e.what()});
      }
    }
    std::uint64_t shown_bytes = 0, shown_files = 0;
    auto show = [&] {
      std::uint64_t bytes = counters.bytes, files = counters.files;
      std::string last;
      {
        std::lock_guard lock(counters.mutex);
        last = counters.last;
      }
      if (bytes != shown_bytes || files != shown_files)
        progress.advance(bytes - shown_bytes, files - shown_files, last);
      shown_bytes = bytes;
      shown_files = files;
    };
    std::string shown_tape;  // the tape of the file waited for
    for (const auto& [item, handle] : pending) {
      while (
          !handle.wait_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(200))) {
        if (std::string tape = handle.status().tape; tape != shown_tape)
          progress.tape(shown_tape = tape);
        show();
      }
      show();
    }
    for (const auto& [item, handle] : pending) {
      RecallStatus status = handle.status();
      if (status.state == RecallState::kStaged) {
        ++report.files;
        report.bytes += item->version.size;
      } else {
        report.failures.push_back({item->path, status.cause});
      }
    }
    report.recall = queue.stats();
  }

  for (auto it = todo.dirs.rbegin(); it != todo.dirs.rend(); ++it) {
    const auto& [path, dir] = *it;
    if (path == "/" || dir.first_seen_run == 0) continue;  // never seen: no metadata
    try {
      destination.set_directory_attributes(relative(path), dir.attrs);
    } catch (const Error& e) {
      report.failures.push_back({path, e.what()});
    }
  }
  return report;
}

}  // namespace mixtape::restore
