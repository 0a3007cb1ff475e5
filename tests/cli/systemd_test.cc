// What `cmake --install` adds for the everyday: the systemd units of a
// nightly backup (checked by systemd-analyze, and their command run as the
// service would run it, the drive named once in the config file), the
// fstab line with x-systemd.automount that docs/CLI.md gives (turned into
// an automount unit by systemd-fstab-generator, and tried with `mount -f
// -T` in a mount namespace of its own), and the bash completion.
#include <regex>

#include "tests/cli/operator_util.h"

namespace mixtape::cli::testing {
namespace {

constexpr char kCliDoc[] = MIXTAPE_SOURCE_DIR "/docs/CLI.md";
constexpr char kGenerator[] = "/usr/lib/systemd/system-generators/systemd-fstab-generator";

// An install under /usr/local into a scratch DESTDIR, as packaging does.
class Installed {
 public:
  Installed() {
    result_ = run_shell("DESTDIR=" + shell_quote(root_.path()) + " cmake --install " +
                        shell_quote(MIXTAPE_BINARY_DIR) + " --prefix /usr/local");
  }
  const CommandResult& result() const { return result_; }
  std::string staged(const std::string& path) const { return root_.path() + path; }
  // `command` in a mount namespace whose /usr/local is the staged one and
  // whose /sbin also holds the staged mount.mixtape.
  CommandResult in_namespace(const std::string& command) const {
    const std::string sbin = fs::canonical("/sbin").string();
    const std::string inner = "mount --bind " + shell_quote(staged("/usr/local")) +
                              " /usr/local && mount -t overlay overlay -o lowerdir=" +
                              shell_quote(staged("/usr/local/sbin")) + ":" + sbin + " " + sbin +
                              " && " + command;
    return run_shell("unshare -m --propagation private bash -c " + shell_quote(inner));
  }

 private:
  TempDir root_;
  CommandResult result_;
};

std::string unit_dir() {
  return "/usr/local/lib/systemd/system";
}

TEST(Systemd, TheBackupUnitsVerifyAndTheirCommandBacksUpWithTheConfiguredDrive) {
  for (const char* tool : {"systemd-analyze", "systemd-escape", "unshare"})
    ASSERT_TRUE(test_support::have_tool(tool)) << tool << " is not installed";
  Installed install;
  ASSERT_EQ(install.result().status, 0) << install.result().out << install.result().err;
  const std::string service = install.staged(unit_dir() + "/mixtape-backup@.service");
  const std::string timer = install.staged(unit_dir() + "/mixtape-backup@.timer");
  ASSERT_TRUE(fs::exists(service));
  ASSERT_TRUE(fs::exists(timer));

  // An instance for the operator's data folder, escaped as the unit says.
  Operator op;
  CommandResult escaped = run_shell("systemd-escape --path " + shell_quote(op.data()));
  ASSERT_EQ(escaped.status, 0);
  std::string instance = escaped.out.substr(0, escaped.out.find('\n'));
  TempDir units;
  fs::copy_file(service, units.file("mixtape-backup@" + instance + ".service"));
  fs::copy_file(timer, units.file("mixtape-backup@" + instance + ".timer"));
  CommandResult verify =
      install.in_namespace("systemd-analyze verify --man=no " +
                           shell_quote(units.file("mixtape-backup@" + instance + ".service")) +
                           " " + shell_quote(units.file("mixtape-backup@" + instance + ".timer")));
  EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
  EXPECT_EQ(verify.err, "");

  // What the service runs: its ExecStart, %f the unescaped instance, with
  // the drive and capacity in root's (here: the test home's) config file.
  std::smatch m;
  const std::string text = read_file(service);
  ASSERT_TRUE(std::regex_search(text, m, std::regex("\nExecStart=([^\n]+)\n"))) << text;
  std::string command = m[1];
  EXPECT_EQ(command, "/usr/local/bin/mixtape backup %f --quiet");
  command.replace(command.find("%f"), 2, shell_quote(op.data()));
  write_file(op.home() + "/.config/mixtape/config",
             "library = " + op.library() + "\ncapacity = 64M\n");
  ASSERT_EQ(op.mixtape("init --copies 1").status, 0);
  fs::create_directories(op.library());
  CommandResult run =
      install.in_namespace("cd / && env -i HOME=" + shell_quote(op.home()) + " PATH=/usr/bin:/bin" +
                           passed_through_words() + " " + command);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("to L00001"), std::string::npos) << run.out;
  EXPECT_FALSE(run.err.find('%') != std::string::npos) << "no progress line: " << run.err;
  EXPECT_NE(op.mixtape("ls data/notes.txt").out.find("notes.txt"), std::string::npos);
}

// docs/CLI.md's fstab line, with its paths made the test's.
std::string documented_fstab_line() {
  const std::string doc = read_file(kCliDoc);
  const auto marker = doc.find("<!-- cli-test: fstab -->");
  EXPECT_NE(marker, std::string::npos) << "docs/CLI.md lost its fstab block";
  const auto begin = doc.find('\n', doc.find("```text", marker)) + 1;
  return doc.substr(begin, doc.find('\n', begin) - begin);
}

TEST(Fstab, TheDocumentedAutomountLineMakesAnAutomountUnitAndMounts) {
  for (const char* tool : {"unshare", "mount"})
    ASSERT_TRUE(test_support::have_tool(tool)) << tool << " is not installed";
  ASSERT_TRUE(fs::exists(kGenerator));
  std::string line = documented_fstab_line();
  ASSERT_NE(line.find("x-systemd.automount"), std::string::npos) << line;
  TempDir dir;
  const std::map<std::string, std::string> ours = {
      {"/root/.local/share/mixtape/catalog.db", dir.file("catalog.db")},
      {"/root/.config/mixtape/identity.txt", dir.file("identity.txt")},
      {"/srv/tapes", dir.file("tapes")},
      {"/mnt/tape", dir.file("mnt")}};
  for (const auto& [theirs, mine] : ours) {
    auto at = line.find(theirs);
    ASSERT_NE(at, std::string::npos) << theirs << " in " << line;
    line.replace(at, theirs.size(), mine);
  }
  write_file(dir.file("fstab"), line + "\n");
  write_file(dir.file("catalog.db"), "");
  fs::create_directories(dir.file("mnt"));

  // systemd's reading: an automount unit for the mount point, idle timeout
  // and all, and a mount unit of type mixtape.
  fs::create_directories(dir.file("units"));
  CommandResult g =
      run_shell("SYSTEMD_FSTAB=" + shell_quote(dir.file("fstab")) + " " + kGenerator + " " +
                shell_quote(dir.file("units")) + " " + shell_quote(dir.file("units")) + " " +
                shell_quote(dir.file("units")));
  ASSERT_EQ(g.status, 0) << g.err;
  CommandResult name = run_shell("systemd-escape --path " + shell_quote(dir.file("mnt")));
  const std::string unit = dir.file("units/" + name.out.substr(0, name.out.find('\n')));
  ASSERT_TRUE(fs::exists(unit + ".automount")) << g.err;
  const std::string automount = read_file(unit + ".automount");
  EXPECT_NE(automount.find("Where=" + dir.file("mnt") + "\n"), std::string::npos) << automount;
  EXPECT_NE(automount.find("TimeoutIdleSec=10min"), std::string::npos) << automount;
  const std::string mount_unit = read_file(unit + ".mount");
  EXPECT_NE(mount_unit.find("Type=mixtape\n"), std::string::npos) << mount_unit;
  EXPECT_NE(mount_unit.find("What=" + dir.file("catalog.db") + "\n"), std::string::npos);

  // mount(8)'s: the line, through /sbin/mount.mixtape, checked with -f.
  Installed install;
  ASSERT_EQ(install.result().status, 0) << install.result().err;
  CommandResult fake = install.in_namespace("mount -f -v -T " + shell_quote(dir.file("fstab")) +
                                            " " + shell_quote(dir.file("mnt")));
  EXPECT_EQ(fake.status, 0) << fake.out << fake.err;
  EXPECT_NE(fake.err.find("mount.mixtape: fake mount of " + dir.file("catalog.db") + " on " +
                          dir.file("mnt")),
            std::string::npos)
      << fake.out << fake.err;
}

TEST(Completion, InstalledWhereBashCompletionLooksAndCompletesFromTheDefinition) {
  Installed install;
  ASSERT_EQ(install.result().status, 0) << install.result().err;
  const std::string script = install.staged("/usr/local/share/bash-completion/completions/mixtape");
  ASSERT_TRUE(fs::exists(script));
  EXPECT_EQ(read_file(script), run_shell(std::string(kMixtape) + " completion bash").out);
  auto complete = [&](const std::string& words) {
    return run_shell("bash -c " +
                     shell_quote("source " + shell_quote(script) + "; COMP_WORDS=(" + words +
                                 "); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _mixtape; "
                                 "printf '%s\\n' \"${COMPREPLY[@]}\"; complete -p mixtape"))
        .out;
  };
  EXPECT_EQ(complete("mixtape ba"), "backup\ncomplete -o filenames -F _mixtape mixtape\n");
  EXPECT_EQ(complete("mixtape re"),
            "retire\nrestore\nrecover\ncomplete -o filenames -F _mixtape "
            "mixtape\n");
  EXPECT_NE(complete("mixtape tape ''").find("location\n"), std::string::npos);
  EXPECT_EQ(complete("mixtape retire L00001 --reason ''"),
            "lost\ndestroyed\nbad\nworn\ncomplete -o filenames -F _mixtape mixtape\n");
  // Flags of the command named, past the values of other flags.
  const std::string verify = complete("mixtape verify --catalog x.db --ol");
  EXPECT_EQ(verify.substr(0, verify.find('\n')), "--oldest");
  const std::string backup = complete("mixtape backup --exclude-");
  EXPECT_EQ(backup.substr(0, backup.find("complete")), "--exclude-from\n");
}

}  // namespace
}  // namespace mixtape::cli::testing
