// Helpers shared by the writer's tests: temporary trees, running the built
// binary (optionally as another user), and an independent check that what
// the catalog says is on tape really is: every copy is read back from the
// tape image, decrypted, and its bytes hashed.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backup/backup.h"
#include "engine/catalog/catalog.h"
#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "engine/format/format.h"
#include "engine/tape/image_drive.h"
#include "engine/tape/tape.h"
#include "tests/support/test_support.h"

namespace mixtape::backup::testing {

inline constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";

using namespace mixtape::test_support;

// How to run the mixtape binary: environment, and optionally as another user.
struct MixtapeEnv {
  std::string catalog;
  std::string home;
  std::string tmpdir;
  std::optional<uid_t> uid;  // also used as gid; supplementary groups dropped
};

// Starts `mixtape args...` with stdout and stderr going to files; returns the pid.
inline pid_t spawn_mixtape(const MixtapeEnv& env, const std::vector<std::string>& args,
                           const std::string& out_path, const std::string& err_path) {
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid > 0) return pid;
  // Child: only async-signal-safe work from here on would be ideal; the test
  // process is single-threaded when it spawns, so this is safe enough.
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0 || err < 0) ::_exit(126);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::setenv("MIXTAPE_CATALOG", env.catalog.c_str(), 1);
  ::setenv("HOME", env.home.c_str(), 1);
  ::unsetenv("XDG_DATA_HOME");
  ::unsetenv("XDG_CONFIG_HOME");
  if (!env.tmpdir.empty()) ::setenv("TMPDIR", env.tmpdir.c_str(), 1);
  if (env.uid) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(*env.uid, *env.uid, *env.uid) != 0 ||
        ::setresuid(*env.uid, *env.uid, *env.uid) != 0)
      ::_exit(125);
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kMixtape));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(kMixtape, argv.data());
  ::_exit(127);
}

inline CommandResult wait_mixtape(pid_t pid, const std::string& out_path,
                                  const std::string& err_path) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw_errno("waitpid");
  }
  CommandResult result;
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

inline CommandResult run_mixtape(const MixtapeEnv& env, const std::vector<std::string>& args,
                                 const std::string& scratch_dir) {
  std::string out = scratch_dir + "/.mixtape-stdout", err = scratch_dir + "/.mixtape-stderr";
  return wait_mixtape(spawn_mixtape(env, args, out, err), out, err);
}

// ------------------------------------------------------------ fixtures

// A test of the mixtape binary, run in a scratch directory that holds its
// catalog, its home (and so its key), its temporary files, the files it
// backs up (src_) and the tape images it writes (library_).
class MixtapeCliTest : public ::testing::Test {
 protected:
  MixtapeCliTest() {
    env_.catalog = dir_.file("catalog.db");
    env_.home = dir_.file("home");
    env_.tmpdir = dir_.path();
  }

  CommandResult mixtape(const std::vector<std::string>& args) {
    return run_mixtape(env_, args, dir_.path());
  }
  // The key `mixtape init` made.
  crypto::X25519Identity identity() {
    return crypto::load_identities(env_.home + "/.config/mixtape/identity.txt").at(0);
  }

  TempDir dir_;
  MixtapeEnv env_;
  std::string src_ = dir_.file("src");
  std::string library_ = dir_.file("tapes");
};

// A catalog's settings for backups to `identity` in records of
// `record_size`, two copies of everything.
inline catalog::CatalogConfig two_copy_config(const crypto::X25519Identity& identity,
                                              std::uint64_t record_size) {
  catalog::CatalogConfig config;
  config.recipients = {identity.recipient().to_string()};
  config.record_size = record_size;
  config.default_copies = 2;
  return config;
}

// Options backing up `src` with scratch space in `dir`. File 0 carries two
// small files made there instead of the (large) test binary.
inline BackupOptions small_label_options(const TempDir& dir, const std::string& src,
                                         std::uint64_t capacity, std::uint64_t archive_size) {
  write_file(dir.file("small-binary"), "a binary");
  write_file(dir.file("small-source.tar.gz"), "the source");
  BackupOptions options;
  options.label.binary_path = dir.file("small-binary");
  options.label.source_tarball_path = dir.file("small-source.tar.gz");
  options.label.capacity = capacity;
  options.roots = {src};
  options.archive_size = archive_size;
  options.temp_dir = dir.path();
  return options;
}

// A test of the backup engine writing tape images into library_: a catalog
// for identity_ (records of 64 KiB), and options_ backing up src_ onto
// tapes of geometry_ in archives of `archive_size`.
class ImageBackupTest : public ::testing::Test {
 protected:
  explicit ImageBackupTest(std::uint64_t archive_size)
      : identity_(crypto::X25519Identity::generate()) {
    catalog_.emplace(
        catalog::Catalog::create(dir_.file("catalog.db"), two_copy_config(identity_, 64 << 10)));
    options_ = small_label_options(dir_, src_, geometry_.capacity, archive_size);
    std::filesystem::create_directories(src_);
    std::filesystem::create_directories(library_);
  }

  TempDir dir_;
  crypto::X25519Identity identity_;
  std::optional<catalog::Catalog> catalog_;
  std::string src_ = dir_.file("src");
  std::string library_ = dir_.file("tapes");
  tape::ImageGeometry geometry_{64 << 20, 0};
  BackupOptions options_;
};

// ------------------------------------------------------------ reading tapes

// The tape files of an image, read through the image drive.
inline std::vector<std::string> tape_files(const std::string& image) {
  auto drive = tape::ImageDrive::open(image, /*write_protected=*/true);
  std::vector<std::string> files;
  Bytes buffer(tape::kProbeReadSize);
  std::string current;
  bool in_file = false;
  for (;;) {
    tape::ReadResult r = drive->read_record(buffer);
    if (r.kind == tape::ReadKind::kEndOfData) break;
    if (r.kind == tape::ReadKind::kFilemark) {
      files.push_back(std::move(current));
      current.clear();
      in_file = false;
      continue;
    }
    current.append(reinterpret_cast<const char*>(buffer.data()), r.size);
    in_file = true;
  }
  if (in_file) files.push_back(std::move(current));  // unterminated last file
  return files;
}

inline std::string decrypt(std::string_view age_file, const crypto::X25519Identity& identity) {
  MemorySource source(as_bytes(age_file));
  crypto::AgeDecryptKeys keys;
  keys.identities.push_back(identity);
  crypto::AgeDecryptor decryptor(source, keys);
  std::string out;
  Bytes buffer(1 << 20);
  for (std::size_t n; (n = decryptor.read(buffer)) > 0;)
    out.append(reinterpret_cast<const char*>(buffer.data()), n);
  return out;
}

// Opens a (decrypted) index as a stock SQLite file and reads one value.
inline std::string index_format_value(const std::string& db_path, const std::string& key) {
  sqlite::Database db(db_path, sqlite::OpenMode::kReadOnly);
  auto s = db.prepare("SELECT value FROM format WHERE key = ?");
  s.bind(1, key);
  if (!s.step()) return "";
  return s.column_text(0);
}

// What the catalog says about every copy, checked against the tape images
// in `library`: each copy's member is read back (decrypting the archive
// file), its headers name the version's path and hash, and its bytes hash
// to the version's hash. Returns the number of copies checked; failures are
// test failures naming the copy.
inline std::size_t verify_catalog_against_tapes(catalog::Catalog& catalog,
                                                const std::string& library,
                                                const crypto::X25519Identity& identity) {
  std::size_t checked = 0;
  for (const auto& tape : catalog.tapes()) {
    std::vector<std::string> files = tape_files(library + "/" + tape.serial + ".tap");
    std::map<std::int64_t, std::string> plain;  // archive file -> decrypted tar
    catalog.for_each_copy_on_tape(tape.id, [&](const catalog::CopyWithVersion& c) {
      std::string where = tape.serial + " file " + std::to_string(c.archive_file) + " " + c.path;
      if (c.archive_file < 0 || static_cast<std::size_t>(c.archive_file) >= files.size()) {
        ADD_FAILURE() << where << ": the tape has no such file";
        return;
      }
      auto it = plain.find(c.archive_file);
      if (it == plain.end()) {
        try {
          it = plain
                   .emplace(c.archive_file,
                            tape.encrypted
                                ? decrypt(files[static_cast<std::size_t>(c.archive_file)], identity)
                                : files[static_cast<std::size_t>(c.archive_file)])
                   .first;
        } catch (const std::exception& e) {
          ADD_FAILURE() << where << ": does not decrypt: " << e.what();
          return;
        }
      }
      const std::string& tar = it->second;
      MemorySource source(as_bytes(tar));
      format::TarMember member;
      try {
        member = format::read_member_at(source, c.copy.header_offset, where);
      } catch (const std::exception& e) {
        ADD_FAILURE() << where << ": no member at " << c.copy.header_offset << ": " << e.what();
        return;
      }
      EXPECT_EQ("/" + member.info.path, c.path) << where;
      EXPECT_EQ(member.offsets.data_offset, c.copy.data_offset) << where;
      if (c.version.kind == catalog::VersionKind::kSymlink) {
        EXPECT_EQ(member.info.linkpath, c.version.symlink_target) << where;
      } else {
        EXPECT_EQ(member.info.blake2b256, to_hex(c.version.hash)) << where;
        if (c.copy.data_offset + c.version.size > tar.size()) {
          ADD_FAILURE() << where << ": data runs past the archive";
          return;
        }
        std::string_view data(tar.data() + c.copy.data_offset, c.version.size);
        EXPECT_EQ(hash_hex(data), to_hex(c.version.hash)) << where << ": bytes on tape differ";
      }
      ++checked;
    });
  }
  return checked;
}

// The last file of every tape the catalog knows is a trailing index that
// decrypts and opens with SQLite, and names the tape.
inline void expect_trailing_indexes(catalog::Catalog& catalog, const std::string& library,
                                    const crypto::X25519Identity& identity,
                                    const std::string& scratch_dir) {
  for (const auto& tape : catalog.tapes()) {
    std::vector<std::string> files = tape_files(library + "/" + tape.serial + ".tap");
    ASSERT_GE(files.size(), 2u) << tape.serial;
    EXPECT_EQ(static_cast<std::int64_t>(files.size()) - 1, tape.append_file) << tape.serial;
    std::string db = scratch_dir + "/trailing-" + tape.serial + ".db";
    try {
      write_file(db, tape.encrypted ? decrypt(files.back(), identity) : files.back());
      EXPECT_EQ(index_format_value(db, "kind"), "trailing") << tape.serial;
      EXPECT_EQ(index_format_value(db, "serial"), tape.serial);
    } catch (const std::exception& e) {
      ADD_FAILURE() << tape.serial << ": last file is not a readable trailing index: " << e.what();
    }
    ::unlink(db.c_str());
  }
}

}  // namespace mixtape::backup::testing
