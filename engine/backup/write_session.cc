#include "engine/backup/write_session.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mixtape::backup {

// One tape being written during a session, with its drive's worker.
struct WriteSession::Lane {
  Lane(const Target& t, std::optional<catalog::IndexMark> base)
      : out{t, {}, false, false, t.tape.append_file, 0, std::nullopt, false},
        committed_base(std::move(base)),
        stream(*t.drive, static_cast<std::size_t>(t.tape.record_size)) {}

  const std::string& serial() const { return out.target.tape.serial; }
  // The last archive index that stays on tape: the next one holds the
  // catalog's changes since it.
  std::optional<catalog::IndexMark> base() const {
    return pending.empty() ? committed_base : pending.back().mark;
  }

  LaneOutcome out;
  std::vector<WrittenArchive> pending;  // on tape, not committed yet
  std::optional<catalog::IndexMark> committed_base;
  bool writing = true;  // takes the next archive
  // Something was written since the tape last ended in a trailing index
  // (which is then gone, overwritten): it needs a new one.
  bool unsettled = false;
  // The archive in progress.
  std::uint64_t index_block = 0;
  ArchiveIndex index;
  format::WrittenIndex written_index;
  DriveStream stream;  // last: its worker stops before the rest goes
};

WriteSession::WriteSession(catalog::Writer& catalog, std::vector<Target> targets, Id run_id,
                           const Sealing& sealing, std::uint64_t age_header_length,
                           const BackupOptions& options, Progress& progress)
    : catalog_(catalog),
      run_id_(run_id),
      sealing_(sealing),
      age_header_length_(age_header_length),
      options_(options),
      progress_(progress) {
  for (const auto& target : targets)
    lanes_.push_back(std::make_unique<Lane>(target, catalog_.index_mark(target.tape.id)));
}

WriteSession::~WriteSession() = default;

WriteSession::Outcome WriteSession::write(BoundedQueue<ArchiveJob>& jobs) {
  Outcome outcome;
  std::string serials;
  for (const auto& lane : lanes_) serials += (serials.empty() ? "" : "+") + lane->serial();
  progress_.tape(serials);
  for (auto& lane : lanes_) {
    Lane* l = lane.get();
    l->stream.worker.submit([l] { position_at_append_point(*l); });
  }
  for (auto& lane : lanes_) {
    lane->stream.worker.wait();
    if (lane->stream.worker.failed()) drop(*lane, std::nullopt);
  }
  auto writing = [&] {
    return std::any_of(lanes_.begin(), lanes_.end(), [](const auto& l) { return l->writing; });
  };
  while (writing()) {
    auto job = jobs.pop();
    if (!job) break;
    // Only once there is more to write: the session's end commits anyway.
    if (options_.commit_every && since_checkpoint_ >= options_.commit_every) {
      checkpoint(outcome);
      if (!writing()) break;
    }
    write_archive(*job, outcome);
  }
  outcome.source_bytes = source_bytes_;
  return outcome;
}

void WriteSession::commit(Outcome& outcome) {
  bool any = false;
  for (auto& lane : lanes_) {
    if (lane->out.positioned && !lane->unsettled && lane->pending.empty()) {
      // The tape still ends in the trailing index of its last commit.
      if (lane->out.full)
        catalog_.set_tape_state(lane->out.target.tape.id, catalog::TapeState::kFull);
      lane->out.committed = true;
      continue;
    }
    any = commit_lane(*lane, outcome) || any;
  }
  for (auto& lane : lanes_) outcome.lanes.push_back(std::move(lane->out));
  if (any) return;
  // What was learnt about the files is true whatever became of the tapes.
  auto transaction = catalog_.transaction();
  mark_files(outcome);
  transaction.commit();
}

void WriteSession::position_at_append_point(Lane& lane) {
  const catalog::TapeRow& tape = lane.out.target.tape;
  tape::Drive& drive = lane.stream.drive;
  // The label first: a drive holding another cartridge than the one the
  // catalog appends to (a swapped --device list) must not be written.
  check_tape_identity(drive, tape);
  if (tape.append_block) {
    drive.locate(*tape.append_block);
  } else {
    drive.rewind();
    drive.space_filemarks_forward(static_cast<std::uint32_t>(tape.append_file));
  }
  lane.stream.position = drive.tell();
  lane.out.trailing_block = lane.stream.position;
  lane.out.positioned = true;
}

// The lane takes no more archives; the one in progress (if any, starting at
// `abandoned_from`) is given up and the trailing index goes where it began.
// The physical end only makes the tape full; any other write error drops
// the tape from the session, and a media error leaves it full too: a
// cartridge that failed a write takes no more.
void WriteSession::drop(Lane& lane, std::optional<std::uint64_t> abandoned_from) {
  lane.writing = false;
  if (abandoned_from) lane.out.trailing_block = *abandoned_from;
  std::optional<tape::TapeError> error = lane.stream.worker.error();
  if (!error) return;
  if (error->kind() == tape::TapeErrorKind::kPhysicalEnd) {
    lane.out.full = true;
    progress_.warning(lane.serial() + ": " + error->what() + "; the archive goes to the next tape");
    return;
  }
  lane.out.failure = error;
  if (error->kind() == tape::TapeErrorKind::kMediaError) {
    lane.out.full = true;
    progress_.warning(lane.serial() + ": " + error->what() +
                      "; the archive is abandoned and goes to the next tape, and " + lane.serial() +
                      " takes no more writes");
  } else {
    progress_.warning(lane.serial() + ": " + error->what() + "; its archive is abandoned");
  }
}

// Each writing tape gets the job's index, then the archive. A tape whose
// index reaches early warning does not start the archive (it is full).
void WriteSession::write_archive(const ArchiveJob& job, Outcome& outcome) {
  format::ArchiveRecord base;
  base.age_header_length = age_header_length_;
  base.plaintext_size = job.plain_size;
  base.ciphertext_size = sealing_.sealed_size(age_header_length_, job.plain_size);
  base.member_count = job.members.size();
  std::vector<format::IndexedMember> members;
  members.reserve(job.members.size());
  for (const auto& member : job.members) members.push_back({member.info, member.offsets});

  // The indexes differ per tape (serial, file numbers, first block, what
  // changed since the tape's previous index); they are built here, where
  // the catalog connection is, and written by every drive at once.
  std::vector<Lane*> indexed;
  for (auto& lane : lanes_) {
    if (!lane->writing) continue;
    Lane* l = lane.get();
    l->index_block = l->stream.position;
    format::ArchiveRecord record = base;
    record.tape_file = static_cast<std::uint64_t>(l->out.file + 1);
    ArchiveIndexPlace place{&l->out.target.tape, l->out.file, l->index_block, l->base()};
    l->index = build_archive_index(catalog_, place, members, record, sealing_, age_header_length_,
                                   temp_directory(options_.temp_dir));
    l->unsettled = true;
    l->stream.worker.submit([this, l] {
      l->written_index = format::write_index_to_tape(l->stream.drive, l->stream.record_size,
                                                     sealing_, l->index.file->path());
      l->stream.position = l->stream.drive.tell();
    });
    indexed.push_back(l);
  }
  std::vector<Lane*> taking;
  for (Lane* l : indexed) {
    l->stream.worker.wait();
    l->index.file.reset();
    if (l->stream.worker.failed()) {
      drop(*l, l->index_block);
    } else if (l->written_index.early_warning) {
      // The tape is full: the trailing index goes where this index began.
      l->writing = false;
      l->out.full = true;
      l->out.trailing_block = l->index_block;
    } else if (l->stream.position != l->index.first_block) {
      throw Error("internal error: archive on " + l->serial() + " starts at block " +
                  std::to_string(l->stream.position) + ", index said " +
                  std::to_string(l->index.first_block));
    } else {
      taking.push_back(l);
    }
  }
  if (taking.empty()) return;

  std::vector<DriveStream*> streams;
  for (Lane* l : taking) streams.push_back(&l->stream);
  tapes_taking_ = taking.size();
  FanOut fan(streams, chunks_);
  crypto::AgeEncryptOptions sealed_options;
  sealed_options.buffers = &age_buffers_;
  std::unique_ptr<crypto::AgeEncryptor> sealed = sealing_.encryptor(fan, sealed_options);
  if (sealed && sealed->header_length() != age_header_length_)
    throw Error("internal error: age header length changed");
  ByteSink& sink = sealed ? static_cast<ByteSink&>(*sealed) : fan;
  std::vector<catalog::CopyRow> copies;
  std::uint64_t plain_bytes = 0;
  try {
    format::PaxWriter tar(sink);
    if (buffer_.empty()) buffer_.resize(kCopyBuffer);
    for (const auto& member : job.members) {
      Copied copied = write_member(tar, sealed.get(), member);
      if (member.info.type == format::MemberType::kSymlink)
        progress_.advance(member.info.size * tapes_taking_, 0, member.path);
      progress_.advance(0, tapes_taking_, member.path);
      if (copied == Copied::kVanished) {
        outcome.vanished.insert(member.file_id);
        continue;
      }
      if (copied == Copied::kChanged) {
        ++outcome.not_copied;
        outcome.changed.insert(member.file_id);
        continue;
      }
      catalog::CopyRow copy;
      copy.version_id = member.version.id;
      copy.header_offset = member.offsets.header_offset;
      copy.data_offset = member.offsets.data_offset;
      copies.push_back(copy);
      plain_bytes += member.info.size;
    }
    tar.finish();
    sink.close();
  } catch (const FanOut::NoDriveLeft&) {
    // Every drive failed during the archive: dropped below.
  }
  for (Lane* l : taking) l->stream.worker.wait();
  for (Lane* l : taking) {
    if (l->stream.worker.failed()) {
      drop(*l, l->index_block);
      continue;
    }
    if (l->stream.archive_bytes != base.ciphertext_size)
      throw Error("internal error: archive on " + l->serial() + " is " +
                  std::to_string(l->stream.archive_bytes) + " bytes, index said " +
                  std::to_string(base.ciphertext_size));
    WrittenArchive written;
    written.index_bytes = l->written_index.bytes_on_tape;
    written.mark = l->index.mark;
    written.row.tape_id = l->out.target.tape.id;
    written.row.index_file = l->out.file;
    written.row.index_block = l->index_block;
    written.row.archive_file = l->out.file + 1;
    written.row.first_block = l->index.first_block;
    written.row.encrypted = sealing_.mode != Sealing::Mode::kNone;
    written.row.age_header_len = age_header_length_;
    written.row.plain_bytes = job.plain_size;
    written.row.members = job.members.size();
    written.row.run_id = run_id_;
    written.row.cipher_bytes = l->stream.archive_bytes;
    written.row.written_at_ns = now_ns();
    written.copies = copies;
    written.plain_bytes = plain_bytes;
    l->pending.push_back(std::move(written));
    l->out.file += 2;
    l->out.trailing_block = l->stream.position;
    if (l->stream.archive_early_warning) {
      l->writing = false;
      l->out.full = true;
    }
  }
  since_checkpoint_ += base.ciphertext_size;
}

// Commits every lane's archives so far, each tape ending in a trailing index
// for the time being, then points the lanes that go on writing back at it:
// the next index overwrites it.
void WriteSession::checkpoint(Outcome& outcome) {
  ++outcome.checkpoints;
  since_checkpoint_ = 0;
  bool committed = false;
  for (auto& lane : lanes_) {
    if (!lane->out.positioned || lane->pending.empty()) continue;
    committed = commit_lane(*lane, outcome) || committed;
    if (!lane->out.committed || !lane->writing) continue;
    Lane* l = lane.get();
    l->stream.worker.submit([l] {
      l->stream.drive.locate(l->out.trailing_block);
      l->stream.position = l->out.trailing_block;
    });
    l->stream.worker.wait();
    if (l->stream.worker.failed()) drop(*l, std::nullopt);
  }
  if (committed) {
    // Committed with the tapes' transactions: the next commit need not
    // repeat them.
    outcome.changed.clear();
    outcome.vanished.clear();
  }
}

// If the tape ends (or reports a media error) before the trailing index
// does, the last archive is given up and the trailing index written where
// its index began, and so on: a tape always ends in a trailing index, and
// dropped archives only leave their files for the next tape. A tape that
// cannot take even that (its drive is gone) keeps its catalog rows as they
// were.
bool WriteSession::commit_lane(Lane& lane, const Outcome& outcome) {
  if (!lane.out.positioned) return false;  // nothing was written: the tape is as it was
  const std::string& serial = lane.serial();
  std::uint64_t position = lane.out.trailing_block;
  for (;;) {
    try {
      commit_at(lane, outcome, position);
      lane.out.committed = true;
      return true;
    } catch (const tape::TapeError& e) {
      lane.out.committed = false;
      lane.writing = false;
      const bool medium = e.kind() == tape::TapeErrorKind::kPhysicalEnd ||
                          e.kind() == tape::TapeErrorKind::kMediaError;
      if (medium && !lane.pending.empty()) {
        progress_.warning(serial + ": cannot write the trailing index (" + e.what() +
                          "); the last archive goes to the next tape");
        position = lane.pending.back().row.index_block;
        lane.pending.pop_back();
        lane.out.full = true;
        lane.out.file -= 2;
        continue;
      }
      if (!lane.out.failure) lane.out.failure = e;
      lane.pending.clear();
      std::string what = serial + ": cannot write the trailing index (" + e.what() +
                         "); nothing written since its last commit is recorded for it";
      if (medium) {
        // The old trailing index was overwritten by this session: the
        // tape no longer ends in one, so nothing may append to it again.
        catalog_.set_tape_state(lane.out.target.tape.id, catalog::TapeState::kFull);
        what += ", and it takes no more writes; its archives are kept (mixtape verify --serial " +
                serial + ")";
      }
      progress_.warning(what);
      return false;
    }
  }
}

void WriteSession::mark_files(const Outcome& outcome) {
  // Hashed anew by the next run (the scan would notice anyway); the version
  // hashed in this run is what the file held until then.
  for (Id file_id : outcome.changed) catalog_.mark_dirty(file_id, run_id_);
  for (Id file_id : outcome.vanished) catalog_.mark_absent(file_id, run_id_);
}

void WriteSession::commit_at(Lane& lane, const Outcome& outcome, std::uint64_t trailing_block) {
  tape::Drive& drive = lane.stream.drive;
  catalog::TapeRow tape = lane.out.target.tape;
  // The committed catalog first; what this transaction adds goes in inside it.
  TrailingIndex trailing(catalog_, tape, lane.out.file, format::CatalogCopy::kFull, sealing_,
                         temp_directory(options_.temp_dir));
  drive.locate(trailing_block);
  auto transaction = catalog_.transaction();
  for (const auto& archive : lane.pending) {
    Id archive_id = catalog_.add_archive(archive.row);
    for (auto copy : archive.copies) {
      copy.archive_id = archive_id;
      catalog_.add_copy(copy);
    }
    tape.bytes_used += archive.row.cipher_bytes + archive.index_bytes;
  }
  mark_files(outcome);
  tape.append_file = lane.out.file;
  tape.append_block = trailing_block;
  tape.written_at_ns = now_ns();
  tape.state = lane.out.full ? catalog::TapeState::kFull : catalog::TapeState::kOpen;
  catalog_.update_tape(tape);
  if (!lane.pending.empty()) catalog_.set_index_mark(tape.id, lane.pending.back().mark);
  trailing.write(drive);
  transaction.commit();
  catalog_.drop_stale_tape_copies();
  // Committed: the tape's row and base are what the catalog now says.
  lane.out.target.tape = tape;
  lane.committed_base = lane.base();
  for (auto& archive : lane.pending) lane.out.archives.push_back(std::move(archive));
  lane.pending.clear();
  lane.out.trailing_block = trailing_block;
  lane.unsettled = false;
}

// Streams one member. If the file no longer matches what was hashed, or is
// gone, the member is filled to its declared size and no copy is recorded:
// the tar stays well-formed whatever happens to the source. With an
// encryptor (`direct`), the file is read straight into its batch, sparing
// a copy of every byte (the sink behind `tar` is that encryptor).
WriteSession::Copied WriteSession::write_member(format::PaxWriter& tar,
                                                crypto::AgeEncryptor* direct,
                                                const Member& member) {
  if (member.info.type == format::MemberType::kSymlink) {
    // The target was read when it was hashed; what goes on tape is
    // exactly the version's content, whatever the link says now.
    tar.add_symlink(member.info);
    return Copied::kYes;
  }
  tar.begin_file(member.info);
  std::uint64_t remaining = member.info.size;
  crypto::Blake2b256 rehash;
  int raw = open_source(member.path, O_RDONLY | O_NONBLOCK | O_NOATIME);
  if (raw < 0 && errno == EPERM) raw = open_source(member.path, O_RDONLY | O_NONBLOCK);
  // Deleted since it was hashed: as if the scan had not seen it, like a
  // file that vanishes before hashing; not a failure of the backup.
  bool vanished = raw < 0 && (errno == ENOENT || errno == ENOTDIR);
  UniqueFd fd(raw);
  struct stat before {};
  bool good = raw >= 0 && ::fstat(raw, &before) == 0 && S_ISREG(before.st_mode) &&
              identity_of(before) == member.identity;
  if (good) ::posix_fadvise(raw, 0, 0, POSIX_FADV_SEQUENTIAL);
  while (remaining > 0) {
    MutableByteSpan room = direct ? direct->buffer() : MutableByteSpan(buffer_);
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>({remaining, room.size(), kCopyBuffer}));
    ssize_t n = good ? ::read(raw, room.data(), want) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) source_bytes_ += static_cast<std::uint64_t>(n);
    if (n <= 0) {
      // Shrunk or unreadable: keep the tar well-formed, drop the copy.
      good = false;
      std::memset(room.data(), 0, want);
      n = static_cast<ssize_t>(want);
    }
    ByteSpan chunk(room.data(), static_cast<std::size_t>(n));
    progress_.advance(chunk.size() * tapes_taking_, 0, member.path);
    if (options_.paranoid && good) rehash.update(chunk);
    if (direct) {
      tar.data_written_directly(chunk.size());
      direct->commit(chunk.size());
    } else {
      tar.write_data(chunk);
    }
    remaining -= static_cast<std::uint64_t>(n);
  }
  tar.end_file();
  if (good) {
    struct stat after {};
    good = ::fstat(raw, &after) == 0 && identity_of(after) == member.identity;
  }
  if (good && options_.paranoid) good = rehash.finish() == member.version.hash;
  if (vanished) {
    progress_.warning(member.path + ": vanished before it was written; not backed up");
    return Copied::kVanished;
  }
  if (!good) {
    progress_.warning(member.path + " changed between hashing and writing; not copied");
    return Copied::kChanged;
  }
  return Copied::kYes;
}

}  // namespace mixtape::backup
