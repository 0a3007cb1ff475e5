// docs/GUIDE.md, run as written. Every ```sh block marked
// <!-- guide-test: NAME --> is run in order with bash, in a scratch home
// holding a sample ~/Pictures, with the built binaries first on PATH and
// nothing else of the caller's environment. Each block must exit 0, and what
// the guide says it does is then checked: files come back byte for byte,
// the mount shows them, a recovered catalog restores, the drill's b2sum
// matches. Blocks marked <!-- not-run: why --> (real drives, installing)
// are only shown; every ```sh block must carry one marker or the other.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace mixtape::cli {
namespace {

using namespace mixtape::test_support;

namespace fs = std::filesystem;

constexpr char kGuide[] = MIXTAPE_SOURCE_DIR "/docs/GUIDE.md";
constexpr char kBinaryDir[] = MIXTAPE_BINARY_DIR;

struct Block {
  std::string name;
  std::string flag;  // "sbin": run with the built mount.mixtape in /sbin
  std::string body;
  int line = 0;
};

struct Guide {
  std::vector<Block> runnable;
  std::vector<int> unmarked;  // lines of ```sh blocks with no marker
};

Guide parse_guide(const std::string& text) {
  static const std::regex kRunnable(R"(^<!-- guide-test: ([a-z0-9-]+)(?: ([a-z]+))? -->$)");
  static const std::regex kNotRun(R"(^<!-- not-run: .+ -->$)");
  Guide guide;
  std::istringstream in(text);
  std::string line, previous;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line != "```sh") {
      if (!line.empty()) previous = line;
      continue;
    }
    std::smatch m;
    Block block;
    block.line = number;
    bool runnable = std::regex_match(previous, m, kRunnable);
    if (runnable) {
      block.name = m[1];
      block.flag = m[2];
    } else if (!std::regex_match(previous, kNotRun)) {
      guide.unmarked.push_back(number);
    }
    while (std::getline(in, line) && line != "```") {
      ++number;
      block.body += line + "\n";
    }
    ++number;
    if (runnable) guide.runnable.push_back(block);
    previous.clear();
  }
  return guide;
}

// What the sample ~/Pictures holds, to compare restores with.
struct Sample {
  std::map<std::string, std::string> files;     // relative path -> bytes
  std::map<std::string, std::string> symlinks;  // relative path -> target
  std::vector<std::string> empty_dirs;
};

Sample make_sample(const std::string& root) {
  Sample s;
  s.files["2019/IMG_0001.raw"] = random_text(300000, 1);
  s.files["2019/IMG_0002.raw"] = random_text(1200000, 2);
  s.files["2020/clip.mov"] = random_text(700000, 3);
  s.files["2020/notes.txt"] = "first draft\n";
  s.symlinks["2020/favourite.raw"] = "../2019/IMG_0001.raw";
  s.empty_dirs.push_back("empty-album");
  for (const auto& [path, data] : s.files) write_file(root + "/" + path, data);
  for (const auto& [path, target] : s.symlinks) fs::create_symlink(target, root + "/" + path);
  for (const auto& dir : s.empty_dirs) fs::create_directories(root + "/" + dir);
  return s;
}

// `tree` holds exactly the sample: the same files with the same bytes, the
// same symlinks, the empty folders, and nothing else.
void expect_tree(const std::string& tree, const Sample& sample) {
  SCOPED_TRACE("tree " + tree);
  ASSERT_TRUE(fs::is_directory(tree));
  std::size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(tree)) {
    ++entries;
    std::string rel = e.path().lexically_relative(tree).string();
    if (e.is_symlink()) {
      ASSERT_TRUE(sample.symlinks.count(rel)) << rel;
      EXPECT_EQ(fs::read_symlink(e.path()).string(), sample.symlinks.at(rel)) << rel;
    } else if (e.is_regular_file()) {
      ASSERT_TRUE(sample.files.count(rel)) << "unexpected file " << rel;
      EXPECT_TRUE(read_file(e.path().string()) == sample.files.at(rel)) << rel << " differs";
    } else if (e.is_directory()) {
      bool empty = fs::is_empty(e.path());
      bool expected_empty = std::count(sample.empty_dirs.begin(), sample.empty_dirs.end(), rel);
      EXPECT_EQ(empty, expected_empty) << rel;
    }
  }
  std::set<std::string> dirs;  // the folders the sample implies
  for (const auto& [path, data] : sample.files) dirs.insert(fs::path(path).parent_path());
  for (const auto& [path, target] : sample.symlinks) dirs.insert(fs::path(path).parent_path());
  dirs.insert(sample.empty_dirs.begin(), sample.empty_dirs.end());
  EXPECT_EQ(entries, sample.files.size() + sample.symlinks.size() + dirs.size());
}

bool mounted(const std::string& path) {
  std::istringstream mounts(read_file("/proc/mounts"));
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream fields(line);
    std::string source, target;
    fields >> source >> target;
    if (target == path) return true;
  }
  return false;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class GuideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = root_.file("home");
    fs::create_directories(home_);
    fs::create_directories(root_.file("tmp"));
    sample_ = make_sample(home_ + "/Pictures");
    // What the sbin blocks see as /sbin: the real one with mount.mixtape
    // added, as `cmake --install --prefix /usr` would leave it.
    fs::create_directories(root_.file("sbin"));
    fs::copy_file(std::string(kBinaryDir) + "/mount-helper/mount.mixtape",
                  root_.file("sbin/mount.mixtape"));
  }

  void TearDown() override {
    // A failed block can leave mounts behind: undo every one under the root.
    std::istringstream mounts(read_file("/proc/mounts"));
    std::vector<std::string> targets;
    for (std::string line; std::getline(mounts, line);) {
      std::istringstream fields(line);
      std::string source, target;
      fields >> source >> target;
      if (target.rfind(root_.path() + "/", 0) == 0) targets.push_back(target);
    }
    for (auto it = targets.rbegin(); it != targets.rend(); ++it)
      run_shell("fusermount3 -u -z " + shell_quote(*it));
  }

  CommandResult run_block(const Block& block) {
    const std::string script = root_.file("step-" + block.name + ".sh");
    write_file(script, "set -euo pipefail\ncd ~\n" + block.body);
    const std::string bin = std::string(kBinaryDir);
    std::string env = "env -i HOME=" + shell_quote(home_) +
                      " TMPDIR=" + shell_quote(root_.file("tmp")) + " LANG=C.UTF-8 PATH=" +
                      shell_quote(bin + "/cli:" + bin +
                                  "/mount-helper:/usr/local/sbin:/usr/local/bin:"
                                  "/usr/sbin:/usr/bin:/sbin:/bin");
    // A sanitizer run's settings go through: where reports are written, and
    // the program tapes carry (docs/TESTING.md).
    for (const char* name :
         {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MIXTAPE_ARCHAEOLOGY_BINARY"})
      if (const char* value = std::getenv(name))
        env += std::string(" ") + name + "=" + shell_quote(value);
    std::string command = env + " timeout 600 bash " + shell_quote(script);
    if (block.flag == "sbin") {
      // A private mount namespace whose /sbin also holds the built helper;
      // whatever the block leaves mounted there is unmounted before it ends.
      const std::string sbin = fs::canonical("/sbin").string();
      const std::string inner =
          "mount -t overlay overlay -o lowerdir=" + root_.file("sbin") + ":" + sbin + " " + sbin +
          " && { " + command + "; rc=$?; findmnt -rn -o TARGET | grep -F " +
          shell_quote(root_.path() + "/") + " | xargs -r -n1 umount -l; exit $rc; }";
      command = "unshare -m --propagation private bash -c " + shell_quote(inner);
    }
    return run_shell(command);
  }

  std::string pictures(const std::string& under) const { return under + home_ + "/Pictures"; }
  std::string home(const std::string& rel) const { return home_ + "/" + rel; }

  TempDir root_;
  std::string home_;
  Sample sample_;
};

TEST_F(GuideTest, EveryMarkedBlockRunsAndDoesWhatTheGuideSays) {
  for (const char* tool : {"bash", "age", "age-keygen", "sqlite3", "tar", "b2sum", "python3",
                           "getfattr", "fusermount3", "unshare", "findmnt", "timeout"})
    ASSERT_TRUE(test_support::have_tool(tool)) << tool << " is not installed";
  const std::string guide_text = read_file(kGuide);
  Guide guide = parse_guide(guide_text);
  EXPECT_TRUE(guide.unmarked.empty())
      << "```sh blocks at these lines of docs/GUIDE.md have neither a guide-test nor a "
         "not-run marker: "
      << ::testing::PrintToString(guide.unmarked);

  const std::string H = home_;
  const std::string latest_pictures = H + "/mnt/latest" + H + "/Pictures";
  Sample second = sample_;  // the sample after the guide's edit
  second.files["2020/notes.txt"] = "second draft\n";

  // What each step claims, checked after it ran. The names are the guide's
  // steps in order: a step added, renamed or dropped must be reflected here.
  using Check = std::function<void(const CommandResult&)>;
  const std::vector<std::pair<std::string, Check>> steps = {
      {"init",
       [&](const CommandResult& r) {
         struct stat st {};
         ASSERT_EQ(::stat(home(".config/mixtape/identity.txt").c_str(), &st), 0);
         EXPECT_EQ(st.st_mode & 0777, 0600u);
         EXPECT_TRUE(fs::exists(home(".local/share/mixtape/catalog.db")));
         EXPECT_EQ(r.out.rfind("age1", 0), 0u) << r.out;
       }},
      {"other-keys",
       [&](const CommandResult&) {
         for (const char* where : {"offline-restore", "family-restore"}) {
           std::string dir = pictures(home(where)) + "/2020/";
           EXPECT_EQ(read_file(dir + "notes.txt"), "first draft\n") << where;
           EXPECT_TRUE(read_file(dir + "clip.mov") == sample_.files.at("2020/clip.mov")) << where;
         }
         // The offline catalog's tapes open only with the offline key.
         EXPECT_NE(read_file(home("offline-key.txt")),
                   read_file(home(".config/mixtape/identity.txt")));
       }},
      {"first-backup",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("to L00001 L00002"), std::string::npos) << r.out;
         EXPECT_TRUE(fs::exists(home("tapes/L00001.tap")));
         EXPECT_TRUE(fs::exists(home("tapes/L00002.tap")));
       }},
      {"second-backup",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("1 changed"), std::string::npos) << r.out;
         EXPECT_TRUE(std::regex_match(read_file(home("before-edit")),
                                      std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z\n)")));
       }},
      {"label",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("labelled L00100"), std::string::npos) << r.out;
         EXPECT_TRUE(std::regex_search(r.out, std::regex("L00100 +labelled"))) << r.out;
       }},
      {"copy-goals",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("copy goal: 3 for " + H + "/Pictures/2019\n"), std::string::npos)
             << r.out;
         EXPECT_NE(r.out.find("below copy goal: 0 versions"), std::string::npos) << r.out;
         EXPECT_EQ(count(r.out, "  replica L"), 3u) << r.out;
         EXPECT_NE(r.out.find("replica L00100:"), std::string::npos) << r.out;
       }},
      {"status",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("below copy goal: 0 versions"), std::string::npos) << r.out;
         EXPECT_EQ(count(r.out, "version 2 "), 1u) << "notes.txt has two versions\n" << r.out;
       }},
      {"mount",
       [&](const CommandResult& r) {
         EXPECT_TRUE(mounted(H + "/mnt"));
         EXPECT_NE(r.out.find("first draft\n"), std::string::npos) << r.out;
         EXPECT_NE(r.out.find("0001_"), std::string::npos) << r.out;
         EXPECT_NE(r.out.find("0002_"), std::string::npos) << r.out;
         EXPECT_NE(r.out.find("user.mixtape.hash=\"" + hash_hex("second draft\n") + "\""),
                   std::string::npos)
             << r.out;
         EXPECT_EQ(read_file(latest_pictures + "/2020/notes.txt"), "second draft\n");
       }},
      {"offline-read",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("exit status 1"), std::string::npos) << r.out;
         EXPECT_NE(r.err.find("No medium found"), std::string::npos) << r.err;
         EXPECT_NE(r.out.find("insert tape L00001 L00002 L00100"), std::string::npos) << r.out;
         EXPECT_TRUE(read_file(home("IMG_0002.raw")) == sample_.files.at("2019/IMG_0002.raw"));
         EXPECT_FALSE(mounted(H + "/offsite-mnt"));
       }},
      {"restore-cp",
       [&](const CommandResult&) {
         expect_tree(home("from-tape"), second);
         EXPECT_EQ(read_file(home("notes-first-draft.txt")), "first draft\n");
         EXPECT_FALSE(mounted(H + "/mnt"));
       }},
      {"restore",
       [&](const CommandResult& r) {
         expect_tree(pictures(home("restore")), second);
         EXPECT_EQ(read_file(pictures(home("restore-old")) + "/2020/notes.txt"), "first draft\n");
         EXPECT_NE(r.out.find("snapshot of the backup run of "), std::string::npos) << r.out;
       }},
      {"verify",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("verified 3 tapes, "), std::string::npos) << r.out;
         EXPECT_NE(r.out.find(" 0 bad\n"), std::string::npos) << r.out;
         EXPECT_NE(r.out.find(" 0 problems\n"), std::string::npos) << r.out;
         EXPECT_EQ(count(r.out, "last verify ok"), 3u) << r.out;
       }},
      {"everyday",
       [&](const CommandResult& r) {
         // Three backup runs (the third of 2019 only); notes.txt changed
         // between the first two.
         EXPECT_EQ(count(r.out, "  yes  "), 3u) << r.out;
         EXPECT_NE(r.out.find("changed  " + H + "/Pictures/2020/notes.txt  (12 -> 13 bytes)\n"),
                   std::string::npos)
             << r.out;
         EXPECT_NE(r.out.find("0 added, 0 removed, 1 changed between run 1"), std::string::npos)
             << r.out;
         EXPECT_EQ(count(r.out, "  " + H + "/Pictures/2020/notes.txt\n"), 2u) << r.out;  // find
         EXPECT_TRUE(std::regex_search(r.out, std::regex("L00001 .* offsite: bank box 12\n")))
             << r.out;
         EXPECT_EQ(r.out.find("\nL00002 "), std::string::npos) << "filtered by location\n" << r.out;
         EXPECT_TRUE(r.out.ends_with("all well\n")) << r.out;
       }},
      {"recover",
       [&](const CommandResult& r) {
         EXPECT_TRUE(fs::exists(home("lost-catalog/catalog.db")));
         EXPECT_TRUE(fs::exists(home(".local/share/mixtape/catalog.db")));
         EXPECT_NE(r.out.find("recovered tape L00002 from its trailing index"), std::string::npos)
             << r.out;
         EXPECT_NE(r.out.find("version 2 "), std::string::npos) << r.out;
         expect_tree(pictures(home("after-recover")), second);
       }},
      {"found-tape",
       [&](const CommandResult& r) {
         EXPECT_NE(r.out.find("L00001\n"), std::string::npos) << r.out;
         EXPECT_TRUE(fs::exists(home("found-cache/tape-L00001.db")));
         EXPECT_FALSE(mounted(H + "/found"));
       }},
      {"drill-split",
       [&](const CommandResult& r) {
         EXPECT_EQ(r.out.rfind("mixtape tape format 2\nserial: L00001\n", 0), 0u) << r.out;
         EXPECT_TRUE(fs::exists(home("drill/files/file0")));
         EXPECT_TRUE(fs::exists(home("drill/files/file2")));
       }},
      {"drill-trailing",
       [&](const CommandResult& r) { EXPECT_EQ(r.out.rfind("trailing\n", 0), 0u) << r.out; }},
      {"drill-archive",
       [&](const CommandResult& r) {
         // Archive 1 of L00001 holds the first backup: every file of the
         // sample, notes.txt as it was then.
         EXPECT_EQ(count(r.out, ": OK\n"), sample_.files.size()) << r.out;
         EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << r.out;
         for (const auto& [path, data] : sample_.files)
           EXPECT_TRUE(read_file(pictures(home("drill/restore")) + "/" + path) == data) << path;
       }},
      {"fstab",
       [&](const CommandResult& r) {
         EXPECT_EQ(r.out, "second draft\n");
         EXPECT_FALSE(mounted(H + "/mnt"));
       }},
      {"errors",
       [&](const CommandResult& r) {
         EXPECT_EQ(count(r.out, "exit status 1\n"), 5u) << r.out;
         EXPECT_EQ(count(r.out, "exit status 106\n"), 1u) << r.out;
         // Each message, as printed, and as the guide's table gives it.
         const std::vector<std::pair<std::string, std::string>> messages = {
             {"exists (use --overwrite to replace it)", "exists (use --overwrite to replace it)"},
             {"tape L00001 is not in the library (insert it and retry)",
              "is not in the library (insert it and retry)"},
             {"no identity matched any of the age file's recipients (wrong --identity or "
              "--passphrase-file?)",
              "no identity matched any of the age file's recipients (wrong --identity or "
              "--passphrase-file?)"},
             {"tape L00100 is already in the catalog; labelling it again would lose it",
              "is already in the catalog; labelling it again would lose it"},
             {"mount.mixtape: mixtape mounts are read-only; remove 'rw'",
              "mount.mixtape: mixtape mounts are read-only; remove 'rw'"},
             {"--to is required", "--to is required"}};
         for (const auto& [printed, documented] : messages) {
           EXPECT_NE(r.err.find(printed), std::string::npos) << printed << "\n" << r.err;
           EXPECT_NE(guide_text.find(documented), std::string::npos) << documented;
         }
       }},
  };

  std::vector<std::string> expected, found;
  for (const auto& [name, check] : steps) expected.push_back(name);
  for (const auto& block : guide.runnable) found.push_back(block.name);
  ASSERT_EQ(found, expected) << "the guide's runnable steps changed";

  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Block& block = guide.runnable[i];
    SCOPED_TRACE("guide step '" + block.name + "' (docs/GUIDE.md line " +
                 std::to_string(block.line) + ")");
    CommandResult r = run_block(block);
    ASSERT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
    steps[i].second(r);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace mixtape::cli
