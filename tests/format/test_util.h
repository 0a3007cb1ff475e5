// Helpers shared by the engine/format tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/common/common.h"
#include "engine/crypto/crypto.h"
#include "tests/support/test_support.h"

namespace mixtape::format::testing {

using test_support::CommandResult;
using test_support::hash_hex;
using test_support::have_tool;
using test_support::read_file;
using test_support::run_shell;
using test_support::shell_quote;
using test_support::TempDir;
using test_support::write_file;

}  // namespace mixtape::format::testing
