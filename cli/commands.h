// The mixtape command's subcommands. Each add_* function registers one group
// of subcommands on the app; its implementation lives in its own file.
#pragma once

#include <CLI/CLI.hpp>

namespace mixtape::cli {

void add_keygen_command(CLI::App& app);
void add_tape_commands(CLI::App& app);
void add_tape_location_command(CLI::App* tape_command);  // `tape location`
void add_backup_commands(CLI::App& app);
void add_catalog_commands(CLI::App& app);
void add_history_commands(CLI::App& app);
void add_lifecycle_commands(CLI::App& app);
void add_config_command(CLI::App& app);
void add_mount_command(CLI::App& app);
void add_restore_commands(CLI::App& app);
void add_import_command(CLI::App& app);
void add_completion_command(CLI::App& app);

// A word that names no subcommand where one is expected (`mixtape bakup`,
// `mixtape tape locaton`): the line saying so, with the nearest name when
// one is close; empty when the command line names its subcommands right.
std::string mistyped_subcommand(const CLI::App& app, int argc, const char* const* argv);

}  // namespace mixtape::cli
