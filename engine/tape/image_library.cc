// ImageLibrary: a folder of "<serial>.tap" images and a few image drives.
// Slots are the files; loading inserts the image into a drive, unloading
// ejects it. The drives persist, so their counters add up across swaps.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {
namespace {

constexpr std::string_view kImageSuffix = ".tap";

bool is_valid_serial(std::string_view serial) {
  try {
    check_serial(serial);
    return true;
  } catch (const TapeError&) {
    return false;
  }
}

}  // namespace

ImageLibrary::ImageLibrary(std::string directory, std::size_t drives, ImageGeometry blank_geometry,
                           TimingModel timing, ImageLibraryOptions options)
    : directory_(std::move(directory)),
      blank_geometry_(blank_geometry),
      options_(std::move(options)) {
  if (drives == 0) {
    throw TapeError(TapeErrorKind::kInvalidArgument, "a tape library needs at least one drive");
  }
  if (options_.read_only) {
    struct stat st {};
    if (::stat(directory_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw TapeError(TapeErrorKind::kNotLoaded, "no tape library at " + directory_);
  } else if (::mkdir(directory_.c_str(), 0755) != 0 && errno != EEXIST) {
    throw TapeError(TapeErrorKind::kDeviceError,
                    "cannot create tape library " + directory_ + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(directory_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw TapeError(TapeErrorKind::kDeviceError, directory_ + " is not a directory");
  }
  for (std::size_t i = 0; i < drives; ++i) drives_.push_back(std::make_unique<ImageDrive>(timing));
  loaded_.resize(drives);
}

std::string ImageLibrary::image_path(const std::string& serial) const {
  check_serial(serial);
  return directory_ + "/" + serial + std::string(kImageSuffix);
}

Drive& ImageLibrary::drive(std::size_t index) {
  if (index >= drives_.size()) {
    throw TapeError(TapeErrorKind::kInvalidArgument,
                    "tape library " + directory_ + " has no drive " + std::to_string(index));
  }
  return *drives_[index];
}

std::vector<std::string> ImageLibrary::serials() {
  std::vector<std::string> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory_.c_str()), ::closedir);
  if (!dir) throw_errno("cannot list tape library " + directory_);
  while (const dirent* entry = ::readdir(dir.get())) {
    std::string_view name = entry->d_name;
    if (name.size() <= kImageSuffix.size() || !name.ends_with(kImageSuffix)) continue;
    name.remove_suffix(kImageSuffix.size());
    if (is_valid_serial(name)) out.emplace_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Drive& ImageLibrary::load(const std::string& serial, std::size_t index) {
  const std::string path = image_path(serial);
  Drive& target = drive(index);
  if (loaded_[index] == serial) {
    target.rewind();
    return target;
  }
  // The cartridge can be in one drive only: take it out of another one.
  for (std::size_t other = 0; other < drives_.size(); ++other) {
    if (loaded_[other] == serial) {
      unload(other);
      ++moves_;
    }
  }
  unload(index);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (options_.read_only)
      throw TapeError(TapeErrorKind::kNotLoaded, "tape " + serial + " is not in the library " +
                                                     directory_ + " (no image " + path + ")");
    ImageDrive::create(path, blank_geometry_);
  }
  insert(index, path);
  loaded_[index] = serial;
  return target;
}

// Another process holding the image (a mount that has it loaded, another
// backup) is waited for up to busy_wait, polling: a lock held elsewhere
// signals nothing here when it goes.
void ImageLibrary::insert(std::size_t index, const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + options_.busy_wait;
  bool told = false;
  for (;;) {
    try {
      drives_[index]->insert(path, options_.read_only);
      return;
    } catch (const TapeInUseError& e) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      if (!told && options_.on_wait) {
        const auto seconds =
            std::chrono::duration_cast<std::chrono::seconds>(options_.busy_wait).count();
        options_.on_wait(std::string(e.what()) + "; waiting up to " + std::to_string(seconds) +
                         " s for it to be released");
      }
      told = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void ImageLibrary::unload(std::size_t index) {
  drive(index);
  if (!loaded_[index]) return;
  drives_[index]->eject();
  loaded_[index].reset();
}

std::optional<std::string> ImageLibrary::loaded_serial(std::size_t index) const {
  return index < loaded_.size() ? loaded_[index] : std::nullopt;
}

DriveStats ImageLibrary::stats() const {
  DriveStats total;
  for (const auto& d : drives_) total += d->stats();
  return total;
}

}  // namespace mixtape::tape
