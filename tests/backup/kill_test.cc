// kill -9 of `mixtape backup` at random points, again and again, on one
// catalog and library, with the source changing between runs. After every
// kill: the catalog names no copy that is not on tape (each copy is read
// back from the image and hashed). After every complete run: every file has
// its copies and every tape ends in a readable trailing index.
//
// Kill points: a random delay (start-up, scan, hashing), or the moment the
// tape images have grown by a random number of bytes (labelling, an index,
// an archive, the trailing index, and the commit after it). The RNG is
// seeded, so a failure can be replayed; the points reached are counted and
// must cover the phases.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "tests/backup/backup_test_util.h"

namespace mixtape::backup::testing {
namespace {

constexpr int kKills = 24;
constexpr int kCompleteEvery = 4;

std::uint64_t library_bytes(const std::string& library) {
  std::uint64_t total = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(library, ignored)) {
    if (entry.path().extension() == ".tap") total += entry.file_size(ignored);
  }
  return total;
}

class KillTest : public MixtapeCliTest {
 protected:
  KillTest() : rng_(20261121) {}

  std::vector<std::string> backup_args() {
    // Checkpoints every few archives: kills land in them too.
    return {"backup",         src_,   "--library",      library_, "--capacity", "12M",
            "--archive-size", "128K", "--commit-every", "300K"};
  }

  std::uint32_t random(std::uint32_t low, std::uint32_t high) {
    return std::uniform_int_distribution<std::uint32_t>(low, high)(rng_);
  }

  // New files, a rewritten one, sometimes a deleted one.
  void change_source(int round) {
    for (int i = 0; i < 2; ++i) {
      std::string name = src_ + "/r" + std::to_string(round) + "/f" + std::to_string(i);
      write_file(name, random_text(random(20000, 150000), rng_()));
      present_.push_back(name);
    }
    if (!present_.empty()) {
      std::string& victim = present_[random(0, static_cast<std::uint32_t>(present_.size() - 1))];
      write_file(victim, random_text(random(1000, 90000), rng_()));
    }
    if (round % 3 == 2 && present_.size() > 10) {
      std::size_t at = random(0, static_cast<std::uint32_t>(present_.size() - 1));
      ::unlink(present_[at].c_str());
      present_.erase(present_.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }

  // Runs a backup and kills it at the chosen point: after delay_us, or once
  // the images have grown by grow_bytes. Returns whether it was killed
  // (false: it finished first). Notes when the images first changed, so
  // time-based kills can aim at the time before any tape is written.
  bool backup_and_kill(std::optional<std::uint32_t> delay_us,
                       std::optional<std::uint64_t> grow_bytes, CommandResult* finished = nullptr) {
    std::string out = dir_.file(".out"), err = dir_.file(".err");
    std::uint64_t start_bytes = library_bytes(library_);
    pid_t pid = spawn_mixtape(env_, backup_args(), out, err);
    auto started = std::chrono::steady_clock::now();
    bool wrote = false;
    for (;;) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        if (finished) {
          finished->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
          finished->err = read_file(err);
        }
        return false;
      }
      auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
      std::uint64_t bytes = library_bytes(library_);
      if (!wrote && bytes != start_bytes) {
        wrote = true;
        first_write_us_ = std::min<std::uint64_t>(first_write_us_, elapsed);
      }
      bool now =
          (delay_us && elapsed >= *delay_us) || (grow_bytes && bytes >= start_bytes + *grow_bytes);
      if (now) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return WIFSIGNALED(status);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // polling, not waiting
    }
  }

  // What the kill interrupted, judged from the images: nothing on tape yet,
  // a tape ending in something other than a trailing index (mid-label,
  // mid-index, mid-archive), or one ending in a trailing index the catalog
  // has not committed (killed between the trailing index and the commit).
  void classify(catalog::Catalog& catalog, std::uint64_t bytes_before) {
    if (library_bytes(library_) == bytes_before) {
      ++before_tape_;
      return;
    }
    bool mid_write = false, uncommitted_trailing = false;
    for (const auto& entry : std::filesystem::directory_iterator(library_)) {
      if (entry.path().extension() != ".tap") continue;
      std::string serial = entry.path().stem().string();
      auto files = tape_files(entry.path().string());
      auto tape = catalog.tape_by_serial(serial);
      std::string db = dir_.file("probe.db");
      bool trailing = false;
      try {
        write_file(db, decrypt(files.empty() ? std::string() : files.back(), identity()));
        trailing = index_format_value(db, "kind") == "trailing";
      } catch (const std::exception&) {
      }
      ::unlink(db.c_str());
      if (!trailing) mid_write = true;
      if (trailing && tape && static_cast<std::int64_t>(files.size()) - 1 != tape->append_file)
        uncommitted_trailing = true;
    }
    if (mid_write) ++mid_write_;
    if (uncommitted_trailing) ++after_trailing_;
    if (!mid_write && !uncommitted_trailing) ++after_commit_;
  }

  // After a complete run: every file on disk has its two copies of what it
  // holds now, read back from tape; every tape ends in a trailing index; a
  // tape the catalog does not know is one whose labelling was killed, and
  // holds nothing that could be lost.
  void expect_complete() {
    auto catalog = catalog::Catalog::open_read_only(env_.catalog);
    for (const auto& path : present_) {
      auto id = catalog.file_by_path(path);
      ASSERT_TRUE(id) << path;
      auto v = catalog.latest_version(*id);
      ASSERT_TRUE(v) << path;
      EXPECT_EQ(to_hex(v->hash), hash_hex(read_file(path))) << path;
      auto replicas = catalog.copies_of(v->id);
      EXPECT_EQ(replicas.size(), 2u) << path;
      if (replicas.size() == 2) {
        EXPECT_NE(replicas[0].tape.serial, replicas[1].tape.serial);
      }
    }
    verify_catalog_against_tapes(catalog, library_, identity());
    expect_trailing_indexes(catalog, library_, identity(), dir_.path());
    for (const auto& entry : std::filesystem::directory_iterator(library_)) {
      if (entry.path().extension() != ".tap") continue;
      std::string serial = entry.path().stem().string();
      if (catalog.tape_by_serial(serial)) continue;
      EXPECT_LE(tape_files(entry.path().string()).size(), 2u)
          << serial << " is unknown to the catalog and holds archives";
    }
  }

  std::mt19937 rng_;
  std::vector<std::string> present_;
  int before_tape_ = 0, mid_write_ = 0, after_trailing_ = 0, after_commit_ = 0;
  std::uint64_t first_write_us_ = 200000;  // earliest first write to tape seen, in a run
};

TEST_F(KillTest, KilledBackupsLoseNothingAndNeverClaimWhatIsNotOnTape) {
  CommandResult init =
      run_mixtape(env_, {"init", "--copies", "2", "--record-size", "16K"}, dir_.path());
  ASSERT_EQ(init.status, 0) << init.err;
  for (int i = 0; i < 30; ++i) {
    std::string name = src_ + "/base/f" + std::to_string(i);
    write_file(name, random_text(random(1000, 200000), rng_()));
    present_.push_back(name);
  }
  std::filesystem::create_directories(library_);
  std::uint64_t growth = 8 << 20;  // what a complete run added to the images, as last seen
  int kills = 0;
  for (int round = 0; kills < kKills; ++round) {
    ASSERT_LT(round, 3 * kKills) << "the runs keep finishing before the kill point";
    change_source(round);
    if (round % kCompleteEvery == kCompleteEvery - 1) {
      std::uint64_t before = library_bytes(library_);
      CommandResult complete;
      backup_and_kill(std::nullopt, std::nullopt, &complete);
      ASSERT_EQ(complete.status, 0) << complete.err;
      growth = std::max<std::uint64_t>(library_bytes(library_) - before, 64 << 10);
      expect_complete();
      if (HasFailure()) return;
      continue;
    }
    // A third of the kills come before anything reaches tape (start-up,
    // scan, hashing the first archive), the rest while the images grow.
    bool by_time = random(0, 2) == 0;
    std::uint32_t delay_us = random(0, static_cast<std::uint32_t>(first_write_us_ * 9 / 10));
    std::uint64_t grow = random(1, static_cast<std::uint32_t>(growth));
    std::uint64_t before = library_bytes(library_);
    bool killed =
        by_time ? backup_and_kill(delay_us, std::nullopt) : backup_and_kill(std::nullopt, grow);
    if (!killed) continue;
    ++kills;
    auto catalog = catalog::Catalog::open_read_only(env_.catalog);
    classify(catalog, before);
    // The invariant: every copy the catalog names is on tape, whole.
    verify_catalog_against_tapes(catalog, library_, identity());
    if (HasFailure()) {
      ADD_FAILURE() << "after kill " << kills << " (round " << round << ", "
                    << (by_time ? "after " + std::to_string(delay_us) + " us"
                                : "after " + std::to_string(grow) + " bytes")
                    << ")";
      return;
    }
  }
  CommandResult last = run_mixtape(env_, backup_args(), dir_.path());
  ASSERT_EQ(last.status, 0) << last.err;
  expect_complete();
  std::printf(
      "kills: %d before writing to tape, %d mid-write, %d after an uncommitted trailing "
      "index, %d after the commit\n",
      before_tape_, mid_write_, after_trailing_, after_commit_);
  EXPECT_GE(before_tape_, 2) << "no kill during start-up, scan or hashing";
  EXPECT_GE(mid_write_, 5) << "too few kills while writing";
}

}  // namespace
}  // namespace mixtape::backup::testing
