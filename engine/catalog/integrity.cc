// Catalog integrity: the cheap checks every open can afford, SQLite's
// quick_check, and the stamp that lets a reader skip quick_check when the
// file has not changed since a check found it intact.
//
// quick_check reads every page (8 s cold, 3.6 s warm on a 232 MB catalog),
// which a mount that must answer in a second cannot pay each time. The stamp
// records the file's identity when a full check passed: device, inode, size,
// mtime, ctime, the write-ahead log's size and mtime, and the header's change
// counter. Any write to the file (by SQLite or by anything else) changes
// mtime and ctime, so a stamp that still matches means the bytes checked are
// the bytes there now. The stamp is a cache: missing, unreadable or
// unwritable just means the full check runs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "engine/catalog/internal.h"

namespace mixtape::catalog {
namespace {

using internal::damaged;
using internal::sqlite_reason;

constexpr std::string_view kStampMagic = "mixtape integrity stamp 1";

// A file's times come from a coarse clock that ticks every jiffy (at most
// 10 ms: HZ >= 100): a write in the same tick as the state a stamp records
// would leave the times unchanged. A stamp is only written for a state
// older than two ticks, so any later write gets a later time. (Every
// writer waits this out when it closes the catalog.) Filesystems that keep
// whole seconds get whole seconds of margin.
constexpr std::int64_t kSettleNs = 20'000'000;
constexpr std::int64_t kCoarseSettleNs = 2'000'000'000;

std::int64_t ns_of(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

std::int64_t realtime_ns() {
  struct timespec t {};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return ns_of(t);
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// What a stamp records of a catalog file, and what the cheap checks need of
// its header.
struct Identity {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  // A log with no frames (what a reader leaves behind) counts as none.
  std::uint64_t wal_size = 0;
  // Not the log's ctime: SQLite running as root chowns the log at every
  // open, readers' opens included.
  std::int64_t wal_mtime_ns = 0;
  std::uint32_t change_counter = 0;
  // From the header, not recorded: in-header page count (0 when SQLite
  // would not trust it) and page size.
  std::uint32_t header_pages = 0;
  std::uint32_t page_size = 0;
  bool coarse_times = false;

  std::string to_string() const {
    std::ostringstream out;
    out << "dev=" << dev << " ino=" << ino << " size=" << size << " mtime_ns=" << mtime_ns
        << " ctime_ns=" << ctime_ns << " wal_size=" << wal_size << " wal_mtime_ns=" << wal_mtime_ns
        << " change_counter=" << change_counter;
    return out.str();
  }

  std::int64_t newest_change_ns() const { return std::max({mtime_ns, ctime_ns, wal_mtime_ns}); }
};

// Nullopt when the file cannot be examined (the open reports why).
std::optional<Identity> identify(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::nullopt;
  Identity id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = ns_of(st.st_mtim);
  id.ctime_ns = ns_of(st.st_ctim);
  id.coarse_times = st.st_mtim.tv_nsec == 0 && st.st_ctim.tv_nsec == 0;
  unsigned char header[100] = {};
  if (::pread(fd.get(), header, sizeof header, 0) == static_cast<ssize_t>(sizeof header)) {
    id.change_counter = be32(header + 24);
    const std::uint32_t page_size = (std::uint32_t{header[16]} << 8) | header[17];
    id.page_size = page_size == 1 ? 65536 : page_size;
    // SQLite trusts the in-header size only when the version-valid-for
    // number matches the change counter (older writers left it stale).
    if (be32(header + 92) == id.change_counter) id.header_pages = be32(header + 28);
  }
  struct stat wal {};
  if (::stat((path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0) {
    id.wal_size = static_cast<std::uint64_t>(wal.st_size);
    id.wal_mtime_ns = ns_of(wal.st_mtim);
  }
  return id;
}

// Truncation without reading the file: the header says how many pages the
// database has. A write-ahead log may hold pages past the end of the file
// (they reach it at the next checkpoint), so then this says nothing.
void check_size(const Identity& id, const std::string& path) {
  if (id.wal_size > 0 || id.header_pages == 0 || id.page_size == 0) return;
  const std::uint64_t needed = std::uint64_t{id.header_pages} * id.page_size;
  if (needed > id.size) {
    throw CatalogError(damaged(
        path, "the file is " + std::to_string(id.size) + " bytes, its header says " +
                  std::to_string(id.header_pages) + " pages of " + std::to_string(id.page_size) +
                  " (" + std::to_string(needed) + " bytes): it was cut short"));
  }
}

// PRAGMA quick_check: every b-tree page, cell and freelist entry (not that
// indexes match their tables, which costs a sort per index). Its first
// complaint says where; "ok" is the only good answer.
void check_structure(sqlite::Database& db, const std::string& path) {
  std::string problem;
  try {
    auto s = db.prepare("PRAGMA quick_check(1)");
    if (s.step()) problem = s.column_text(0);
  } catch (const sqlite::SqliteError& e) {
    if (e.code() != SQLITE_CORRUPT && e.code() != SQLITE_NOTADB) throw;
    problem = sqlite_reason(e);
  }
  if (problem != "ok") {
    // "*** in database main ***\n" comes before the first complaint.
    if (problem.starts_with("***") && problem.find('\n') != std::string::npos)
      problem.erase(0, problem.find('\n') + 1);
    if (auto newline = problem.find('\n'); newline != std::string::npos) problem.resize(newline);
    throw CatalogError(damaged(path, problem.empty() ? "its structure does not check" : problem));
  }
}

std::optional<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) return std::nullopt;
  return std::string(real.get());
}

std::string stamp_file_of(const std::string& stamp_dir, const std::string& canonical_path) {
  if (stamp_dir.empty()) return {};
  return stamp_dir + "/" + to_hex(crypto::blake2b256(as_bytes(std::string_view(canonical_path))));
}

std::string stamp_text(const std::string& canonical_path, const Identity& id) {
  return std::string(kStampMagic) + "\n" + canonical_path + "\n" + id.to_string() + "\n";
}

bool stamp_matches(const std::string& stamp_file, const std::string& canonical_path,
                   const Identity& id) {
  UniqueFd fd(::open(stamp_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  const std::string expected = stamp_text(canonical_path, id);
  std::string text(expected.size() + 1, '\0');
  ssize_t n = ::pread(fd.get(), text.data(), text.size(), 0);
  return n == static_cast<ssize_t>(expected.size()) &&
         text.compare(0, expected.size(), expected) == 0;
}

bool make_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return true;
  struct stat st {};
  return errno == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Best effort: a stamp that cannot be written means the next reader checks.
void write_stamp(const std::string& stamp_dir, const std::string& stamp_file,
                 const std::string& text) noexcept {
  // The cache folder and mixtape/ may be missing; each level made private.
  std::string made;
  std::size_t from = 0;
  while (from != std::string::npos) {
    std::size_t slash = stamp_dir.find('/', from + 1);
    made = stamp_dir.substr(0, slash);
    from = slash;
    if (!made.empty() && !make_private_dir(made)) return;
  }
  // Rewritten in place rather than renamed over: replacing the file frees
  // the old one's blocks, and with online discard that waits for the disk
  // (80 ms here). A torn or interleaved stamp only fails to match.
  UniqueFd fd(::open(stamp_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return;
  if (::pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
      ::ftruncate(fd.get(), static_cast<off_t>(text.size())) != 0)
    (void)::ftruncate(fd.get(), 0);
}

bool settled(const Identity& id, std::int64_t at_ns) {
  return at_ns - id.newest_change_ns() > (id.coarse_times ? kCoarseSettleNs : kSettleNs);
}

}  // namespace

std::string integrity_stamp_dir() {
  return user_path(UserDir::kCache, "mixtape/checked");
}

std::string integrity_stamp_path(const std::string& stamp_dir, const std::string& catalog_path) {
  auto real = canonical(catalog_path);
  return real ? stamp_file_of(stamp_dir, *real) : std::string();
}

std::string catalog_identity(const std::string& catalog_path) {
  auto id = identify(catalog_path);
  return id ? id->to_string() : std::string();
}

namespace internal {

std::string sqlite_reason(const sqlite::SqliteError& e) {
  std::string text = e.what();
  auto colon = text.rfind(": ");
  return colon == std::string::npos ? text : text.substr(colon + 2);
}

std::string damaged(const std::string& path, const std::string& why) {
  return "catalog " + path + " is damaged (" + why +
         "); move it aside and rebuild it from tape with `mixtape recover`";
}

IntegrityCheck check_integrity(sqlite::Database& db, const std::string& path,
                               const std::string& stamp_dir) {
  const std::int64_t started = realtime_ns();
  const auto before = identify(path);
  if (before) check_size(*before, path);
  const auto real = canonical(path);
  const std::string stamp_file = before && real ? stamp_file_of(stamp_dir, *real) : std::string();
  if (!stamp_file.empty() && stamp_matches(stamp_file, *real, *before))
    return IntegrityCheck::kStamped;
  check_structure(db, path);
  if (stamp_file.empty() || !settled(*before, started)) return IntegrityCheck::kFull;
  // Changed while it was checked: what passed may not be what is there now.
  const auto after = identify(path);
  if (after && after->to_string() == before->to_string())
    write_stamp(stamp_dir, stamp_file, stamp_text(*real, *before));
  return IntegrityCheck::kFull;
}

void refresh_integrity_stamp(const std::string& path, const std::string& stamp_dir) noexcept {
  try {
    auto id = identify(path);
    auto real = canonical(path);
    if (!id || !real) return;
    const std::string stamp_file = stamp_file_of(stamp_dir, *real);
    if (stamp_file.empty() || stamp_matches(stamp_file, *real, *id)) return;
    // The writer just wrote: wait out the clock tick so the stamp can be
    // trusted (a few milliseconds; whole-second filesystems are left to
    // the next reader rather than holding the writer up).
    if (id->coarse_times) return;
    const std::int64_t wait = id->newest_change_ns() + kSettleNs + 1'000'000 - realtime_ns();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
    // The writer checked the file when it opened it (Catalog::open), and
    // only SQLite wrote it since: the cheap checks stand for the full one,
    // whose cost grows with the catalog (seconds at ten million files) on
    // every backup. Damage from outside after this is what the stamp's
    // identity catches.
    const auto settled_id = identify(path);
    if (!settled_id) return;
    check_size(*settled_id, path);
    write_stamp(stamp_dir, stamp_file, stamp_text(*real, *settled_id));
  } catch (const std::exception&) {
    // A damaged catalog is refused by the next command that opens it.
  }
}

}  // namespace internal
}  // namespace mixtape::catalog
