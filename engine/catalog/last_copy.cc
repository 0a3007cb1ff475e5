// The catalog's last full copy on tape, kept beside the catalog as the file
// "<catalog>.tapecopy/<token>.db" (docs/DECISIONS.md, "A full copy costs
// what changed"). The next full copy starts from that file and adds what changed
// since (refresh_copy), so a session over a million-file catalog copies a
// file instead of a million rows through SQLite.
//
// The row in last_tape_copy names the file and what it holds. It is written
// in the transaction that commits the session which put the copy on tape:
// a killed session leaves the row naming the previous file, still there
// (older files go only once a newer row is committed), and its own file is
// an orphan that the next session removes. A missing or foreign file, a row
// without its file, or tables of another layout: no seed, a full copy.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "engine/catalog/internal.h"

namespace mixtape::catalog {
namespace {

std::string copies_dir(const std::string& catalog_path) {
  return catalog_path + ".tapecopy";
}

std::string copy_path(const std::string& catalog_path, const std::string& token) {
  return copies_dir(catalog_path) + "/" + token + ".db";
}

void sync_directory(const std::string& dir) {
  UniqueFd fd = open_file(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (::fsync(fd.get()) != 0) throw_errno("cannot sync " + dir);
}

// Durable before the row naming it commits: a crash must not leave the row
// pointing at a file whose bytes never reached the disk.
void sync_file(const std::string& path) {
  UniqueFd fd = open_file(path, O_RDONLY | O_CLOEXEC);
  if (::fdatasync(fd.get()) != 0) throw_errno("cannot sync " + path);
  sync_directory(std::filesystem::path(path).parent_path().string());
}

}  // namespace

void Catalog::drop_stale_tape_copies() {
  std::string keep;
  {
    auto s = db_->prepare("SELECT token FROM last_tape_copy WHERE id = 1");
    if (s.step()) keep = copy_path(path_, s.column_text(0));
  }
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(copies_dir(path_), ec)) {
    if (entry.path().string() != keep) std::filesystem::remove(entry.path(), ec);
  }
}

std::optional<LastTapeCopy> Catalog::last_tape_copy() {
  drop_stale_tape_copies();
  auto s = db_->prepare(
      "SELECT token, epoch, files, archives, copies, verifications FROM last_tape_copy "
      "WHERE id = 1");
  if (!s.step()) return std::nullopt;
  LastTapeCopy copy{copy_path(path_, s.column_text(0)), internal::copy_mark_at(s, 1)};
  try {
    sqlite::Database file(copy.path, sqlite::OpenMode::kReadOnly);
    if (!internal::holds_copy_tables(file)) return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;  // gone or unreadable: a full copy instead
  }
  return copy;
}

void Catalog::keep_tape_copy(const std::string& index_path, const CopyMark& holds) {
  if (!db_->in_transaction()) {
    throw CatalogError(
        "internal error: keep_tape_copy belongs in the transaction that commits the copy");
  }
  std::string token;
  {
    auto s = db_->prepare("SELECT lower(hex(randomblob(8)))");
    s.step();
    token = s.column_text(0);
  }
  const std::string path = copy_path(path_, token);
  try {
    const std::string dir = copies_dir(path_);
    if (::mkdir(dir.c_str(), 0700) == 0) {
      sync_directory(std::filesystem::path(dir).parent_path().string());
    } else if (errno != EEXIST) {
      throw_errno("cannot make " + dir);
    }
    std::error_code ec;
    std::filesystem::rename(index_path, path, ec);
    if (ec) std::filesystem::copy_file(index_path, path);  // another file system
    if (::chmod(path.c_str(), 0600) != 0) throw_errno("cannot chmod " + path);
    sync_file(path);
  } catch (const std::exception&) {
    // Only a cost: the next full copy is made from the catalog.
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
    db_->exec("DELETE FROM last_tape_copy");
    return;
  }
  auto s = db_->prepare(
      "INSERT OR REPLACE INTO last_tape_copy (id, token, epoch, files, archives, copies, "
      "verifications) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)");
  s.bind(1, token);
  internal::bind_copy_mark(s, 2, holds);
  s.run();
}

}  // namespace mixtape::catalog
