// Private to engine/restore: reading members of a loaded tape.
//
//   TapeCursor      the bytes of tape files, forward, knowing the block under
//                   the head; reaches a target by reading ahead or locating.
//   KeyCache        age payload keys per (tape, archive), shared by workers.
//   ArchiveStream   the plaintext of one archive from any offset: locates to
//                   the age chunk and decrypts from there.
//   MemberReader    one member: its tar headers checked against the
//                   catalog, its data hashed on the way to a RecallSink.
//   MemberPipeline  hashing and writing members' data on threads of their
//                   own, behind the thread that reads and decrypts them.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/format/format.h"
#include "engine/restore/restore.h"

namespace mixtape::restore::detail {

// Reads tape files forward. seek() reaches a byte of a tape file by reading
// and dropping records when that is no slower than a locate (across
// filemarks), else by one locate; read() then returns the file's bytes up
// to its filemark (or end of data), and 0 after it. The break-even is the
// drive's timing model's unless forward_read_limit (bytes) overrides it.
class TapeCursor final : public ByteSource {
 public:
  TapeCursor(tape::Drive& drive, std::optional<std::uint64_t> forward_read_limit);
  tape::Drive& drive() { return drive_; }
  // Re-learns the drive's position (after a load, a rewind, another user).
  void resync();
  void seek(std::uint64_t first_block, std::uint64_t record_size, std::uint64_t offset);
  std::size_t read(MutableByteSpan out) override;
  // Whether the last read() ended at end of data rather than a filemark.
  bool at_end_of_data() const { return at_eod_; }

 private:
  // Reads the record at next_block_ into buffer_; false at a filemark or EOD.
  bool read_record();

  tape::Drive& drive_;
  std::uint64_t forward_limit_;
  // One record, page-aligned and of the tape's record size (once a seek has
  // said it): a size the drive accepts and st reads straight into.
  tape::RecordBuffer buffer_;
  std::size_t record_size_ = 0;
  std::size_t have_ = 0;
  std::size_t pos_ = 0;
  std::optional<std::uint64_t> buffer_block_;  // block held in buffer_
  std::uint64_t next_block_ = 0;               // block under the head
  bool at_end_ = false;                        // the current file ended
  bool at_eod_ = false;
};

// At most `limit` bytes of a source (one tape file's ciphertext).
class LimitedSource final : public ByteSource {
 public:
  LimitedSource(ByteSource& source, std::uint64_t limit) : source_(source), left_(limit) {}
  std::size_t read(MutableByteSpan out) override;

 private:
  ByteSource& source_;
  std::uint64_t left_;
};

struct ArchiveKey {
  std::uint64_t header_length = 0;
  crypto::SecretArray<32> payload_key;
};

// Payload keys by (tape serial, archive file). Failures are kept too, so a
// wrong identity costs one header read per archive, not one per file.
class KeyCache {
 public:
  using Key = std::pair<std::string, std::int64_t>;
  std::optional<ArchiveKey> find(const Key& key, std::string* error);
  void put(const Key& key, const ArchiveKey& value);
  void put_error(const Key& key, const std::string& error);

 private:
  std::mutex mutex_;
  std::map<Key, ArchiveKey> keys_;
  std::map<Key, std::string> errors_;
};

// Plaintext of archives on the loaded tape, from any offset.
class ArchiveStream final : public ByteSource {
 public:
  ArchiveStream(TapeCursor& cursor, KeyCache& keys, const crypto::AgeDecryptKeys& identities,
                const RecallOptions& options);
  ~ArchiveStream() override;
  // Positions the stream at plaintext `offset` of `archive` on `tape`.
  void seek(const catalog::TapeRow& tape, const catalog::ArchiveRow& archive, std::uint64_t offset);
  std::size_t read(MutableByteSpan out) override;
  std::uint64_t position() const { return position_; }
  // Forgets the decryptor (after an error or when the cursor was moved).
  void reset();
  // The block holding plaintext offset `offset` of the current archive.
  std::uint64_t block_of(std::uint64_t offset) const;

 private:
  struct Pipeline;
  ArchiveKey key_for(const catalog::TapeRow& tape, const catalog::ArchiveRow& archive);
  void discard(std::uint64_t count);

  TapeCursor& cursor_;
  KeyCache& keys_;
  const crypto::AgeDecryptKeys& identities_;
  RecallOptions options_;
  std::unique_ptr<Pipeline> pipeline_;
  std::optional<std::pair<catalog::Id, std::int64_t>> current_;  // (tape id, archive file)
  format::ArchiveGeometry geometry_;
  std::uint64_t position_ = 0;
};

// A member could not be read from this copy. kMismatch: the tape holds
// something else than the catalog says (hash, name, size); kUnreadable: a
// media, decryption or format error; kMissing: the tape ends before it.
class MemberError : public RestoreError {
 public:
  enum class Kind { kMismatch, kUnreadable, kMissing };
  MemberError(Kind kind, const std::string& message) : RestoreError(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// An exception thrown by a RecallSink while a member was being read: the
// destination failed, not the copy (so no other copy is tried).
class SinkFailure {
 public:
  explicit SinkFailure(std::exception_ptr error) : error_(std::move(error)) {}
  [[noreturn]] void rethrow() const { std::rethrow_exception(error_); }

 private:
  std::exception_ptr error_;
};

// The stages after the tape, each on a thread of its own: a hashing thread
// checks each member's BLAKE2b-256 against the catalog, a writing thread
// gives its bytes to its RecallSink, commits it once the hash matched (or
// aborts it) and reports the outcome. The reading thread (the recall
// worker: tape, decryption, tar) hands bytes over in chunks from a fixed
// set, so what the stages hold is bounded: it waits for a free chunk when
// they fall behind, and meanwhile goes on with the next member.
//
// Per member, on the reading thread: begin() (after sink.begin()), then
// room()/add() for its bytes, then end() or fail(). The sink's write(),
// commit() and abort() are then called on the writing thread, in that
// order, and `done` last, once, with null (committed) or the error: a
// MemberError (the copy is bad), or a SinkFailure (the destination failed).
class MemberPipeline {
 public:
  using Done = std::function<void(std::exception_ptr error)>;
  using Progress = std::function<void(std::uint64_t bytes)>;

  explicit MemberPipeline(std::size_t chunks = 16, std::size_t chunk_size = std::size_t{1} << 20);
  // Finishes every member handed over, then stops the threads.
  ~MemberPipeline();
  MemberPipeline(const MemberPipeline&) = delete;
  MemberPipeline& operator=(const MemberPipeline&) = delete;

  // A member whose data follows; on_bytes reports bytes written.
  void begin(RecallSink& sink, const catalog::Hash& expected, Done done, Progress on_bytes = {});
  // Room for the member's next bytes (waits for a free chunk).
  MutableByteSpan room();
  // The first n bytes of room() are the member's next.
  void add(std::size_t n);
  // Every byte was added: hash check, commit. `where` (tape, archive,
  // block) completes a hash mismatch's message.
  void end(std::string where);
  // The read failed (error: a MemberError): abort.
  void fail(std::exception_ptr error);
  // Whether the current member already failed downstream (its sink did):
  // the reader may stop reading it (and call end() or fail()).
  bool failed() const;
  // Waits until every member handed over is done.
  void wait_idle();

 private:
  struct Member;
  struct Item;
  void hash_loop();
  void write_loop();
  void push(Item item);
  void release(std::size_t chunk);

  std::size_t chunk_size_;
  std::vector<std::unique_ptr<std::uint8_t[]>> chunks_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::size_t> free_;  // chunks nobody holds
  std::deque<Item> to_hash_;
  std::deque<Item> to_write_;
  std::size_t members_ = 0;  // begun and not done
  bool stopping_ = false;
  std::shared_ptr<Member> current_;  // the reading thread's
  std::optional<std::size_t> room_;  // chunk handed out by room(), not added yet
  std::thread hasher_;
  std::thread writer_;
};

// Reads and checks single members of the loaded tape.
class MemberReader {
 public:
  MemberReader(TapeCursor& cursor, KeyCache& keys, const crypto::AgeDecryptKeys& identities,
               const RecallOptions& options);
  // Checks the tar header of the member holding `version` (at `copy`)
  // against the catalog, then calls sink.begin() and streams the data to
  // sink.write(), hashing it. Throws MemberError naming tape and block (the
  // caller adds the path) or SinkFailure. commit/abort are the caller's.
  // on_bytes reports progress.
  void read(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
            const std::string& path, RecallSink& sink,
            const std::function<void(std::uint64_t)>& on_bytes = {});
  // The same with hashing and writing on the pipeline's threads: throws
  // (MemberError, SinkFailure) only until sink.begin() was called; from
  // then on every outcome goes to `done` (MemberPipeline), and this returns
  // once the member's bytes are handed over.
  void read_into(MemberPipeline& pipeline, const catalog::LocatedCopy& copy,
                 const catalog::VersionRow& version, const std::string& path, RecallSink& sink,
                 MemberPipeline::Done done, MemberPipeline::Progress on_bytes = {});
  ArchiveStream& stream() { return stream_; }

 private:
  // Positions the stream at the member, checks its tar header against the
  // catalog and calls sink.begin(); `tar` is then at the member's data.
  // Errors are MemberError without the location, or SinkFailure.
  format::TarMember open_member(format::TarReader& tar, const catalog::LocatedCopy& copy,
                                const catalog::VersionRow& version, const std::string& name,
                                RecallSink& sink);
  // The error of a failed read (whatever was thrown), naming tape and block.
  MemberError error_of(std::exception_ptr error, const catalog::LocatedCopy& copy,
                       std::optional<std::uint64_t> block);

  ArchiveStream stream_;
  Bytes buffer_;
};

// Reads members of foreign tapes (engine/foreign) from the loaded tape
// through foreign::TarStream: a "tar" archive (one record size) from the
// member's own header, the others from the archive's start. The stream is
// kept open between members, so members read in tape order cost one pass
// over the archive, whatever its compression.
class ForeignReader {
 public:
  ForeignReader(TapeCursor& cursor, const RecallOptions& options);
  ~ForeignReader();
  // Checks that the member at the copy's header offset is a file holding at
  // least the version's bytes, then calls sink.begin() and streams them to
  // sink.write(), hashing them. Throws MemberError naming tape and block,
  // or SinkFailure; commit/abort are the caller's.
  void read(const catalog::LocatedCopy& copy, const catalog::VersionRow& version, RecallSink& sink,
            const std::function<void(std::uint64_t)>& on_bytes = {});
  // Forgets the open stream (the cursor was moved by someone else).
  void reset();

 private:
  struct Stream;
  void open(const catalog::LocatedCopy& copy, std::uint64_t start);
  void read_member(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
                   RecallSink& sink, const std::function<void(std::uint64_t)>& on_bytes);
  void read_raw(const catalog::LocatedCopy& copy, const catalog::VersionRow& version,
                RecallSink& sink, const std::function<void(std::uint64_t)>& on_bytes);
  // What a read that ends before the version's size means.
  struct ShortRead {
    MemberError::Kind kind;
    const char* what;
  };
  // Copies the version's bytes from `read` to the sink through a hash that
  // must match.
  void copy_checked(const std::function<std::size_t(MutableByteSpan)>& read,
                    const catalog::VersionRow& version, RecallSink& sink,
                    const std::function<void(std::uint64_t)>& on_bytes,
                    const ShortRead& short_read);

  TapeCursor& cursor_;
  std::uint64_t forward_limit_;
  std::unique_ptr<Stream> stream_;
  Bytes buffer_;
};

// Checks that the tape in `drive` is the foreign tape `serial` with this
// fingerprint (engine/foreign); RestoreError otherwise. Rewinds.
void check_foreign_tape(tape::Drive& drive, const std::string& serial,
                        const std::string& foreign_id);

// Reads the label at BOT of the tape in drive and checks it is `serial` of
// catalog `catalog_id`; the drive is left after the label's first record.
void check_label(tape::Drive& drive, const std::string& serial, const std::string& catalog_id);

// "hash mismatch: the catalog says ..., the tape ...".
std::string hash_mismatch(const catalog::Hash& expected, const catalog::Hash& found);

// One line naming tape and block, for errors.
std::string where(const catalog::TapeRow& tape, const catalog::ArchiveRow& archive,
                  std::optional<std::uint64_t> block);

}  // namespace mixtape::restore::detail
