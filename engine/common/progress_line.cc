// ProgressLine: the progress of a run as one line on a terminal.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/common/common.h"

namespace mixtape {
namespace {

constexpr auto kMinRedraw = std::chrono::milliseconds(200);
constexpr auto kTick = std::chrono::seconds(1);
// The rate and the time left need the stage to have run this long past its
// first byte: one chunk in a few milliseconds says nothing of the rest.
constexpr auto kRateAfter = std::chrono::milliseconds(250);

void write_out(int fd, const std::string& text) {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a closed terminal is no reason to fail the run
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

class ProgressLine::State {
 public:
  explicit State(Options options) : options_(std::move(options)) {
    if (!options_.now) options_.now = [] { return Clock::now(); };
    if (options_.draw && options_.redraw_thread) ticker_ = std::thread([this] { tick(); });
  }

  ~State() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard lock(mutex_);
    clear();
  }

  void phase(const std::string& name, std::uint64_t total_bytes, std::uint64_t total_items) {
    std::lock_guard lock(mutex_);
    clear();
    name_ = name;
    total_bytes_ = total_bytes;
    total_items_ = total_items;
    bytes_ = items_ = 0;
    current_.clear();
    first_.reset();
    started_ = true;
    last_draw_.reset();
  }

  void totals(std::uint64_t total_bytes, std::uint64_t total_items) {
    std::lock_guard lock(mutex_);
    total_bytes_ = total_bytes;
    total_items_ = total_items;
  }

  void tape(const std::string& serial) {
    std::lock_guard lock(mutex_);
    const bool changed = serial != tape_;
    tape_ = serial;
    // A new tape is news: shown at once (the counters go on).
    if (changed && started_ && last_draw_) draw(options_.now());
  }

  void advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) {
    std::lock_guard lock(mutex_);
    const Clock::time_point now = options_.now();
    if (!first_) {
      // The rate counts from here, and without these bytes (they took no
      // time that could be measured).
      first_ = now;
      bytes_at_first_ = bytes_ + bytes;
    }
    bytes_ += bytes;
    items_ += items;
    if (!current.empty()) current_ = current;
    if (!last_draw_ || now - *last_draw_ >= kMinRedraw) draw(now);
  }

  void warning(const std::string& message) {
    std::lock_guard lock(mutex_);
    clear();
    write_out(options_.fd, options_.program + ": warning: " + message + "\n");
  }

  std::string line() {
    std::lock_guard lock(mutex_);
    return compose(options_.now());
  }

  void clear_now() {
    std::lock_guard lock(mutex_);
    clear();
    last_draw_ = options_.now();  // the next draw waits its turn
  }

 private:
  void tick() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      wake_.wait_for(lock, kTick);
      if (stop_) break;
      const Clock::time_point now = options_.now();
      if (started_ && (!last_draw_ || now - *last_draw_ >= kTick)) draw(now);
    }
  }

  std::size_t width() const {
    if (options_.width) return options_.width;
    struct winsize size {};
    if (::ioctl(options_.fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    return 80;
  }

  // Bytes a second since the stage's first byte; 0 until known.
  double rate(Clock::time_point now) const {
    if (!first_ || now - *first_ < kRateAfter) return 0;
    const double seconds = std::chrono::duration<double>(now - *first_).count();
    return static_cast<double>(bytes_ - bytes_at_first_) / seconds;
  }

  std::string compose(Clock::time_point now) const {
    std::vector<std::string> parts;
    parts.push_back(name_);
    // How far: by bytes when their total is known, else by files.
    std::optional<double> fraction;
    if (total_bytes_) {
      parts.push_back(format_size(bytes_) + " of " + format_size(total_bytes_));
      fraction = static_cast<double>(bytes_) / static_cast<double>(total_bytes_);
    } else if (bytes_) {
      parts.push_back(format_size(bytes_));
    }
    if (!fraction && total_items_)
      fraction = static_cast<double>(items_) / static_cast<double>(total_items_);
    if (fraction) {
      int percent = static_cast<int>(std::min(1.0, *fraction) * 100);
      parts.push_back(std::to_string(percent) + "%");
    }
    if (total_items_)
      parts.push_back(with_commas(items_) + "/" + with_commas(total_items_) + " files");
    else if (items_)
      parts.push_back(with_commas(items_) + " files");
    const double per_second = rate(now);
    if (per_second > 0) parts.push_back(format_size(static_cast<std::uint64_t>(per_second)) + "/s");
    if (fraction) {
      std::string eta = "-:--:--";
      if (total_bytes_ && per_second > 0) {
        const std::uint64_t left = total_bytes_ > bytes_ ? total_bytes_ - bytes_ : 0;
        eta = ProgressLine::format_duration(
            static_cast<std::uint64_t>(static_cast<double>(left) / per_second + 0.5));
      } else if (!total_bytes_ && first_ && now - *first_ >= kRateAfter && items_ > 0) {
        const double seconds = std::chrono::duration<double>(now - *first_).count();
        const std::uint64_t left = total_items_ > items_ ? total_items_ - items_ : 0;
        eta = ProgressLine::format_duration(static_cast<std::uint64_t>(
            static_cast<double>(left) * seconds / static_cast<double>(items_) + 0.5));
      }
      parts.push_back("ETA " + eta);
    }
    if (!tape_.empty()) parts.push_back(tape_);
    std::string line;
    for (const auto& part : parts) line += (line.empty() ? "" : "  ") + part;
    // The current file gets what room is left, its end kept (the name).
    const std::size_t room = width() - 1;  // never the last column: no wrap
    if (!current_.empty() && line.size() + 2 + 8 <= room) {
      std::size_t left = room - line.size() - 2;
      std::string shown =
          current_.size() <= left ? current_ : "..." + current_.substr(current_.size() - left + 3);
      line += "  " + shown;
    }
    if (line.size() > room) line.resize(room);
    return line;
  }

  void draw(Clock::time_point now) {
    last_draw_ = now;
    if (!options_.draw) return;
    write_out(options_.fd, "\r\033[K" + compose(now));
    drawn_ = true;
  }

  void clear() {
    if (drawn_) write_out(options_.fd, "\r\033[K");
    drawn_ = false;
  }

  Options options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread ticker_;
  bool started_ = false;
  bool drawn_ = false;
  std::string name_;
  std::string tape_;
  std::string current_;
  std::uint64_t total_bytes_ = 0, total_items_ = 0, bytes_ = 0, items_ = 0;
  std::uint64_t bytes_at_first_ = 0;
  std::optional<Clock::time_point> first_;
  std::optional<Clock::time_point> last_draw_;
};

ProgressLine::ProgressLine(Options options) : state_(std::make_unique<State>(std::move(options))) {}
ProgressLine::~ProgressLine() = default;

void ProgressLine::phase(const std::string& name, std::uint64_t total_bytes,
                         std::uint64_t total_items) {
  state_->phase(name, total_bytes, total_items);
}
void ProgressLine::totals(std::uint64_t total_bytes, std::uint64_t total_items) {
  state_->totals(total_bytes, total_items);
}
void ProgressLine::tape(const std::string& serial) {
  state_->tape(serial);
}
void ProgressLine::advance(std::uint64_t bytes, std::uint64_t items, const std::string& current) {
  state_->advance(bytes, items, current);
}
void ProgressLine::warning(const std::string& message) {
  state_->warning(message);
}
std::string ProgressLine::line() {
  return state_->line();
}
void ProgressLine::clear() {
  state_->clear_now();
}

std::string ProgressLine::format_duration(std::uint64_t seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu",
                static_cast<unsigned long long>(seconds / 3600),
                static_cast<unsigned long long>(seconds / 60 % 60),
                static_cast<unsigned long long>(seconds % 60));
  return buf;
}

}  // namespace mixtape
