// fs/fuse_fs: the FUSE low-level handlers over a Tree. Each handler does the
// work through Tree or ContentSource and replies exactly once; errors become
// errno (FsError carries its own, anything else is EIO). Everything that
// would change the tree answers EROFS; .mixtape/recall is the one file that
// takes writes, and only to queue recalls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fs/tree.h"

namespace mixtape::fs {

// An open file's bytes, as the recall engine provides them: read() blocks
// until the range is staged and verified (the last bytes only after the
// whole file's hash matched).
class OpenContent {
 public:
  virtual ~OpenContent() = default;
  virtual std::size_t read(std::uint64_t offset, MutableByteSpan out) = 0;
  // The bytes read() would return, as a range of an open file (length 0:
  // none, the end), waited for as read() does. The mount then replies by
  // splice: the kernel moves them from that file without a copy through
  // this process. nullopt: the content is not in a file; read() it.
  struct FileRange {
    std::shared_ptr<const UniqueFd> fd;
    std::uint64_t offset = 0;
    std::size_t length = 0;
  };
  virtual std::optional<FileRange> read_range(std::uint64_t /*offset*/, std::size_t /*size*/) {
    return std::nullopt;
  }
  // Whether this open's reads should bypass the kernel's page cache of the
  // mount (FUSE direct_io): a file opened for the first time is most likely
  // read once (cp, a copy out), and a reply straight into the reader's
  // buffer saves filling, then copying out of, pages nobody reads again.
  virtual bool read_once() const { return false; }
};

class ContentSource {
 public:
  virtual ~ContentSource() = default;
  virtual std::unique_ptr<OpenContent> open(const Content& content) = 0;
  // For user.mixtape.state: "offline", "staging 37%", "staged".
  virtual std::string state(const catalog::VersionRow& version) = 0;
  // Paths written to .mixtape/recall, one per line.
  virtual void recall(const std::vector<Content>& contents) = 0;
  // The mount is ending (unmounted, or told to stop): reads still waiting
  // for a tape or a recall give up now, so the daemon can exit.
  virtual void cancel_waits() {}
};

// Whether the request being served on the calling thread was interrupted
// (its reader was killed, or gave up on a signal): a long wait inside a
// handler checks it and stops. False outside a request.
bool request_interrupted();

struct MountOptions {
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool allow_other = false;
  double timeout_seconds = 3600;  // entry/attr cache: the catalog only grows
};

// Mounts, serves until unmounted (or a signal), unmounts. ready() is called
// once the kernel mount exists, so a parent can stop waiting.
int serve(Tree& tree, ContentSource& content, ControlFiles& control, const MountOptions& options,
          const std::function<void()>& ready);

}  // namespace mixtape::fs
