// ManualChanger: the operator is the robot. The drive, not the operator's
// word, decides: a tape counts as loaded only once its label names the
// wanted serial; any other tape is ejected and the request repeated. A tape
// the drive is still loading or calibrating is waited for by the drive; a
// label that cannot be read is an error, never a reason to eject.
#include <algorithm>
#include <ostream>
#include <thread>

#include "engine/tape/libraries.h"
#include "engine/tape/tape.h"

namespace mixtape::tape {

ManualChanger::ManualChanger(Drive& drive, std::ostream& prompt, SerialReader read_serial,
                             ManualChangerOptions options)
    : drive_(drive), prompt_(prompt), read_serial_(std::move(read_serial)), options_(options) {}

Drive& ManualChanger::drive(std::size_t index) {
  if (index != 0) {
    throw TapeError(
        TapeErrorKind::kInvalidArgument,
        drive_.name() + " is the only drive; there is no drive " + std::to_string(index));
  }
  return drive_;
}

std::vector<std::string> ManualChanger::serials() {
  if (loaded_) return {*loaded_};
  return {};
}

// The serial on the label of the loaded tape; nullopt for a blank or foreign
// one ("not the tape we asked for"). A drive error reading it is thrown: the
// tape may well be the right one.
std::optional<std::string> ManualChanger::serial_in_drive() {
  drive_.rewind();
  std::optional<std::string> serial;
  try {
    serial = read_serial_(drive_);
  } catch (const TapeError&) {
    throw;
  } catch (const Error&) {
    serial.reset();  // another program's tape
  }
  drive_.rewind();
  return serial;
}

Drive& ManualChanger::load(const std::string& serial, std::size_t index) {
  check_serial(serial);
  drive(index);
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  bool asked = false;
  for (;;) {
    DriveStatus status = drive_.status();
    if (status.becoming_ready) {
      drive_.load();  // waits, within its own bound, and says so
      status = drive_.status();
    }
    if (status.loaded) {
      std::optional<std::string> found = serial_in_drive();
      if (found == serial) {
        loaded_ = serial;
        return drive_;
      }
      prompt_ << "mixtape: " << drive_.name() << " holds "
              << (found ? "tape " + *found : std::string("an unlabelled tape")) << ", not "
              << serial << "; ejecting it" << std::endl;
      drive_.unload();
      loaded_.reset();
      asked = false;
    }
    if (!asked) {
      prompt_ << "mixtape: please insert tape " << serial << " into " << drive_.name() << std::endl;
      asked = true;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      throw TapeError(TapeErrorKind::kTimeout,
                      drive_.name() + ": timed out waiting for tape " + serial + " to be inserted");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(options_.poll_interval, deadline - now));
  }
}

void ManualChanger::unload(std::size_t index) {
  drive(index);
  drive_.unload();
  if (loaded_) {
    prompt_ << "mixtape: tape " << *loaded_ << " can be taken out of " << drive_.name()
            << std::endl;
  }
  loaded_.reset();
}

std::optional<std::string> ManualChanger::loaded_serial(std::size_t index) const {
  return index == 0 ? loaded_ : std::nullopt;
}

DriveStats ManualChanger::stats() const {
  return drive_.stats();
}

}  // namespace mixtape::tape
