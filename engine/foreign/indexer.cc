// index_tape: one sequential pass over a foreign tape into a catalog
// (engine/foreign/foreign.h has the design).
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <set>

#include "engine/crypto/crypto.h"
#include "engine/foreign/foreign.h"

namespace mixtape::foreign {
namespace {

// The records of the current tape file as a byte stream, up to its filemark
// (consumed) or end of data; counts and hashes every byte it delivers, and
// tells whether every record but the last had one size.
class TapeFileSource final : public ByteSource {
 public:
  explicit TapeFileSource(tape::Drive& drive) : drive_(drive), first_block_(drive.tell()) {}

  std::size_t read(MutableByteSpan out) override {
    while (pos_ == have_) {
      if (ended_) return 0;
      next_record();
    }
    const std::size_t n = std::min(out.size(), have_ - pos_);
    std::copy_n(buffer_.data() + pos_, n, out.data());
    hasher_.update(ByteSpan(buffer_.data() + pos_, n));
    pos_ += n;
    bytes_ += n;
    return n;
  }

  // Reads and hashes what is left of the file.
  void drain() {
    Bytes scratch(1 << 20);
    for (;;) {
      try {
        if (read(scratch) == 0) return;
      } catch (const tape::TapeError& e) {
        if (e.kind() != tape::TapeErrorKind::kMediaError) throw;
        // The drive is past the bad record (Drive contract): go on.
      }
    }
  }

  std::uint64_t first_block() const { return first_block_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t records() const { return records_; }
  std::size_t largest_record() const { return largest_; }
  bool uniform() const { return uniform_ && media_errors_ == 0; }
  bool ended_at_eod() const { return at_eod_; }
  std::uint64_t media_errors() const { return media_errors_; }
  crypto::Blake2b256Digest digest() { return hasher_.finish(); }

 private:
  void next_record() {
    if (buffer_.size() == 0) buffer_.resize(tape::kProbeReadSize);
    pos_ = have_ = 0;
    tape::ReadResult r;
    try {
      r = drive_.read_record(buffer_.span());
    } catch (const tape::TapeError& e) {
      if (e.kind() == tape::TapeErrorKind::kMediaError) ++media_errors_;
      throw;
    }
    if (r.kind != tape::ReadKind::kData) {
      ended_ = true;
      at_eod_ = r.kind == tape::ReadKind::kEndOfData;
      return;
    }
    // A record shorter than the ones before it must be the file's last.
    if (short_seen_ || (records_ > 0 && r.size > largest_)) uniform_ = false;
    if (records_ > 0 && r.size < largest_) short_seen_ = true;
    largest_ = std::max(largest_, r.size);
    ++records_;
    have_ = r.size;
  }

  tape::Drive& drive_;
  std::uint64_t first_block_;
  tape::RecordBuffer buffer_;
  std::size_t have_ = 0, pos_ = 0;
  std::uint64_t bytes_ = 0, records_ = 0, media_errors_ = 0;
  std::size_t largest_ = 0;
  bool uniform_ = true, short_seen_ = false;
  bool ended_ = false, at_eod_ = false;
  crypto::Blake2b256 hasher_;
};

// A member name as a relative catalog path: "" for the archive's own root
// ("./"), nullopt for a name that climbs out or cannot be a path.
std::optional<std::string> relative_path(const std::string& name) {
  std::string out;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == ".." || part.find('\0') != std::string::npos) return std::nullopt;
    out += (out.empty() ? "" : "/") + part;
  }
  if (out.size() > 3500) return std::nullopt;  // the catalog's path limit, with room
  return out;
}

struct Indexed {  // a file member of this tape file, for hard links to it
  catalog::Hash hash{};
  std::uint64_t size = 0;
  std::uint64_t header_offset = 0;
  std::uint64_t data_offset = 0;
};

class Indexer {
 public:
  Indexer(catalog::Catalog& catalog, tape::Drive& drive, const IndexOptions& options,
          IndexReport& report)
      : catalog_(catalog), drive_(drive), options_(options), report_(report) {}

  void run(catalog::Id tape_id, catalog::Id run_id) {
    tape_id_ = tape_id;
    run_id_ = run_id;
    drive_.rewind();
    for (std::uint64_t file = 0;; ++file) {
      TapeFileSource source(drive_);
      index_file(file, source);
      report_.bytes += source.bytes();
      if (source.ended_at_eod()) break;
    }
  }

  std::uint64_t largest_record() const { return largest_record_; }
  std::uint64_t end_block() const { return end_block_; }

 private:
  std::string where(std::uint64_t file) const {
    return "tape " + report_.serial + " file " + std::to_string(file + 1);
  }

  void warn(const std::string& text) {
    report_.warnings.push_back(text);
    if (options_.progress) options_.progress->warning(text);
  }

  void index_file(std::uint64_t file, TapeFileSource& source) {
    const std::string dir = "/file" + std::to_string(file + 1);
    std::uint64_t members = 0;
    std::string format;
    std::uint64_t tar_bytes = 0;
    std::map<std::string, Indexed> files;  // by relative path, for hard links
    std::vector<std::pair<catalog::Id, catalog::CopyRow>> copies;
    std::vector<std::pair<std::string, catalog::Attributes>> dirs;
    std::uint64_t special = 0;
    bool is_tar = false;
    catalog::Attributes root_attrs;
    root_attrs.mode = S_IFDIR | 0755;
    try {
      TarStream tar(source, where(file));
      is_tar = true;
      format = tar.format();
      Bytes buffer(1 << 20);
      while (auto m = tar.next()) {
        auto rel = relative_path(m->path);
        if (!rel) {
          warn(where(file) + ": member '" + m->path + "' left out: its name climbs out of the " +
               "archive or is no path");
          continue;
        }
        catalog::Attributes attrs{m->mode, m->uid, m->gid, m->uname, m->gname, m->mtime_ns};
        root_attrs.mtime_ns = std::max(root_attrs.mtime_ns, m->mtime_ns);
        if (m->kind == MemberKind::kDirectory) {
          attrs.mode |= S_IFDIR;
          if (rel->empty()) {
            root_attrs = attrs;
          } else {
            dirs.emplace_back(dir + "/" + *rel, attrs);
          }
          ++members;
          continue;
        }
        if (rel->empty()) continue;
        if (m->kind == MemberKind::kOther) {
          ++special;
          continue;
        }
        catalog::VersionRow version;
        version.attrs = attrs;
        catalog::CopyRow copy;
        copy.header_offset = m->header_offset;
        copy.data_offset = m->data_offset;
        std::string path = dir + "/" + *rel;
        if (m->kind == MemberKind::kSymlink) {
          if (m->link.empty()) {
            warn(where(file) + ": symlink '" + m->path + "' left out: it has no target");
            continue;
          }
          version.kind = catalog::VersionKind::kSymlink;
          version.symlink_target = m->link;
        } else if (m->kind == MemberKind::kHardlink) {
          auto target = relative_path(m->link);
          auto it = target ? files.find(*target) : files.end();
          if (it == files.end()) {
            warn(where(file) + ": hard link '" + m->path + "' left out: its file '" + m->link +
                 "' is not in this archive before it");
            continue;
          }
          version.size = it->second.size;
          version.hash = it->second.hash;
          copy.header_offset = it->second.header_offset;
          copy.data_offset = it->second.data_offset;
        } else {
          crypto::Blake2b256 hasher;
          std::uint64_t got = 0;
          std::string damage;
          try {
            while (got < m->size) {
              const std::size_t want =
                  static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), m->size - got));
              std::size_t n = tar.read(MutableByteSpan(buffer.data(), want));
              if (n == 0) break;
              hasher.update(ByteSpan(buffer.data(), n));
              got += n;
              if (options_.progress) options_.progress->advance(n, 0, path);
            }
          } catch (const ForeignError& e) {
            damage = e.what();
          }
          version.size = got;
          version.hash = hasher.finish();
          if (m->part || got < m->size) {
            // A part of a file: a GNU multi-volume continuation, or the
            // head of a file the tape file ends inside.
            const std::uint64_t at = m->part.value_or(0);
            path += ".part-at-" + std::to_string(at);
            warn(where(file) + ": '" + m->path + "' is shown as " + path.substr(dir.size() + 1) +
                 ": " +
                 (got < m->size ? "only " + std::to_string(got) + " of its " +
                                      std::to_string(m->size) + " bytes are here"
                                : "a part continued from a previous volume") +
                 (damage.empty() ? "" : " (" + damage + ")"));
          }
          files[*rel] = {version.hash, version.size, copy.header_offset, copy.data_offset};
          if (!damage.empty() || got < m->size) {
            add_member(path, version, copy, copies);
            ++members;
            throw ForeignError(damage.empty()
                                   ? where(file) + ": the archive ends inside '" + m->path + "'"
                                   : damage);
          }
        }
        add_member(path, version, copy, copies);
        ++members;
        if (options_.progress) options_.progress->advance(0, 1, path);
      }
      tar_bytes = source.bytes();
    } catch (const ForeignError& e) {
      if (is_tar) {
        warn(std::string(e.what()) + "; the members before it are indexed, the rest of " +
             where(file) + " is not");
      }
    } catch (const tape::TapeError& e) {
      if (e.kind() != tape::TapeErrorKind::kMediaError) throw;
      warn(where(file) + ": " + e.what() + "; the members before it are indexed");
    }
    source.drain();
    end_block_ = drive_.tell();
    if (source.records() == 0 && source.media_errors() == 0) return;  // an empty file or EOD
    ++report_.tape_files;
    largest_record_ = std::max<std::uint64_t>(largest_record_, source.largest_record());
    if (special)
      warn(where(file) + ": " + std::to_string(special) +
           " special files (devices, fifos, sockets) are not shown");

    catalog::ArchiveRow archive;
    archive.tape_id = tape_id_;
    archive.archive_file = static_cast<std::int64_t>(file);
    archive.index_file = archive.archive_file;
    archive.first_block = source.first_block();
    archive.index_block = archive.first_block;
    archive.encrypted = false;
    archive.cipher_bytes = source.bytes();
    archive.record_size = source.largest_record();
    archive.run_id = run_id_;
    if (is_tar) {
      ++report_.tars;
      archive.foreign_format =
          format == "tar" && !source.uniform() ? std::string("tar-stream") : format;
      archive.plain_bytes = format == "tar" ? source.bytes() : std::max(tar_bytes, source.bytes());
      archive.members = members;
      const catalog::Id archive_id = catalog_.add_archive(archive);
      add_dir(dir, root_attrs);
      for (const auto& [path, attrs] : dirs) add_dir(path, attrs);
      std::set<std::pair<catalog::Id, catalog::Id>> added;
      for (auto& [version_id, copy] : copies) {
        if (!added.insert({archive_id, version_id}).second) continue;
        copy.archive_id = archive_id;
        copy.version_id = version_id;
        catalog_.add_copy(copy);
      }
      report_.members += members;
    } else {
      // No tar: the tape file is one plain file.
      archive.foreign_format = "raw";
      archive.plain_bytes = source.bytes();
      archive.members = 1;
      const catalog::Id archive_id = catalog_.add_archive(archive);
      catalog::VersionRow version;
      version.size = source.bytes();
      version.hash = source.digest();
      version.attrs.mode = S_IFREG | 0444;
      const std::string path = dir + ".bin";
      const catalog::Id file_id = catalog_.ensure_file(catalog::kRootDirId, path.substr(1));
      const catalog::Id version_id = catalog_.record_version(file_id, version, run_id_).id;
      catalog_.close_latest_version(file_id, run_id_);
      catalog::CopyRow copy;
      copy.archive_id = archive_id;
      copy.version_id = version_id;
      catalog_.add_copy(copy);
    }
  }

  // Records the member's version; its copy is added once the archive row exists.
  // A name the catalog refuses (too long a component, say) leaves the
  // member out with a warning; the others go on.
  void add_member(const std::string& path, const catalog::VersionRow& version,
                  const catalog::CopyRow& copy,
                  std::vector<std::pair<catalog::Id, catalog::CopyRow>>& copies) {
    try {
      const std::size_t slash = path.rfind('/');
      const catalog::Id dir_id = catalog_.ensure_dir(slash == 0 ? "/" : path.substr(0, slash));
      const catalog::Id file_id = catalog_.ensure_file(dir_id, path.substr(slash + 1));
      const catalog::Id version_id = catalog_.record_version(file_id, version, run_id_).id;
      catalog_.close_latest_version(file_id, run_id_);
      copies.emplace_back(version_id, copy);
    } catch (const catalog::CatalogError& e) {
      warn(path + " left out: " + e.what());
    }
  }

  void add_dir(const std::string& path, const catalog::Attributes& attrs) {
    try {
      catalog_.touch_dir(catalog_.ensure_dir(path), attrs, run_id_);
    } catch (const catalog::CatalogError& e) {
      warn(path + " left out: " + e.what());
    }
  }

  catalog::Catalog& catalog_;
  tape::Drive& drive_;
  const IndexOptions& options_;
  IndexReport& report_;
  catalog::Id tape_id_ = 0;
  catalog::Id run_id_ = 0;
  std::uint64_t largest_record_ = 0;
  std::uint64_t end_block_ = 0;
};

}  // namespace

IndexReport index_tape(catalog::Catalog& catalog, tape::Drive& drive, const IndexOptions& options) {
  IndexReport report;
  report.fingerprint = fingerprint(drive);
  report.serial = options.serial.empty() ? serial_for(report.fingerprint) : options.serial;
  tape::check_serial(report.serial);
  if (options.progress) options.progress->phase("index " + report.serial, 0, 0);
  auto transaction = catalog.transaction();
  catalog::TapeRow tape;
  tape.serial = report.serial;
  tape.foreign_id = report.fingerprint;
  tape.encrypted = false;
  tape.state = catalog::TapeState::kFull;
  tape.record_size = 512;  // set below from the records read
  const catalog::Id tape_id = catalog.add_tape(tape);
  const catalog::Id run_id = catalog.begin_run(catalog::RunKind::kScan, {"/"});
  Indexer indexer(catalog, drive, options, report);
  indexer.run(tape_id, run_id);
  tape = *catalog.tape(tape_id);
  tape.capacity = report.bytes;
  tape.bytes_used = report.bytes;
  tape.append_file = static_cast<std::int64_t>(report.tape_files);
  tape.append_block = indexer.end_block();
  tape.written_at_ns = now_ns();
  catalog.update_tape(tape);
  if (indexer.largest_record() > 0) {
    catalog.database()
        .prepare("UPDATE tapes SET record_size = ?2 WHERE id = ?1")
        .bind(1, tape_id)
        .bind(2, indexer.largest_record())
        .run();
  }
  catalog.finish_run(run_id);
  transaction.commit();
  drive.rewind();
  return report;
}

}  // namespace mixtape::foreign
