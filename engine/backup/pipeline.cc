// The write pipeline.
//
//   hash stage (own thread, own catalog connection)        write stage (caller's thread)
//   ------------------------------------------------        -----------------------------
//   for each candidate of this tape, in path order:          for each ArchiveJob:
//     dirty file  -> read + hash once, record version          index  -> age -> records -> drive
//     known version -> check the source still matches          archive: pax tar -> age -> records
//     pack into an ArchiveJob (offsets known in advance)       (files re-read from page cache)
//   --------------- BoundedQueue<ArchiveJob>, capacity 1 ------------------>
//
// The queue holds one finished job while the next is being hashed, so the
// drive streams archive k while archive k+1 is read: back-pressure, not
// unbounded memory. After the last archive the trailing index is written
// inside the catalog transaction that adds the session's archives and
// copies, and only once the tape holds it is that transaction committed. A
// crash before then leaves the catalog as it was; the tape's append point is
// unchanged, so the next session overwrites whatever this one left.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "engine/backup/attributes.h"
#include "engine/backup/backup.h"
#include "engine/backup/tape_file.h"
#include "engine/format/format.h"

namespace mixtape::backup {
namespace {

using catalog::Id;

constexpr std::uint64_t kMaxArchiveSize = 4ULL << 30;
constexpr std::uint64_t kMinArchiveSize = 64ULL << 20;
constexpr std::size_t kCopyBuffer = 4 << 20;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t default_archive_size() {
  // The write stage re-reads each file; it must still be in the page cache,
  // which needs room for the archive being written and the one being hashed.
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return kMinArchiveSize;
  std::uint64_t ram = static_cast<std::uint64_t>(info.totalram) * info.mem_unit;
  return std::clamp(ram / 8, kMinArchiveSize, kMaxArchiveSize);
}

Sealing sealing_for(catalog::Catalog& catalog, const WriterKeys& keys) {
  catalog::CatalogConfig config = catalog.config();
  Sealing sealing;
  switch (config.encryption) {
    case catalog::Encryption::kNone:
      sealing.mode = Sealing::Mode::kNone;
      break;
    case catalog::Encryption::kRecipients:
      sealing.mode = Sealing::Mode::kRecipients;
      for (const auto& r : config.recipients)
        sealing.recipients.push_back(crypto::X25519Recipient::parse(r));
      if (sealing.recipients.empty()) throw Error("catalog has no recipients to encrypt to");
      break;
    case catalog::Encryption::kPassphrase:
      sealing.mode = Sealing::Mode::kPassphrase;
      if (!keys.passphrase)
        throw Error("this catalog encrypts with a passphrase: give --passphrase-file");
      sealing.passphrase = *keys.passphrase;
      break;
  }
  return sealing;
}

format::Encryption label_encryption(const Sealing& sealing) {
  switch (sealing.mode) {
    case Sealing::Mode::kNone:
      return format::Encryption::kNone;
    case Sealing::Mode::kPassphrase:
      return format::Encryption::kAgePassphrase;
    case Sealing::Mode::kRecipients:
      break;
  }
  return format::Encryption::kAgeRecipients;
}

std::string temp_directory(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

// A scratch file removed when it goes out of scope.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& dir, const std::string& stem) {
    static constexpr char kSuffix[] = ".db";
    path_ = dir + "/mixtape-" + stem + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(now_ns()) + kSuffix;
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
    std::filesystem::remove(path_ + "-journal", ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

format::MemberInfo member_info(const catalog::VersionRow& version, const std::string& path) {
  format::MemberInfo info;
  info.path = path.substr(1);
  info.type = version.kind == catalog::VersionKind::kSymlink ? format::MemberType::kSymlink
                                                              : format::MemberType::kFile;
  info.size = version.kind == catalog::VersionKind::kFile ? version.size : 0;
  info.mode = version.attrs.mode & 07777;
  info.uid = version.attrs.uid;
  info.gid = version.attrs.gid;
  info.uname = version.attrs.uname;
  info.gname = version.attrs.gname;
  info.mtime_ns = version.attrs.mtime_ns;
  info.linkpath = version.symlink_target;
  if (version.kind == catalog::VersionKind::kFile) info.blake2b256 = to_hex(version.hash);
  return info;
}

// ------------------------------------------------------------ the queue

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity) {}

  // False if the consumer has gone away.
  bool push(T item) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return items_.size() < capacity_ || cancelled_; });
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    changed_.notify_all();
    return true;
  }
  // nullopt once the producer closed and everything was taken.
  std::optional<T> pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    changed_.notify_all();
    return item;
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  // The consumer stops: the producer's next push returns false.
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    items_.clear();
    changed_.notify_all();
  }
  bool cancelled() {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
  bool closed_ = false;
  bool cancelled_ = false;
};

// ------------------------------------------------------------ hash stage

struct Candidate {
  std::string path;
  Id file_id = 0;
  std::optional<catalog::VersionRow> version;  // nullopt: dirty, hash first
};

struct Member {
  std::string path;
  catalog::VersionRow version;
  format::MemberInfo info;
  format::MemberOffsets offsets;
  HashedFile::stat_identity identity;
};

struct ArchiveJob {
  std::vector<Member> members;
  std::uint64_t plain_size = 0;  // finished tar
};

struct HashStageResult {
  HashReport report;
  bool tape_filled = false;  // candidates were left for lack of room
  std::exception_ptr error;
};

// Packs candidates into archives that fit the room left on the tape.
class HashStage {
 public:
  HashStage(const std::string& catalog_path, Id tape_id, Id run_id, std::uint64_t archive_size,
            std::uint64_t room, std::uint64_t empty_tape_room, const Sealing& sealing,
            Progress& progress)
      : catalog_(catalog::Catalog::open(catalog_path)),
        tape_id_(tape_id),
        run_id_(run_id),
        archive_size_(archive_size),
        room_(room),
        empty_tape_room_(empty_tape_room),
        sealing_(sealing),
        progress_(progress) {}

  void run(std::vector<Candidate> candidates, BoundedQueue<ArchiveJob>& out,
           HashStageResult& result) {
    try {
      produce(std::move(candidates), out, result);
    } catch (...) {
      result.error = std::current_exception();
    }
    out.close();
  }

 private:
  void produce(std::vector<Candidate> candidates, BoundedQueue<ArchiveJob>& out,
               HashStageResult& result) {
    ArchiveJob job;
    format::PaxLayout layout;
    std::uint64_t used = 0;  // tape bytes of the archives already emitted
    auto emit = [&]() -> bool {
      if (job.members.empty()) return true;
      job.plain_size = layout.finished_size();
      used += archive_footprint(job.plain_size);
      if (transaction_) transaction_->commit();
      transaction_.reset();
      bool accepted = out.push(std::move(job));
      job = ArchiveJob{};
      layout = format::PaxLayout{};
      return accepted;
    };
    for (auto& candidate : candidates) {
      if (out.cancelled()) return;
      std::optional<Member> member = prepare(candidate, result.report);
      if (!member) continue;
      std::uint64_t member_size =
          format::pax_header_size(member->info) + round_up(member->info.size);
      if (archive_footprint(member_size + format::kTarEndOfArchiveSize) > empty_tape_room_) {
        throw Error(member->path + " (" + format_size(member->info.size) +
                    ") is larger than a whole tape; it cannot be backed up");
      }
      std::uint64_t grown = layout.position() + member_size;
      if (!job.members.empty() && grown > archive_size_) {
        if (!emit()) return;
      }
      if (used + archive_footprint(layout.position() + member_size +
                                   format::kTarEndOfArchiveSize) >
          room_) {
        result.tape_filled = true;
        break;
      }
      member->offsets = layout.add(member->info);
      job.members.push_back(std::move(*member));
    }
    emit();
  }

  static std::uint64_t round_up(std::uint64_t n) {
    return (n + format::kTarBlockSize - 1) / format::kTarBlockSize * format::kTarBlockSize;
  }

  // Tape bytes an archive of this plaintext size takes with its index (an
  // index is small next to a GiB archive; one MiB stands in for it).
  std::uint64_t archive_footprint(std::uint64_t plain_size) const {
    return sealed_size(sealing_, 512, plain_size) + (1 << 20);
  }

  std::optional<Member> prepare(const Candidate& candidate, HashReport& report) {
    Member member;
    member.path = candidate.path;
    std::string why;
    if (!candidate.version) {
      if (!transaction_) transaction_.emplace(catalog_.database());
      auto hashed = hash_path(candidate.path, why);
      if (!hashed) {
        ++(why == "changed while being read" ? report.unstable : report.unreadable);
        progress_.warning(candidate.path + ": " + why + "; not backed up this time");
        return std::nullopt;
      }
      auto recorded = catalog_.record_version(candidate.file_id, hashed->version, run_id_);
      catalog_.clear_dirty(candidate.file_id);
      ++report.files;
      report.bytes += hashed->version.size;
      if (recorded.created) ++report.new_versions;
      progress_.advance(0, 0, candidate.path);
      auto version = catalog_.version(recorded.id);
      if (!version || version->copies >= version->goal || on_this_tape(recorded.id))
        return std::nullopt;
      member.version = *version;
      member.identity = hashed->identity;
    } else {
      member.version = *candidate.version;
      struct stat st {};
      if (::lstat(candidate.path.c_str(), &st) != 0) return std::nullopt;
      if (static_cast<std::uint64_t>(st.st_size) != member.version.size &&
          member.version.kind == catalog::VersionKind::kFile)
        return std::nullopt;
      if (to_ns(st.st_mtim) != member.version.attrs.mtime_ns) return std::nullopt;
      member.identity = {static_cast<std::uint64_t>(st.st_size), to_ns(st.st_mtim),
                         to_ns(st.st_ctim)};
    }
    member.info = member_info(member.version, member.path);
    return member;
  }

  bool on_this_tape(Id version_id) {
    for (const auto& replica : catalog_.copies_of(version_id))
      if (replica.tape.id == tape_id_) return true;
    return false;
  }

  catalog::Catalog catalog_;
  Id tape_id_;
  Id run_id_;
  std::uint64_t archive_size_;
  std::uint64_t room_;
  std::uint64_t empty_tape_room_;
  const Sealing& sealing_;
  Progress& progress_;
  std::optional<sqlite::Transaction> transaction_;
};

// ------------------------------------------------------------ write stage

struct WrittenArchive {
  catalog::ArchiveRow row;
  std::vector<catalog::CopyRow> copies;
  std::uint64_t plain_bytes = 0;
};

class WriteSession {
 public:
  WriteSession(catalog::Catalog& catalog, tape::Drive& drive, catalog::TapeRow tape, Id run_id,
               const Sealing& sealing, const BackupOptions& options, Progress& progress)
      : catalog_(catalog),
        drive_(drive),
        tape_(std::move(tape)),
        run_id_(run_id),
        sealing_(sealing),
        options_(options),
        progress_(progress),
        record_size_(static_cast<std::size_t>(tape_.record_size)) {}

  struct Outcome {
    std::vector<WrittenArchive> archives;
    bool tape_full = false;
    std::uint64_t not_copied = 0;
  };

  Outcome run(BoundedQueue<ArchiveJob>& jobs) {
    position_at_append_point();
    Outcome outcome;
    std::int64_t file = tape_.append_file;
    std::uint64_t bytes_used = tape_.bytes_used;
    progress_.phase("write " + tape_.serial, 0, 0);
    while (auto job = jobs.pop()) {
      std::uint64_t start_block = drive_.tell();
      try {
        WrittenArchive written = write_archive(*job, file, outcome.not_copied);
        bytes_used += written.row.cipher_bytes + index_bytes_;
        outcome.archives.push_back(std::move(written));
        file += 2;
      } catch (const tape::TapeError& e) {
        // The archive is abandoned; the trailing index goes where it began,
        // and the files go to the next tape.
        progress_.warning(tape_.serial + ": " + e.what() + "; archive abandoned");
        drive_.locate(start_block);
        outcome.tape_full = true;
        jobs.cancel();
        break;
      }
      if (early_warning_) {
        outcome.tape_full = true;
        jobs.cancel();
        break;
      }
    }
    commit(outcome, file, bytes_used);
    return outcome;
  }

 private:
  void position_at_append_point() {
    if (tape_.append_block) {
      drive_.locate(*tape_.append_block);
    } else {
      drive_.rewind();
      drive_.space_filemarks_forward(static_cast<std::uint32_t>(tape_.append_file));
    }
  }

  format::IndexHeader index_header(format::IndexKind kind, std::int64_t index_file) {
    format::IndexHeader header;
    header.kind = kind;
    header.serial = tape_.serial;
    header.record_size = tape_.record_size;
    header.generation = static_cast<std::uint64_t>(index_file);
    header.index_file = static_cast<std::uint64_t>(index_file);
    header.archive_file = kind == format::IndexKind::kArchive ? index_file + 1 : 0;
    header.catalog_id = catalog_.catalog_id();
    header.created = format::format_utc(now_ns() / 1000000000);
    header.encrypted = sealing_.mode != Sealing::Mode::kNone;
    return header;
  }

  WrittenArchive write_archive(const ArchiveJob& job, std::int64_t index_file,
                               std::uint64_t& not_copied) {
    // The archive's encryptor is made first, holding its header, so that H
    // is known to the index written before it.
    std::uint64_t index_block = drive_.tell();
    ScratchFile index_path(temp_directory(options_.temp_dir), "index");
    std::optional<TapeFileWriter> archive_writer;
    std::uint64_t header_length = 0;
    {
      // Measure H with a writer whose output goes nowhere (same recipients:
      // the header length only depends on the stanza shapes).
      MemorySink discard;
      if (sealing_.mode == Sealing::Mode::kRecipients) {
        crypto::AgeEncryptor probe(discard, sealing_.recipients);
        header_length = probe.header_length();
      } else if (sealing_.mode == Sealing::Mode::kPassphrase) {
        header_length = passphrase_header_length();
      }
    }
    format::ArchiveRecord record;
    record.tape_file = static_cast<std::uint64_t>(index_file + 1);
    record.age_header_length = header_length;
    record.plaintext_size = job.plain_size;
    record.ciphertext_size = sealed_size(sealing_, header_length, job.plain_size);
    record.member_count = job.members.size();
    build_index(index_path.path(), index_header(format::IndexKind::kArchive, index_file), job,
                record, index_block);

    WrittenFile index = write_file_to_tape(drive_, record_size_, sealing_, index_path.path());
    index_bytes_ = index.bytes_on_tape;
    early_warning_ = early_warning_ || index.early_warning;
    std::uint64_t first_block = drive_.tell();
    if (first_block != record.first_block)
      throw Error("internal error: archive starts at block " + std::to_string(first_block) +
                  ", index said " + std::to_string(record.first_block));

    archive_writer.emplace(drive_, record_size_, sealing_, false);
    if (archive_writer->header_length() != header_length)
      throw Error("internal error: age header length changed");
    WrittenArchive written;
    written.row.tape_id = tape_.id;
    written.row.index_file = index_file;
    written.row.index_block = index_block;
    written.row.archive_file = index_file + 1;
    written.row.first_block = first_block;
    written.row.encrypted = sealing_.mode != Sealing::Mode::kNone;
    written.row.age_header_len = header_length;
    written.row.plain_bytes = job.plain_size;
    written.row.members = job.members.size();
    written.row.run_id = run_id_;

    format::PaxWriter tar(archive_writer->sink());
    Bytes buffer(kCopyBuffer);
    for (const auto& member : job.members) {
      bool good = write_member(tar, member, buffer);
      progress_.advance(member.info.size, 1, member.path);
      if (!good) {
        ++not_copied;
        continue;
      }
      catalog::CopyRow copy;
      copy.version_id = member.version.id;
      copy.header_offset = member.offsets.header_offset;
      copy.data_offset = member.offsets.data_offset;
      written.copies.push_back(copy);
      written.plain_bytes += member.info.size;
    }
    tar.finish();
    archive_writer->close();
    if (archive_writer->bytes_on_tape() != record.ciphertext_size)
      throw Error("internal error: archive is " + std::to_string(archive_writer->bytes_on_tape()) +
                  " bytes, index said " + std::to_string(record.ciphertext_size));
    written.row.cipher_bytes = archive_writer->bytes_on_tape();
    written.row.written_at_ns = now_ns();
    early_warning_ = early_warning_ || archive_writer->early_warning();
    return written;
  }

  // scrypt stanzas have a fixed shape, so any passphrase gives the same H;
  // measuring with a cheap work factor avoids a second expensive scrypt.
  std::uint64_t passphrase_header_length() {
    MemorySink discard;
    crypto::AgeEncryptOptions cheap;
    cheap.work_factor = crypto::kScryptWorkFactor;
    crypto::AgeEncryptor probe(discard, *sealing_.passphrase, cheap);
    return probe.header_length();
  }

  // Writes the index, then fixes its archive's first block: that depends on
  // the index's own size, so it is settled by rewriting until stable.
  void build_index(const std::string& path, const format::IndexHeader& header,
                   const ArchiveJob& job, format::ArchiveRecord& record,
                   std::uint64_t index_block) {
    {
      format::IndexWriter writer(path, header);
      for (const auto& member : job.members) writer.add_member({member.info, member.offsets});
      writer.set_archive(record);
      catalog_.copy_into(writer.database());
      writer.finish();
    }
    for (int attempt = 0; attempt < 4; ++attempt) {
      std::uint64_t size = std::filesystem::file_size(path);
      std::uint64_t sealed = sealed_size(sealing_, index_header_length(), size);
      std::uint64_t first_block = index_block + format::record_count(sealed, record_size_) + 1;
      if (first_block == record.first_block) return;
      record.first_block = first_block;
      sqlite::Database db(path, sqlite::OpenMode::kReadWrite);
      db.exec("PRAGMA journal_mode = MEMORY");
      db.prepare("UPDATE archive SET first_block = ?").bind(1, first_block).run();
    }
    throw Error("internal error: index size does not settle");
  }

  std::uint64_t index_header_length() {
    if (sealing_.mode == Sealing::Mode::kNone) return 0;
    if (!index_header_length_) {
      MemorySink discard;
      if (sealing_.mode == Sealing::Mode::kRecipients) {
        crypto::AgeEncryptor probe(discard, sealing_.recipients);
        index_header_length_ = probe.header_length();
      } else {
        index_header_length_ = passphrase_header_length();
      }
    }
    return *index_header_length_;
  }

  // Streams one member; false if the file no longer matches what was hashed
  // (then the member is filled to its declared size and not counted).
  bool write_member(format::PaxWriter& tar, const Member& member, Bytes& buffer) {
    if (member.info.type == format::MemberType::kSymlink) {
      tar.add_symlink(member.info);
      return true;
    }
    tar.begin_file(member.info);
    std::uint64_t remaining = member.info.size;
    bool good = true;
    crypto::Blake2b256 rehash;
    int raw = ::open(member.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    UniqueFd fd(raw);
    struct stat before {};
    if (raw < 0 || ::fstat(raw, &before) != 0 ||
        static_cast<std::uint64_t>(before.st_size) != member.identity.size ||
        to_ns(before.st_mtim) != member.identity.mtime_ns) {
      good = false;
    } else {
      ::posix_fadvise(raw, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    while (remaining > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, buffer.size()));
      ssize_t n = good ? ::read(raw, buffer.data(), want) : 0;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Shrunk or unreadable: keep the tar well-formed, drop the copy.
        good = false;
        std::memset(buffer.data(), 0, want);
        n = static_cast<ssize_t>(want);
      }
      ByteSpan chunk(buffer.data(), static_cast<std::size_t>(n));
      if (options_.paranoid && good) rehash.update(chunk);
      tar.write_data(chunk);
      remaining -= static_cast<std::uint64_t>(n);
    }
    tar.end_file();
    if (good) {
      struct stat after {};
      good = ::fstat(raw, &after) == 0 &&
             static_cast<std::uint64_t>(after.st_size) == member.identity.size &&
             to_ns(after.st_mtim) == member.identity.mtime_ns &&
             to_ns(after.st_ctim) == to_ns(before.st_ctim);
    }
    if (good && options_.paranoid) good = rehash.finish() == member.version.hash;
    if (!good)
      progress_.warning(member.path + " changed between hashing and writing; not copied to " +
                        tape_.serial);
    return good;
  }

  // Adds the session's archives and copies, writes the trailing index from
  // inside that transaction, and commits once the tape holds it.
  void commit(const Outcome& outcome, std::int64_t trailing_file, std::uint64_t bytes_used) {
    std::uint64_t trailing_block = drive_.tell();
    auto transaction = catalog_.transaction();
    for (const auto& archive : outcome.archives) {
      Id archive_id = catalog_.add_archive(archive.row);
      for (auto copy : archive.copies) {
        copy.archive_id = archive_id;
        catalog_.add_copy(copy);
      }
    }
    catalog::TapeRow tape = tape_;
    tape.append_file = trailing_file;
    tape.append_block = trailing_block;
    tape.bytes_used = bytes_used;
    tape.written_at_ns = now_ns();
    tape.state = outcome.tape_full ? catalog::TapeState::kFull : catalog::TapeState::kOpen;
    catalog_.update_tape(tape);
    write_trailing_index(catalog_, drive_, tape, sealing_, temp_directory(options_.temp_dir));
    transaction.commit();
  }

 public:
  static void write_trailing_index(catalog::Catalog& catalog, tape::Drive& drive,
                                   const catalog::TapeRow& tape, const Sealing& sealing,
                                   const std::string& temp_dir) {
    ScratchFile path(temp_dir, "trailing");
    format::IndexHeader header;
    header.kind = format::IndexKind::kTrailing;
    header.serial = tape.serial;
    header.record_size = tape.record_size;
    header.generation = static_cast<std::uint64_t>(tape.append_file);
    header.index_file = static_cast<std::uint64_t>(tape.append_file);
    header.catalog_id = catalog.catalog_id();
    header.created = format::format_utc(now_ns() / 1000000000);
    header.encrypted = sealing.mode != Sealing::Mode::kNone;
    {
      format::IndexWriter writer(path.path(), header);
      catalog.copy_into(writer.database());
      writer.finish();
    }
    write_file_to_tape(drive, static_cast<std::size_t>(tape.record_size), sealing, path.path());
  }

 private:
  catalog::Catalog& catalog_;
  tape::Drive& drive_;
  catalog::TapeRow tape_;
  Id run_id_;
  const Sealing& sealing_;
  const BackupOptions& options_;
  Progress& progress_;
  std::size_t record_size_;
  std::optional<std::uint64_t> index_header_length_;
  std::uint64_t index_bytes_ = 0;
  bool early_warning_ = false;
};

// ------------------------------------------------------------ planning

std::vector<Candidate> candidates_for(catalog::Catalog& catalog, Id tape_id) {
  std::vector<Candidate> out;
  catalog.for_each_dirty([&](const catalog::FileRef& ref) {
    out.push_back({ref.path, ref.file_id, std::nullopt});
  });
  catalog.for_each_pending(tape_id, [&](const catalog::PendingVersion& pending) {
    out.push_back({pending.path, pending.version.file_id, pending.version});
  });
  std::stable_sort(out.begin(), out.end(),
                   [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  return out;
}

std::uint64_t safety_margin(const catalog::Catalog& catalog, std::uint64_t capacity,
                            std::uint64_t record_size) {
  // Room for the trailing index (a catalog copy) and slack for estimates.
  std::error_code ignored;
  std::uint64_t catalog_size = std::filesystem::file_size(catalog.path(), ignored);
  if (ignored) catalog_size = 0;
  return capacity / 100 + 2 * catalog_size + 8 * record_size + (1 << 20);
}

std::string next_serial(catalog::Catalog& catalog, tape::Library& library,
                        const std::string& prefix) {
  auto in_library = library.serials();
  for (int n = 1; n < 100000; ++n) {
    char digits[8];
    std::snprintf(digits, sizeof digits, "%05d", n);
    std::string serial = prefix + digits;
    if (catalog.tape_by_serial(serial)) continue;
    if (std::find(in_library.begin(), in_library.end(), serial) != in_library.end()) continue;
    return serial;
  }
  throw Error("no free tape serial with prefix " + prefix);
}

}  // namespace

catalog::TapeRow label_tape(catalog::Catalog& catalog, tape::Drive& drive,
                            const std::string& serial, const LabelOptions& options,
                            const WriterKeys& keys) {
  tape::check_serial(serial);
  if (catalog.tape_by_serial(serial))
    throw Error("tape " + serial + " is already in the catalog; labelling it again would lose it");
  Sealing sealing = sealing_for(catalog, keys);
  catalog::CatalogConfig config = catalog.config();

  format::LabelInfo label;
  label.serial = serial;
  label.record_size = config.record_size;
  label.labelled = format::format_utc(now_ns() / 1000000000);
  label.encryption = label_encryption(sealing);
  label.recipients = config.recipients;
  label.catalog_id = catalog.catalog_id();
  format::ArchaeologyExtras extras;
  extras.binary_path = options.binary_path;
  extras.source_tarball_path = options.source_tarball_path;

  drive.rewind();
  std::uint64_t label_bytes = 0;
  {
    tape::RecordWriter records(drive, static_cast<std::size_t>(config.record_size));
    format::write_archaeology(records, label, extras);
    records.close();
    label_bytes = records.bytes_written();
  }
  catalog::TapeRow tape;
  tape.serial = serial;
  tape.capacity = options.capacity;
  tape.record_size = config.record_size;
  tape.encrypted = sealing.mode != Sealing::Mode::kNone;
  tape.state = catalog::TapeState::kLabelled;
  tape.append_file = 1;
  tape.append_block = drive.tell();
  tape.bytes_used = label_bytes;
  tape.labelled_at_ns = now_ns();
  auto transaction = catalog.transaction();
  tape.id = catalog.add_tape(tape);
  WriteSession::write_trailing_index(catalog, drive, tape, sealing, temp_directory({}));
  transaction.commit();
  return *catalog.tape(tape.id);
}

BackupReport backup(catalog::Catalog& catalog, tape::Library& library,
                    const BackupOptions& options, const WriterKeys& keys, Progress& progress) {
  BackupReport report;
  Sealing sealing = sealing_for(catalog, keys);
  if (options.copies) {
    if (*options.copies < 1) throw Error("--copies must be at least 1");
    for (const auto& root : options.roots) catalog.set_copy_goal(root, *options.copies);
  }
  Id run_id = catalog.begin_run(catalog::RunKind::kBackup, options.roots);
  report.scan = scan(catalog, options.roots, options.walk, run_id, progress);
  std::uint64_t archive_size = options.archive_size ? options.archive_size : default_archive_size();

  std::vector<std::string> exhausted;  // tapes this run found no room or work on
  for (int round = 0; round < 10000; ++round) {
    // A tape that is not full and is in the library; else a new one.
    std::optional<catalog::TapeRow> target;
    auto in_library = library.serials();
    for (const auto& tape : catalog.tapes()) {
      if (tape.state == catalog::TapeState::kFull || tape.state == catalog::TapeState::kRetired)
        continue;
      if (std::find(exhausted.begin(), exhausted.end(), tape.serial) != exhausted.end()) continue;
      if (std::find(in_library.begin(), in_library.end(), tape.serial) == in_library.end())
        continue;
      target = tape;
      break;
    }
    bool work_left = catalog.dirty_count() > 0;
    if (!work_left) {
      catalog.for_each_pending(target ? target->id : 0,
                               [&](const catalog::PendingVersion&) { work_left = true; });
    }
    if (!work_left) {
      if (!target) break;
      // Nothing for this tape; another tape may still need copies.
      bool any = false;
      catalog.for_each_pending(0, [&](const catalog::PendingVersion&) { any = true; });
      exhausted.push_back(target->serial);
      if (!any) break;
      continue;
    }
    tape::Drive* drive = nullptr;
    if (!target) {
      std::string serial = next_serial(catalog, library, options.serial_prefix);
      drive = &library.load(serial);
      target = label_tape(catalog, *drive, serial, options.label, keys);
    } else {
      drive = &library.load(target->serial);
    }
    std::uint64_t margin = safety_margin(catalog, target->capacity, target->record_size);
    std::uint64_t empty_room =
        target->capacity > margin + (1 << 20) ? target->capacity - margin - (1 << 20) : 0;
    std::uint64_t used = target->bytes_used;
    std::uint64_t room = target->capacity > used + margin ? target->capacity - used - margin : 0;

    BoundedQueue<ArchiveJob> jobs(1);
    HashStageResult hashed;
    HashStage stage(catalog.path(), target->id, run_id, archive_size, room, empty_room, sealing,
                    progress);
    std::vector<Candidate> candidates = candidates_for(catalog, target->id);
    std::thread hasher([&] { stage.run(std::move(candidates), jobs, hashed); });
    WriteSession::Outcome outcome;
    try {
      WriteSession session(catalog, *drive, *target, run_id, sealing, options, progress);
      outcome = session.run(jobs);
    } catch (...) {
      jobs.cancel();
      hasher.join();
      throw;
    }
    hasher.join();
    if (hashed.error) std::rethrow_exception(hashed.error);
    report.hash.files += hashed.report.files;
    report.hash.bytes += hashed.report.bytes;
    report.hash.new_versions += hashed.report.new_versions;
    report.hash.unreadable += hashed.report.unreadable;
    report.hash.unstable += hashed.report.unstable;
    report.not_copied += outcome.not_copied;
    report.archives += outcome.archives.size();
    for (const auto& archive : outcome.archives) {
      report.copies += archive.copies.size();
      report.bytes += archive.plain_bytes;
    }
    if (report.tapes.empty() || report.tapes.back() != target->serial)
      report.tapes.push_back(target->serial);
    if (hashed.report.unreadable + hashed.report.unstable > 0 && outcome.archives.empty() &&
        !hashed.tape_filled && !outcome.tape_full) {
      // Only files that cannot be read are left: stop rather than loop.
      break;
    }
    if ((hashed.tape_filled || outcome.tape_full) && !outcome.tape_full) {
      catalog.set_tape_state(target->id, catalog::TapeState::kFull);
    }
    if (outcome.archives.empty() && !hashed.tape_filled && !outcome.tape_full)
      exhausted.push_back(target->serial);
  }
  catalog.finish_run(run_id);
  catalog.for_each_pending(0, [&](const catalog::PendingVersion&) { ++report.below_goal; });
  return report;
}

}  // namespace mixtape::backup
