// `mixtape tape info|cat|mkimage`, run as a user would run the built binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include "engine/tape/image_drive.h"
#include "tests/tape/tape_test_util.h"

namespace mixtape::tape::testing {
namespace {

constexpr char kMixtape[] = MIXTAPE_BINARY_DIR "/cli/mixtape";

using CommandRun = test_support::CommandResult;

class TapeCliTest : public ::testing::Test {
 protected:
  CommandRun mixtape(const std::string& args) {
    return test_support::run_shell(std::string(kMixtape) + " " + args);
  }

  // file 0: a label for L00042; file 1: 5 x 4096 + 100 bytes; file 2: 10 bytes.
  void make_tape() {
    ImageDrive::create(image_, {16 << 20, 1 << 20});
    auto d = ImageDrive::open(image_);
    write_label(*d, "L00042");
    file1_ = random_bytes(5 * 4096 + 100, 1);
    RecordWriter writer(*d, 4096);
    writer.write(file1_);
    writer.close();
    put(*d, "0123456789");
    d->write_filemarks(1);
  }

  TempDir dir_;
  std::string image_ = dir_.file("L00042.tap");
  Bytes file1_;
};

TEST_F(TapeCliTest, InfoListsFilesAndTheLabelSerial) {
  make_tape();
  CommandRun run = mixtape("tape info --device '" + image_ + "'");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("serial: L00042\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("file 0: first block 0, records 1, bytes 10240 (label L00042)\n"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("file 1: first block 2, records 6, bytes 20580\n"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("file 2: first block 9, records 1, bytes 10\n"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("end of data at block 11\n"), std::string::npos) << run.out;
}

TEST_F(TapeCliTest, InfoAsJson) {
  make_tape();
  CommandRun run = mixtape("tape info --json --device '" + image_ + "'");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("\"serial\": \"L00042\""), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("{\"file\": 1, \"first_block\": 2, \"records\": 6, \"bytes\": 20580, "
                         "\"media_errors\": 0}"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("\"end_of_data_block\": 11"), std::string::npos) << run.out;
}

TEST_F(TapeCliTest, InfoOnAnUnlabelledTape) {
  ImageDrive::create(image_, {1 << 20, 0});
  {
    auto d = ImageDrive::open(image_);
    put(*d, "not a tar archive");
    d->write_filemarks(1);
  }
  CommandRun run = mixtape("tape info --device '" + image_ + "'");
  ASSERT_EQ(run.status, 0) << run.err;
  // A tape mixtape did not write: no serial of its own, the one it answers
  // to in a drive, and what each file holds (engine/foreign).
  EXPECT_NE(run.out.find("serial: none (a tape mixtape did not write; in a drive it is tar-"),
            std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("file 0: first block 0, records 1, bytes 17 (data)\n"), std::string::npos)
      << run.out;
}

TEST_F(TapeCliTest, CatWritesTheRecordsOfOneFile) {
  make_tape();
  CommandRun run = mixtape("tape cat --device '" + image_ + "' --file 1");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, std::string(as_chars(file1_)));
  run = mixtape("tape cat --device '" + image_ + "' --file 2");
  EXPECT_EQ(run.out, "0123456789");
  run = mixtape("tape cat --device '" + image_ + "' --file 0");
  EXPECT_EQ(run.out, std::string(as_chars(label_tar("L00042"))));
}

TEST_F(TapeCliTest, CatOfAMissingFileFailsWithOneLine) {
  make_tape();
  for (const char* file : {"3", "7"}) {
    CommandRun run = mixtape("tape cat --device '" + image_ + "' --file " + file);
    EXPECT_NE(run.status, 0);
    EXPECT_EQ(run.err, "mixtape: " + image_ + ": the tape has no file " + file + "\n");
    EXPECT_EQ(run.out, "");
  }
}

TEST_F(TapeCliTest, StatsJsonIsWrittenAtExit) {
  make_tape();
  const std::string stats = dir_.file("stats.json");
  CommandRun run =
      mixtape("tape cat --device '" + image_ + "' --file 1 --stats-json '" + stats + "'");
  ASSERT_EQ(run.status, 0) << run.err;
  std::string json(as_chars(read_file(stats)));
  EXPECT_NE(json.find("\"records_read\": 6"), std::string::npos) << json;
  EXPECT_NE(json.find("\"bytes_read\": 20580"), std::string::npos) << json;
  EXPECT_NE(json.find("\"filemark_spaces\": 1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"tape_seconds\": "), std::string::npos) << json;
  // Also when the command fails.
  ::unlink(stats.c_str());
  run = mixtape("tape cat --device '" + image_ + "' --file 9 --stats-json '" + stats + "'");
  EXPECT_NE(run.status, 0);
  EXPECT_NE(std::string(as_chars(read_file(stats))).find("\"filemark_spaces\": 1"),
            std::string::npos);
}

TEST_F(TapeCliTest, MkimageMakesABlankImageOfTheGivenSize) {
  const std::string made = dir_.file("new.tap");
  CommandRun run =
      mixtape("tape mkimage --device '" + made + "' --capacity 64M --early-warning 2M");
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("capacity 64.0 MiB"), std::string::npos) << run.out;
  auto d = ImageDrive::open(made);
  EXPECT_EQ(d->geometry().capacity, 64u << 20);
  EXPECT_EQ(d->geometry().early_warning, 2u << 20);
  EXPECT_TRUE(d->status().eod);
  d.reset();
  run = mixtape("tape mkimage --device '" + made + "' --capacity 64M");
  EXPECT_NE(run.status, 0) << "an existing image is never overwritten";
  run = mixtape("tape info --device '" + made + "'");
  EXPECT_NE(run.out.find("blank tape"), std::string::npos) << run.out;
}

TEST_F(TapeCliTest, MissingImageIsAnError) {
  CommandRun run = mixtape("tape info --device '" + dir_.file("none.tap") + "'");
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.err.find("no such tape image"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace mixtape::tape::testing
