// Tapes mixtape did not write (engine/foreign) on the command line:
// `mixtape import`, and `restore --device` of such a tape.
#pragma once

#include <string>

#include "cli/context.h"

namespace mixtape::cli {

// For `restore --device`: when the tape in the device is one mixtape did
// not write and the catalog at catalog_path does not know it, the path of
// the tape's own index in the cache folder (made now, in one pass, the
// first time); else empty (the catalog serves).
std::string foreign_tape_catalog(const std::string& catalog_path, const DriveFlags& drive,
                                 const ProgressFlags& progress);

}  // namespace mixtape::cli
