#include "mount-helper/options.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/common/common.h"
#include "tests/support/test_support.h"

namespace mixtape::mount {
namespace {

constexpr char kReadOnly[] = "mixtape mounts are read-only; remove 'rw'";

Options parse(std::vector<std::string> args) {
  args.insert(args.begin(), "mount.mixtape");
  return parse_options(args);
}

TEST(MountOptions, TakesSourceDirAndOptions) {
  auto o = parse({"/var/lib/mixtape/catalog.db", "/mnt/tape", "-o",
                  "identity=/root/id.txt,library=/srv/tapes,cache_size=2G,wait=30,recall=read"});
  EXPECT_EQ(o.source, "/var/lib/mixtape/catalog.db");
  EXPECT_EQ(o.mountpoint, "/mnt/tape");
  EXPECT_EQ(o.identity, "/root/id.txt");
  EXPECT_EQ(o.library, "/srv/tapes");
  EXPECT_EQ(o.cache_size, 2ull << 30);
  ASSERT_TRUE(o.wait_seconds);
  EXPECT_DOUBLE_EQ(*o.wait_seconds, 30);
  EXPECT_EQ(o.recall, RecallPolicy::kRead);
  EXPECT_FALSE(o.foreground);
}

TEST(MountOptions, MinusFIsFakeAndForegroundIsAnOption) {
  auto o = parse({"cat.db", "/mnt/x", "-f"});
  EXPECT_TRUE(o.fake);
  EXPECT_FALSE(o.foreground);
  auto p = parse({"cat.db", "/mnt/x", "-o", "foreground"});
  EXPECT_FALSE(p.fake);
  EXPECT_TRUE(p.foreground);
}

TEST(MountOptions, IgnoresWhatFstabPasses) {
  auto o = parse({"cat.db", "/mnt/x", "-o", "ro,noauto,user,_netdev,nofail,x-systemd.automount"});
  EXPECT_EQ(o.ignored.size(), 6u);
}

TEST(MountOptions, RefusesRw) {
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "rw"}), Error, kReadOnly);
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "noauto,rw"}), Error, kReadOnly);
}

TEST(MountOptions, MountsImplicitRwIsItsDefaultNotARequest) {
  std::vector<std::string> argv = {"mount.mixtape", "cat.db", "/mnt/x", "-o", "rw,noauto"};
  EXPECT_NO_THROW(parse_options(argv, /*called_by_mount=*/true));
  EXPECT_THROW_MESSAGE(parse_options(argv, /*called_by_mount=*/false), Error, kReadOnly);
  // Only the leading flag mount(8) adds; a second rw is the user's.
  argv[4] = "rw,noauto,rw";
  EXPECT_THROW_MESSAGE(parse_options(argv, true), Error, kReadOnly);
}

TEST(MountOptions, UnknownOptionsNeedSloppy) {
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "bogus=1"}), Error,
                       "unknown option 'bogus' (mount -s ignores unknown options)");
  // mount(8) may put -s after the options.
  auto o = parse({"cat.db", "/mnt/x", "-o", "bogus=1", "-s"});
  EXPECT_TRUE(o.sloppy);
  EXPECT_EQ(o.ignored.size(), 1u);
}

TEST(MountOptions, ARelativeSourceIsMadeAbsolute) {
  // The daemon changes to / once mounted, and opens the catalog again there.
  auto o = parse({"catalog.db", "mnt"});
  EXPECT_EQ(o.source, (std::filesystem::current_path() / "catalog.db").string());
  EXPECT_EQ(parse({"/dev/nst0", "/mnt/x"}).source, "/dev/nst0");
}

TEST(MountOptions, IdleDrivesAreReleasedAfterAMinuteUnlessToldOtherwise) {
  EXPECT_DOUBLE_EQ(parse({"cat.db", "/mnt/x"}).idle_seconds, 60);
  EXPECT_DOUBLE_EQ(parse({"cat.db", "/mnt/x", "-o", "idle=5"}).idle_seconds, 5);
  EXPECT_DOUBLE_EQ(parse({"cat.db", "/mnt/x", "-o", "idle=0"}).idle_seconds, 0);
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "idle=soon"}), Error,
                       "idle= takes seconds (at most a year), not 'soon'");
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "idle="}), Error,
                       "option idle needs a value");
}

TEST(MountOptions, RejectsMalformedValues) {
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "recall=sometimes"}), Error,
                       "recall= takes open, read or never, not 'sometimes'");
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "wait=soon"}), Error,
                       "wait= takes seconds (at most a year), not 'soon'");
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "cache_size=lots"}), Error,
                       "cache_size= takes a size such as 512M or 2G, not 'lots'");
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-o", "identity="}), Error,
                       "option identity needs a value");
  EXPECT_THROW_MESSAGE(parse({"cat.db"}), Error, "usage: mount.mixtape SOURCE DIR");
  EXPECT_THROW_MESSAGE(parse({"cat.db", "/mnt/x", "-q"}), Error, "unknown flag '-q'");
}

}  // namespace
}  // namespace mixtape::mount
