// The mixtape command's subcommands. Each add_* function registers one group
// of subcommands on the app; its implementation lives in its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace mixtape::cli {

void add_keygen_command(CLI::App& app);
void add_tape_commands(CLI::App& app);
void add_backup_commands(CLI::App& app);
void add_catalog_commands(CLI::App& app);
void add_mount_command(CLI::App& app);
void add_restore_commands(CLI::App& app);
void add_import_command(CLI::App& app);

}  // namespace mixtape::cli
