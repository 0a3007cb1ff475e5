// engine/recover: the catalog back from a found tape.
//
// Design
//
// * The last file on every mixtape tape is the trailing index: a copy of the
//   whole catalog as it was when the tape was last written, including every
//   archive on the tape (docs/FORMAT.md section 2). Recovering a catalog is
//   reading that one file, not scanning the tape as bscan does: space to end
//   of data, back over the last filemark (checking that it is the last
//   block, i.e. the tape ends with a complete file), back over the one
//   before, read that filemark, then the file up to its own filemark. No
//   locate, one end-of-data space, two filemark spaces, and the bytes of the
//   trailing index are all that is read. It is decrypted into a temporary
//   file (mode 0600, removed afterwards), validated by format::IndexReader,
//   and merged with Catalog::merge_from_index, which matches rows by their
//   natural keys: merging several tapes gives their union, merging one
//   twice adds nothing, and into an empty catalog the original ids survive.
//
// * When the trailing index is missing (an interrupted session, a truncated
//   tape) or damaged, the tape's indexes are walked instead: file 1, 3, 5,
//   ..., each read and validated, each archive between them passed over
//   with one filemark space (never read). The first index on a tape holds
//   the whole catalog as it was before its archive, each later one the rows
//   changed since the index before it (format 2; every format-1 index is a
//   full copy): applied in tape order (catalog::CatalogChain) they give the
//   catalog as it stood at the last index, which is merged. A damaged index
//   ends the chain until the next full copy. Archives that catalog copy
//   cannot know yet (the last session's, uncommitted when their indexes
//   were written) are added from the indexes' member tables, if their
//   archive is complete on tape. The tape's append point is moved past
//   them so the next backup does not overwrite them.
//
// * Bad input gets a clear error, never a guess: a wrong identity stops at
//   once (walking would not help), a tape of another catalog is refused
//   unless forced (the catalog module's rule), an index that does not
//   validate is reported and walked around.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/tape/tape.h"

namespace mixtape::recover {

class RecoverError : public Error {
 public:
  using Error::Error;
};

struct RecoverOptions {
  bool force = false;         // merge a tape of another catalog anyway
  bool walk_indexes = false;  // ignore the trailing index (tests, suspicion)
  std::string temp_dir;       // for decrypted indexes; default $TMPDIR or /tmp
  // One "recover" stage per tape: the bytes of the indexes read (the
  // trailing index's total estimated from its length in blocks), one item
  // per index of a walk.
  Progress* progress = nullptr;
};

enum class RecoverSource { kTrailingIndex, kIndexWalk };

struct RecoverReport {
  std::string serial;
  RecoverSource source = RecoverSource::kTrailingIndex;
  catalog::MergeStats merged;
  std::uint64_t indexes_read = 0;
  std::uint64_t index_bytes = 0;     // bytes of index files read from tape
  std::uint64_t archives_added = 0;  // from member tables (index walk)
  std::uint64_t copies_added = 0;
  std::vector<std::string> warnings;  // why the walk, damaged indexes, lost archives
};

// Rebuilds `catalog` from the tape loaded in `drive` (at any position).
RecoverReport recover_tape(catalog::Catalog& catalog, tape::Drive& drive,
                           const crypto::AgeDecryptKeys& keys, const RecoverOptions& options = {});

// Reads only the trailing index of the tape in `drive` into `path` (the
// spacing above); throws RecoverError when the tape does not end with one.
struct TrailingIndex {
  format::IndexHeader header;
  std::uint64_t bytes = 0;  // read from tape
};
TrailingIndex read_trailing_index(tape::Drive& drive, const crypto::AgeDecryptKeys& keys,
                                  const std::string& path, Progress* progress = nullptr);

// For mounting a found tape: a catalog of what the tape in `drive` holds,
// built from its trailing index (or index walk) into
// cache_dir/tape-<serial>.db, replaced atomically on every call (a trailing
// index is a few seconds of tape). Returns the catalog's path.
struct FoundTape {
  std::string catalog_path;
  RecoverReport report;
};
FoundTape catalog_for_found_tape(tape::Drive& drive, const std::string& cache_dir,
                                 const crypto::AgeDecryptKeys& keys,
                                 const RecoverOptions& options = {});

}  // namespace mixtape::recover
