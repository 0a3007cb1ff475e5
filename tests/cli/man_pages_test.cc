// The man pages against the programs. man/mixtape.1 has a section for every
// subcommand `mixtape --help` lists (recursively) and names every flag their
// --help prints, and names no long flag the program does not take.
// man/mount.mixtape.8 names every option and flag mount.mixtape accepts (as
// its option parser spells them), and every option it lists under OPTIONS is
// accepted by the built helper (with -f, mount(8)'s "fake"). Both render
// with groff and man without a warning, and `cmake --install` puts them
// where man(1) finds them.
#include <gtest/gtest.h>

#include <filesystem>
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

constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";
constexpr char kMountHelper[] = MIXTAPE_BINARY_DIR "/mount-helper/mount.mixtape";
constexpr char kMixtapePage[] = MIXTAPE_SOURCE_DIR "/man/mixtape.1";
constexpr char kMountPage[] = MIXTAPE_SOURCE_DIR "/man/mount.mixtape.8";
constexpr char kOptionsSource[] = MIXTAPE_SOURCE_DIR "/mount-helper/options.cc";

// The text of a man page with the escapes that matter here undone: "\-" is
// a dash, and font changes (\fB, \fI, \fP, \fR) vanish.
std::string man_text(const std::string& path) {
  std::string text = read_file(path);
  text = std::regex_replace(text, std::regex(R"(\\f[BIPR])"), "");
  text = std::regex_replace(text, std::regex(R"(\\-)"), "-");
  return text;
}

std::set<std::string> matches(const std::string& text, const std::regex& pattern, int group = 0) {
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern);
       it != std::sregex_iterator(); ++it)
    out.insert((*it)[group]);
  return out;
}

// What one `mixtape ... --help` says: the subcommands it lists and the
// flags (long and short) of its options column.
struct Help {
  std::vector<std::string> subcommands;
  std::set<std::string> flags;
};

Help help_of(const std::string& command) {
  CommandResult r = run_shell(std::string(kMixtape) + " " + command + " --help");
  EXPECT_EQ(r.status, 0) << command << ": " << r.err;
  Help help;
  std::istringstream lines(r.out);
  std::string section;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != ' ') {
      section = line;
      continue;
    }
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.empty()) continue;
    if (section == "Subcommands:") {
      help.subcommands.push_back(first);
    } else if (section == "Options:" && first[0] == '-') {
      // "-h,--help", "-R,--recursive", "--no-hash{false}"
      first = first.substr(0, first.find('{'));
      std::istringstream names(first);
      for (std::string name; std::getline(names, name, ',');) help.flags.insert(name);
    }
  }
  return help;
}

// Every command path below `prefix` ("" for the top), with its help.
void walk(const std::string& prefix, std::map<std::string, Help>& out) {
  Help help = help_of(prefix);
  out[prefix] = help;
  for (const auto& sub : help.subcommands) walk(prefix.empty() ? sub : prefix + " " + sub, out);
}

TEST(MixtapeManPage, HasEveryCommandAndFlagAndNoOther) {
  std::map<std::string, Help> commands;
  walk("", commands);
  ASSERT_GE(commands.size(), 15u) << "mixtape --help lists fewer commands than expected";
  const std::string page = man_text(kMixtapePage);
  const std::set<std::string> headings =
      matches(page, std::regex(R"(\n\.SS "mixtape ([a-z ]+)\")"), 1);

  std::set<std::string> all_flags;
  for (const auto& [command, help] : commands) {
    // A command with subcommands is described through them.
    if (!command.empty() && help.subcommands.empty()) {
      EXPECT_TRUE(headings.count(command)) << "no section .SS \"mixtape " << command << "\"";
    }
    for (const auto& flag : help.flags) {
      all_flags.insert(flag);
      std::regex named("(^|[^-a-z])" + flag + "($|[^-a-z])");
      EXPECT_TRUE(std::regex_search(page, named))
          << "mixtape " << command << " takes " << flag << "; man/mixtape.1 does not say so";
    }
  }
  for (const auto& flag : matches(page, std::regex(R"(--[a-z][a-z0-9-]*[a-z0-9])")))
    EXPECT_TRUE(all_flags.count(flag))
        << "man/mixtape.1 names " << flag << ", which no mixtape command takes";
}

// What mount-helper/options.cc accepts: -o keys it compares against, the
// options it ignores, and single-letter flags.
struct HelperOptions {
  std::set<std::string> keys;
  std::set<std::string> ignored;
  std::set<std::string> flags;
};

HelperOptions helper_options() {
  const std::string source = read_file(kOptionsSource);
  HelperOptions out;
  out.keys = matches(source, std::regex(R"re(key == "([a-z_]+)")re"), 1);
  auto begin = source.find("kIgnored = {");
  auto end = source.find("};", begin);
  EXPECT_NE(begin, std::string::npos) << "the ignored options moved in options.cc";
  if (begin != std::string::npos)
    out.ignored = matches(source.substr(begin, end - begin), std::regex(R"re("([a-z_]+)")re"), 1);
  out.flags = matches(source, std::regex(R"(case '([a-z])':)"), 1);
  return out;
}

// The OPTIONS section of mount.mixtape.8: the term of each .TP entry.
std::vector<std::string> documented_options(const std::string& page) {
  auto begin = page.find("\n.SH OPTIONS\n");
  auto end = page.find("\n.SH ", begin + 1);
  std::vector<std::string> out;
  if (begin == std::string::npos) return out;
  std::istringstream lines(page.substr(begin, end - begin));
  bool term_next = false;
  for (std::string line; std::getline(lines, line);) {
    if (line == ".TP") {
      term_next = true;
      continue;
    }
    if (term_next) {
      std::smatch m;
      // ".B allow_other", ".BI identity= FILE", ".BI recall= open | read | never"
      if (std::regex_match(line, m, std::regex(R"(\.BI? ([-a-z_]+=?).*)"))) out.push_back(m[1]);
      term_next = false;
    }
  }
  return out;
}

TEST(MountManPage, HasEveryOptionTheHelperAcceptsAndEveryListedOneIsAccepted) {
  HelperOptions accepted = helper_options();
  ASSERT_GE(accepted.keys.size(), 10u);
  ASSERT_GE(accepted.ignored.size(), 10u);
  ASSERT_GE(accepted.flags.size(), 4u);
  const std::string page = man_text(kMountPage);
  auto options = page.substr(page.find("\n.SH OPTIONS\n"));
  options = options.substr(0, options.find("\n.SH ", 1));
  for (const auto& key : accepted.keys)
    EXPECT_TRUE(std::regex_search(options, std::regex("\\.BI? " + key + "(=|\\n)")))
        << "mount.mixtape accepts -o " << key << "; the OPTIONS of mount.mixtape.8 lack it";
  for (const auto& key : accepted.ignored)
    EXPECT_TRUE(std::regex_search(options, std::regex("\\.BR? " + key + "[ ,\\n]")))
        << "mount.mixtape ignores -o " << key << "; mount.mixtape.8 does not list it";
  for (const auto& flag : accepted.flags)
    EXPECT_NE(options.find(".B -" + flag + "\n"), std::string::npos)
        << "mount.mixtape takes -" << flag << "; mount.mixtape.8 does not describe it";
  EXPECT_NE(options.find("x-"), std::string::npos);

  // The other way round: the built helper accepts what the page lists.
  TempDir dir;
  write_file(dir.file("catalog.db"), "");
  std::filesystem::create_directories(dir.file("mnt"));
  const std::map<std::string, std::string> sample_value = {
      {"wait=", "30"},     {"idle=", "60"},          {"cache_size=", "500G"},
      {"recall=", "read"}, {"identity=", "/a/file"}, {"device=", "/dev/nst0"}};
  auto fake_mount = [&](const std::string& option) {
    return run_shell(std::string(kMountHelper) + " " + shell_quote(dir.file("catalog.db")) + " " +
                     shell_quote(dir.file("mnt")) + " -f -o " + shell_quote(option));
  };
  std::vector<std::string> listed = documented_options(page);
  ASSERT_GE(listed.size(), accepted.keys.size());
  for (const auto& term : listed) {
    if (term[0] == '-') continue;  // a flag: checked against the parser above
    std::string option = term;
    if (term.back() == '=')
      option += sample_value.count(term) ? sample_value.at(term) : std::string("/some/path");
    CommandResult r = fake_mount(option);
    if (term == "rw") {
      EXPECT_NE(r.status, 0) << "rw must be refused";
      EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.status, 0) << "-o " << option << ": " << r.err;
    }
  }
  for (const auto& key : accepted.ignored) EXPECT_EQ(fake_mount(key).status, 0) << key;
  EXPECT_EQ(fake_mount("x-systemd.automount").status, 0);
  // And it does refuse what it does not know, so the checks above mean something.
  CommandResult unknown = fake_mount("no_such_option");
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("unknown option 'no_such_option'"), std::string::npos) << unknown.err;
}

TEST(ManPages, RenderWithoutWarnings) {
  for (const char* page : {kMixtapePage, kMountPage}) {
    CommandResult groff = run_shell("groff -man -Tutf8 -ww -z " + shell_quote(page) + " 2>&1");
    EXPECT_EQ(groff.status, 0) << page;
    EXPECT_EQ(groff.out, "") << page;
    CommandResult man = run_shell("MANWIDTH=80 man --warnings -l " + shell_quote(page));
    EXPECT_EQ(man.status, 0) << page << ": " << man.err;
    EXPECT_EQ(man.err, "") << page;
    EXPECT_NE(man.out.find("NAME"), std::string::npos) << page;
  }
}

// `cmake --install` with DESTDIR into a scratch root, as packaging does: the
// install also makes /sbin/mount.mixtape, which must never land in the real
// /sbin from a test.
class Install {
 public:
  explicit Install(const std::string& prefix) {
    result_ =
        run_shell("DESTDIR=" + shell_quote(root_.path()) + " " + MIXTAPE_CMAKE + " --install " +
                  shell_quote(MIXTAPE_BINARY_DIR) + " --prefix " + shell_quote(prefix));
  }
  const CommandResult& result() const { return result_; }
  // Where an absolute path of the installed system is in the scratch root.
  std::string staged(const std::string& path) const { return root_.path() + path; }

 private:
  TempDir root_;
  CommandResult result_;
};

TEST(ManPages, InstallWhereManFindsThem) {
  Install install("/usr/local");
  ASSERT_EQ(install.result().status, 0) << install.result().out << install.result().err;
  const std::string prefix = install.staged("/usr/local");
  EXPECT_TRUE(std::filesystem::exists(prefix + "/bin/mixtape"));
  EXPECT_TRUE(std::filesystem::exists(prefix + "/sbin/mount.mixtape"));
  EXPECT_EQ(read_file(prefix + "/share/man/man1/mixtape.1"), read_file(kMixtapePage));
  EXPECT_EQ(read_file(prefix + "/share/man/man8/mount.mixtape.8"), read_file(kMountPage));
  // man(1) derives its search path from PATH (DIR/bin -> DIR/share/man).
  const std::string env =
      "env -i PATH=" + shell_quote(prefix + "/bin:" + prefix + "/sbin:/usr/bin:/bin");
  CommandResult one = run_shell(env + " man -w mixtape");
  EXPECT_EQ(one.out, prefix + "/share/man/man1/mixtape.1\n") << one.err;
  CommandResult eight = run_shell(env + " man -w 8 mount.mixtape");
  EXPECT_EQ(eight.out, prefix + "/share/man/man8/mount.mixtape.8\n") << eight.err;
}

// util-linux's mount(8) runs helpers from /sbin, /sbin/fs.d and /sbin/fs
// only. An install under /usr/local links /sbin/mount.mixtape to the helper,
// and `mount -t mixtape` then runs it: checked in a private mount namespace
// whose /usr/local and /sbin are the staged ones (over the real ones).
TEST(ManPages, InstallPutsTheMountHelperWhereMountLooks) {
  for (const char* tool : {"unshare", "mount"})
    ASSERT_TRUE(test_support::have_tool(tool)) << tool << " is not installed";
  Install install("/usr/local");
  ASSERT_EQ(install.result().status, 0) << install.result().out << install.result().err;
  const std::string link = install.staged("/sbin/mount.mixtape");
  ASSERT_TRUE(std::filesystem::is_symlink(link)) << install.result().out;
  EXPECT_EQ(std::filesystem::read_symlink(link), "/usr/local/sbin/mount.mixtape");
  EXPECT_TRUE(std::filesystem::exists(install.staged("/usr/local/sbin/mount.mixtape")));

  TempDir work;
  std::filesystem::create_directories(work.file("mnt"));
  write_file(work.file("catalog.db"), "");
  const std::string sbin = std::filesystem::canonical("/sbin").string();
  // -f (fake) and -v: mount(8) passes them on, and the helper only checks
  // its arguments and says so; an option it does not know is its error,
  // not mount(8)'s.
  auto mount = [&](const std::string& options) {
    const std::string inner =
        "mount --bind " + shell_quote(install.staged("/usr/local")) + " /usr/local" +
        " && mount -t overlay overlay -o lowerdir=" + shell_quote(install.staged("/sbin")) + ":" +
        sbin + " " + sbin + " && mount -f -v -t mixtape " + shell_quote(work.file("catalog.db")) +
        " " + shell_quote(work.file("mnt")) + " -o " + options;
    return run_shell("unshare -m --propagation private bash -c " + shell_quote(inner));
  };
  CommandResult good = mount("noauto,recall=never");
  EXPECT_EQ(good.status, 0) << good.out << good.err;
  EXPECT_NE(good.err.find("mount.mixtape: fake mount of " + work.file("catalog.db")),
            std::string::npos)
      << good.out << good.err;
  CommandResult bad = mount("noauto,no_such_option");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("mount.mixtape: unknown option 'no_such_option'"), std::string::npos)
      << bad.err;
}

// With the prefix whose sbin is /sbin itself (/usr on a merged-/usr system
// like Debian 12), the helper is already there: no link may replace it.
TEST(ManPages, InstallIntoTheSystemSbinMakesNoLink) {
  const std::string sbin = std::filesystem::canonical("/sbin").string();
  const std::string prefix = std::filesystem::path(sbin).parent_path().string();
  Install install(prefix);
  ASSERT_EQ(install.result().status, 0) << install.result().out << install.result().err;
  const std::string helper = install.staged(prefix + "/sbin/mount.mixtape");
  EXPECT_TRUE(std::filesystem::is_regular_file(std::filesystem::symlink_status(helper)));
  EXPECT_FALSE(std::filesystem::is_symlink(install.staged("/sbin/mount.mixtape")));
}

}  // namespace
}  // namespace mixtape::cli
