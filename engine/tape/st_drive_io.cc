// StDrive: reading and writing records and filemarks, and what st's errors
// mean (docs/TAPE.md, "StDrive: Linux st", has the table):
//  - read() or write() with more bytes than the drive's maximum block
//    length (READ BLOCK LIMITS) fails with EINVAL before anything moves.
//    A read asks for less (the limit is learnt); a write names the record
//    size, which the drive cannot take.
//  - read() returning 0 is a filemark or end of data: GMT_EOD tells them
//    apart.
//  - read() failing with EIO is end of data only when the drive confirms it:
//    GMT_EOD, or a space to end of data that does not move. EIO without
//    movement is also a reset (st's pos_unknown), NOT READY, or DATA PROTECT
//    (an encrypted record without its key): kPositionLost, or kMediaError for
//    a record the drive will not read, which is then passed as after a
//    medium error.
//  - after early warning, st refuses every other write with ENOSPC without
//    writing ("EOM Behaviour When Writing" in st.rst); the retry is let
//    through. Two ENOSPC in a row for one record mean the physical end.
//  - without direct I/O st writes asynchronously: write() returns at once
//    and the status comes back with the next call, even MTIOCGET (ENOSPC
//    for early warning, EIO for a failure). Every write is settled with
//    MTIOCGET before write_record returns, and a failure is put on the first
//    block the drive says is not on the tape (MTIOCPOS).
//  - records are written from page-aligned memory, so st can use direct I/O
//    (an unaligned record needs one more scatter-gather entry than its
//    pages, and the HBA may not have it).
#include <sys/mtio.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "engine/tape/st_drive_internal.h"

namespace mixtape::tape {

using st_detail::CommandTimer;
using st_detail::kind_of;
using st_detail::to_count;

namespace {

void check_record_size(const std::string& device, std::size_t size) {
  if (size == 0 || size > kMaxRecordSize) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    device + ": cannot write a record of " + std::to_string(size) +
                        " bytes (1 to " + std::to_string(kMaxRecordSize) + " allowed)");
  }
}

}  // namespace

// ------------------------------------------------------------ writing

WriteResult StDrive::write_record(ByteSpan data) {
  check_record_size(device_, data.size());
  if (page_aligned(data.data())) return write_block(data);
  bounce_.resize(data.size());
  std::memcpy(bounce_.data(), data.data(), data.size());
  return write_block(ByteSpan(bounce_.data(), data.size()));
}

WriteResult StDrive::write_record_gathered(std::span<const ByteSpan> pieces) {
  std::size_t size = 0;
  for (ByteSpan piece : pieces) size += piece.size();
  check_record_size(device_, size);
  bounce_.resize(size);
  std::size_t at = 0;
  for (ByteSpan piece : pieces) {
    std::memcpy(bounce_.data() + at, piece.data(), piece.size());
    at += piece.size();
  }
  return write_block(ByteSpan(bounce_.data(), size));
}

WriteResult StDrive::write_block(ByteSpan record) {
  ensure_ready();
  if (read_only_) {
    throw TapeError(TapeErrorKind::kWriteProtected, device_ + ": tape is write protected");
  }
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  const bool was_unflushed = unflushed_write_;
  int refused = 0;  // ENOSPC answers for this record
  // st is in its writing state from now on, even if the write fails, and
  // would add a filemark before the next repositioning.
  unflushed_write_ = true;
  for (;;) {
    ssize_t n = sys_.write(fd(), record.data(), record.size());
    if (n == static_cast<ssize_t>(record.size())) break;
    int error = n < 0 ? errno : EIO;
    if (error == EINTR) continue;
    if (error == ENOSPC && ++refused < 2) continue;  // st's alternation: retry once
    if (error == ENOSPC) {
      in_early_warning_ = true;
      fail(TapeErrorKind::kPhysicalEnd,
           "physical end of medium: cannot write block " + std::to_string(block), error, block);
    }
    if (error == EINVAL || error == EBUSY) {
      // Refused before anything moved: larger than the drive's maximum
      // block length (EINVAL), or than the HBA moves in one command (st
      // says EBUSY: "request was too large").
      unflushed_write_ = was_unflushed;
      fail(TapeErrorKind::kInvalidArgument,
           "the drive refuses a record of " + std::to_string(record.size()) + " bytes at block " +
               std::to_string(block) +
               ": larger than its maximum block length, or than the HBA transfers at once "
               "(mixtape's record size is at most " +
               std::to_string(kMaxWriteRecordSize) + " bytes for new tapes; docs/TAPE.md)",
           error, block);
    }
    if (error == EBADF) error = EACCES;  // opened read-only
    // st refuses a protected tape before it starts writing: nothing to flush.
    if (error == EACCES) unflushed_write_ = false;
    if (error == EIO) write_failed(block, error);
    fail(kind_of(error), "cannot write block " + std::to_string(block), error, block);
  }
  settle_write(block);
  at_eod_ = true;
  position_ = block + 1;
  ++stats_.records_written;
  stats_.bytes_written += record.size();
  if (refused > 0) in_early_warning_ = true;
  return {in_early_warning_};
}

// MTIOCGET waits for an asynchronous write and returns its status: ENOSPC
// when it met early warning (it was written), EIO when it failed. Either
// way the write has been settled when this returns or throws.
void StDrive::settle_write(std::uint64_t block) {
  for (int tries = 0; tries < 4; ++tries) {
    mtget status{};
    if (sys_.ioctl_get(fd(), status) == 0) {
      if (GMT_EOT(status.mt_gstat)) in_early_warning_ = true;
      return;
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (error == ENOSPC) {
      in_early_warning_ = true;
      continue;
    }
    if (error == EIO) write_failed(block, error);
    fail(TapeErrorKind::kDeviceError,
         "cannot read drive status (MTIOCGET) after writing block " + std::to_string(block), error,
         block);
  }
  fail(TapeErrorKind::kDeviceError,
       "the drive status after writing block " + std::to_string(block) + " keeps failing", EIO,
       block);
}

// A write (or a flush of what the drive buffered) failed. The drive's own
// position says which blocks are on the tape: with asynchronous writes the
// error may belong to an earlier record than the one being written.
void StDrive::write_failed(std::uint64_t block, int error) {
  std::optional<std::uint64_t> at = try_position();
  if (!at) {
    position_lost("cannot write block " + std::to_string(block) +
                      " (records written since the last filemark may not be on the tape)",
                  error, block);
  }
  position_ = *at;
  const std::uint64_t lost = std::min(*at, block);
  std::string what = "cannot write block " + std::to_string(lost);
  if (lost < block) {
    what +=
        " (the error came back with block " + std::to_string(block) + ": st wrote asynchronously)";
  }
  if (in_early_warning_) {
    fail(TapeErrorKind::kPhysicalEnd, "physical end of medium: " + what, error, lost);
  }
  fail(TapeErrorKind::kMediaError, what, error, lost);
}

WriteResult StDrive::write_filemarks(std::uint32_t count) {
  ensure_ready();
  if (count == 0) {
    flush_writes();
    return {in_early_warning_};
  }
  if (read_only_) {
    throw TapeError(TapeErrorKind::kWriteProtected, device_ + ": tape is write protected");
  }
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  if (operation(MTWEOF, to_count(count, device_)) != 0) {
    int error = errno;
    if (error == EIO) {
      std::optional<std::uint64_t> at = try_position();
      if (!at)
        position_lost("cannot write a filemark at block " + std::to_string(block), error, block);
      position_ = *at;
      if (*at < block) write_failed(block, error);
      if (in_early_warning_ || GMT_EOT(query_gstat())) error = ENOSPC;
    }
    fail(kind_of(error), "cannot write filemark at block " + std::to_string(block), error, block);
  }
  unflushed_write_ = false;
  at_eod_ = true;
  position_ = block + count;
  stats_.filemarks_written += count;
  if (GMT_EOT(query_gstat())) in_early_warning_ = true;
  return {in_early_warning_};
}

void StDrive::flush_writes() {
  if (!unflushed_write_ || !fd_) return;
  unflushed_write_ = false;
  if (operation(MTWEOF, 0) == 0) return;
  const int error = errno;
  if (error == EIO) {
    // After a reset st has forgotten the write (and adds no filemark for
    // it): nothing to flush. Otherwise writing zero filemarks made the drive
    // write what it buffered, and a medium error there belongs to a record
    // already acknowledged.
    if (!try_position()) return;
    write_failed(position_.value_or(0), error);
  }
  fail(kind_of(error), "cannot flush written records", error);
}

// ------------------------------------------------------------ reading

ReadResult StDrive::read_record(MutableByteSpan buffer) {
  ensure_ready();
  CommandTimer timer(stats_);
  const std::uint64_t block = position_ ? *position_ : query_position();
  bool may_relocate = true;
  for (;;) {
    // st refuses (EINVAL) a read larger than the drive's maximum block
    // length: ask for no more than the drive is known to take.
    const std::size_t count = std::min(buffer.size(), read_limit_);
    const bool direct = page_aligned(buffer.data());
    if (!direct) bounce_.resize(count);
    std::uint8_t* target = direct ? buffer.data() : bounce_.data();
    ssize_t n;
    do {
      n = sys_.read(fd(), target, count);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      if (!direct) std::memcpy(buffer.data(), target, static_cast<std::size_t>(n));
      position_ = block + 1;
      at_eod_ = false;
      ++stats_.records_read;
      stats_.bytes_read += static_cast<std::uint64_t>(n);
      return {ReadKind::kData, static_cast<std::size_t>(n)};
    }
    if (n == 0) {
      if (GMT_EOD(query_gstat())) {
        at_eod_ = true;
        return {ReadKind::kEndOfData, 0};
      }
      position_ = block + 1;
      at_eod_ = false;
      ++stats_.filemarks_read;
      return {ReadKind::kFilemark, 0};
    }
    const int error = errno;
    // Nothing moved: more than the drive's maximum block length (EINVAL;
    // drives report 8 MiB, IBM LTO, or 16 MiB - 1), more than the HBA
    // transfers at once (EBUSY), or more than st could allocate for its own
    // buffer (EOVERFLOW). Ask for less, down to the largest record mixtape
    // writes.
    if ((error == EINVAL || error == EBUSY || error == EOVERFLOW) && count > kMaxWriteRecordSize) {
      read_limit_ = std::max(kMaxWriteRecordSize, std::bit_floor(count - 1));
      continue;
    }
    if (error == EINVAL || error == EBUSY) {
      fail(TapeErrorKind::kInvalidArgument,
           "the drive refuses to read " + std::to_string(count) + " bytes at once at block " +
               std::to_string(block) +
               " (more than its maximum block length, or than the HBA transfers at once)",
           error, block);
    }
    if (error == ENOMEM) {
      position_ = block + 1;  // st has skipped the record
      fail(TapeErrorKind::kRecordTooLarge,
           "record at block " + std::to_string(block) + " is larger than the " +
               std::to_string(count) + "-byte read buffer" +
               (count < buffer.size() ? " (the most this drive reads at once)" : ""),
           error, block);
    }
    if (error == EIO) {
      if (std::optional<ReadResult> end = read_failed(block, may_relocate)) return *end;
      may_relocate = false;  // the drive is back at `block`: try once more
      continue;
    }
    position_.reset();
    fail(kind_of(error), "cannot read block " + std::to_string(block), error, block);
  }
}

// EIO from a read. End of data only if the drive confirms it; a reset is
// repaired once by locating the block again (nullopt: read again); anything
// else is an error.
std::optional<ReadResult> StDrive::read_failed(std::uint64_t block, bool may_relocate) {
  const std::string what = "cannot read block " + std::to_string(block);
  auto lost = [&](int error) -> std::optional<ReadResult> {
    if (may_relocate && operation(MTSEEK, to_count(block, device_)) == 0) {
      say(device_ + ": the drive lost its position (a bus or device reset?); it is at block " +
          std::to_string(block) + " again");
      position_ = block;
      return std::nullopt;
    }
    position_lost(what, error, block);
  };
  mtget status{};
  if (sys_.ioctl_get(fd(), status) != 0) return lost(errno);
  const unsigned long gstat = static_cast<unsigned long>(status.mt_gstat);
  if (!GMT_ONLINE(gstat)) {
    configured_ = false;
    if (GMT_DR_OPEN(gstat)) fail(TapeErrorKind::kNotLoaded, what + ": no tape", ENOMEDIUM, block);
    return lost(EIO);
  }
  if (GMT_EOD(gstat)) {  // st saw the blank check (after a filemark, or spacing)
    position_ = block;
    at_eod_ = true;
    return ReadResult{ReadKind::kEndOfData, 0};
  }
  std::optional<std::uint64_t> at = try_position();
  if (!at) return lost(errno);
  if (*at != block) {
    // A medium error: the drive has passed the bad block.
    position_ = *at;
    at_eod_ = false;
    ++stats_.media_errors;
    fail(TapeErrorKind::kMediaError, "media error reading block " + std::to_string(block), EIO,
         block);
  }
  // The drive did not move: a blank check where st had no filemark to go by
  // (a blank tape, or a read after a locate to end of data), or a record it
  // will not read. Ask the drive where its data ends.
  if (operation(MTEOM, 1) != 0) {
    const int error = errno;
    position_ = try_position();
    fail(TapeErrorKind::kMediaError,
         what +
             " (the drive did not move), and the drive cannot space to its end of data to "
             "tell whether the tape ends there",
         error, block);
  }
  const std::uint64_t end = query_position();
  if (end == block) {
    position_ = block;
    at_eod_ = true;
    return ReadResult{ReadKind::kEndOfData, 0};
  }
  // The data goes on: pass the record the drive refused, as after a medium
  // error, so reading can go on with the next one.
  ++stats_.media_errors;
  if (operation(MTSEEK, to_count(block + 1, device_)) != 0) {
    const int error = errno;
    position_ = try_position();
    fail(TapeErrorKind::kMediaError, what + " (the drive refused it without moving)", error, block);
  }
  position_ = block + 1;
  at_eod_ = false;
  throw TapeError(TapeErrorKind::kMediaError,
                  device_ + ": " + what +
                      ": the drive refused it without moving (DATA PROTECT: an encrypted "
                      "record without its key? or a damaged one), and the data goes on to block " +
                      std::to_string(end),
                  block);
}

}  // namespace mixtape::tape
