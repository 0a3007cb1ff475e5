// MemberPipeline: members' bytes hashed and written on threads of their own,
// each member's sink seeing write..., then commit (its hash matched) or
// abort, and `done` once, in the order the members were handed over.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>

#include "engine/crypto/crypto.h"
#include "engine/restore/internal.h"
#include "tests/restore/test_util.h"

namespace mixtape::restore::testing {
namespace {

using detail::MemberError;
using detail::MemberPipeline;
using detail::SinkFailure;

// Records what happens to it, and which thread wrote.
class RecordingSink final : public RecallSink {
 public:
  explicit RecordingSink(std::size_t fail_after = SIZE_MAX) : fail_after_(fail_after) {}
  void begin(const catalog::VersionRow&) override {}
  void write(ByteSpan data) override {
    if (data_.size() + data.size() > fail_after_) throw Error("the disk is full");
    data_.append(as_chars(data));
    writer_ = std::this_thread::get_id();
  }
  void commit() override { events_ += "commit;"; }
  void abort() noexcept override { events_ += "abort;"; }
  std::string data_;
  std::string events_;
  std::thread::id writer_;

 private:
  std::size_t fail_after_;
};

// Every outcome, in the order `done` was called.
struct Outcomes {
  std::mutex mutex;
  std::vector<std::pair<int, std::string>> done;  // member, "ok" or the error
  MemberPipeline::Done for_member(int member) {
    return [this, member](std::exception_ptr error) {
      std::string what = "ok";
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const SinkFailure& failure) {
          try {
            failure.rethrow();
          } catch (const std::exception& e) {
            what = std::string("sink: ") + e.what();
          }
        } catch (const MemberError& e) {
          what = std::string(e.kind() == MemberError::Kind::kMismatch ? "mismatch: " : "member: ") +
                 e.what();
        } catch (const std::exception& e) {
          what = e.what();
        }
      }
      std::lock_guard lock(mutex);
      done.emplace_back(member, what);
    };
  }
};

// Hands `data` over in pieces of at most `piece` bytes.
void hand_over(MemberPipeline& pipeline, const std::string& data, std::size_t piece) {
  for (std::size_t at = 0; at < data.size() && !pipeline.failed();) {
    MutableByteSpan room = pipeline.room();
    std::size_t n = std::min({piece, room.size(), data.size() - at});
    std::memcpy(room.data(), data.data() + at, n);
    pipeline.add(n);
    at += n;
  }
}

TEST(MemberPipeline, MembersAreWrittenCommittedAndReportedInOrder) {
  Outcomes outcomes;
  std::vector<std::string> data;
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  {
    // Few small chunks: members share the queues and the reader waits for
    // chunks again and again.
    MemberPipeline pipeline(3, 4096);
    for (int i = 0; i < 20; ++i) {
      data.push_back(random_text(static_cast<std::size_t>(i) * 3001, 70 + i));
      sinks.push_back(std::make_unique<RecordingSink>());
      pipeline.begin(*sinks.back(), crypto::blake2b256(as_bytes(data.back())),
                     outcomes.for_member(i));
      hand_over(pipeline, data.back(), 1000 + static_cast<std::size_t>(i) * 100);
      pipeline.end("tape L00001, archive file 2, block 7");
    }
    pipeline.wait_idle();
  }
  ASSERT_EQ(outcomes.done.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    const auto n = static_cast<std::size_t>(i);
    EXPECT_EQ(outcomes.done[n], std::make_pair(i, std::string("ok")));
    EXPECT_TRUE(sinks[n]->data_ == data[n]) << i;
    EXPECT_EQ(sinks[n]->events_, "commit;") << i;
    if (i > 0) {  // member 0 is empty
      EXPECT_NE(sinks[n]->writer_, std::this_thread::get_id()) << "written by the reader";
    }
  }
}

TEST(MemberPipeline, AHashMismatchAbortsThatMemberAlone) {
  Outcomes outcomes;
  RecordingSink good1, bad, good2;
  const std::string a = random_text(10'000, 1), b = random_text(10'000, 2);
  {
    MemberPipeline pipeline(4, 4096);
    pipeline.begin(good1, crypto::blake2b256(as_bytes(a)), outcomes.for_member(0));
    hand_over(pipeline, a, 3000);
    pipeline.end("block 1");
    pipeline.begin(bad, crypto::blake2b256(as_bytes(a)), outcomes.for_member(1));  // b's bytes
    hand_over(pipeline, b, 3000);
    pipeline.end("tape L00001, archive file 4, block 9");
    pipeline.begin(good2, crypto::blake2b256(as_bytes(b)), outcomes.for_member(2));
    hand_over(pipeline, b, 3000);
    pipeline.end("block 3");
  }
  ASSERT_EQ(outcomes.done.size(), 3u);
  EXPECT_EQ(outcomes.done[0].second, "ok");
  EXPECT_EQ(outcomes.done[1].second.rfind("mismatch: hash mismatch: the catalog says ", 0), 0u)
      << outcomes.done[1].second;
  EXPECT_NE(outcomes.done[1].second.find("(tape L00001, archive file 4, block 9)"),
            std::string::npos)
      << outcomes.done[1].second;
  EXPECT_EQ(outcomes.done[2].second, "ok");
  EXPECT_EQ(bad.events_, "abort;");
  EXPECT_EQ(good1.events_, "commit;");
  EXPECT_EQ(good2.events_, "commit;");
}

TEST(MemberPipeline, AFailingSinkIsReportedAsTheSinksAndTheReaderMayStop) {
  Outcomes outcomes;
  RecordingSink full(5000);
  const std::string a = random_text(100'000, 3);
  MemberPipeline pipeline(4, 1024);
  pipeline.begin(full, crypto::blake2b256(as_bytes(a)), outcomes.for_member(0));
  hand_over(pipeline, a, 1024);  // stops early once failed() says so, or hands all over
  pipeline.end("block 1");
  pipeline.wait_idle();
  ASSERT_EQ(outcomes.done.size(), 1u);
  EXPECT_EQ(outcomes.done[0].second, "sink: the disk is full");
  EXPECT_EQ(full.events_, "abort;");
}

TEST(MemberPipeline, AReadThatFailsAbortsWithItsError) {
  Outcomes outcomes;
  RecordingSink sink;
  const std::string a = random_text(9'000, 4);
  {
    MemberPipeline pipeline;
    pipeline.begin(sink, crypto::blake2b256(as_bytes(a)), outcomes.for_member(0));
    hand_over(pipeline, a.substr(0, 4000), 1000);
    pipeline.room();  // taken and not used: given back by fail()
    pipeline.fail(std::make_exception_ptr(
        MemberError(MemberError::Kind::kUnreadable, "media error (tape L00001, block 5)")));
  }
  ASSERT_EQ(outcomes.done.size(), 1u);
  EXPECT_EQ(outcomes.done[0].second, "member: media error (tape L00001, block 5)");
  EXPECT_EQ(sink.events_, "abort;");
}

}  // namespace
}  // namespace mixtape::restore::testing
