// mixtape: back up write-once data to LTO tape, N copies on N tapes.
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "engine/common/common.h"
#include "engine/sqlite/sqlite.h"

int main(int argc, char** argv) {
  CLI::App app{"mixtape " MIXTAPE_VERSION
               " - back up write-once data to LTO tape as age-encrypted tar archives"};
  app.set_version_flag("--version", std::string("mixtape ") + MIXTAPE_VERSION);
  app.require_subcommand(1);
  // In the order --help lists them: making and filling tapes, what the
  // catalog knows, reading tapes back, the tapes themselves, the rest.
  mixtape::cli::add_backup_commands(app);
  mixtape::cli::add_catalog_commands(app);
  mixtape::cli::add_history_commands(app);
  mixtape::cli::add_lifecycle_commands(app);
  mixtape::cli::add_restore_commands(app);
  mixtape::cli::add_import_command(app);
  mixtape::cli::add_tape_commands(app);
  mixtape::cli::add_mount_command(app);
  mixtape::cli::add_config_command(app);
  mixtape::cli::add_keygen_command(app);
  mixtape::cli::add_completion_command(app);
  if (std::string line = mixtape::cli::mistyped_subcommand(app, argc, argv); !line.empty()) {
    std::fprintf(stderr, "mixtape: %s\n", line.c_str());
    return static_cast<int>(CLI::ExitCodes::ExtrasError);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    // One line, as for every other failure; CLI11's exit codes are kept
    // (106: something required is missing, 109: an unexpected argument).
    std::string where = "mixtape";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      where += " " + sub->get_name();
    }
    std::fprintf(stderr, "mixtape: %s (see `%s --help`)\n", e.what(), where.c_str());
    return e.get_exit_code();
  } catch (const mixtape::sqlite::SqliteError& e) {
    // Damage SQLite found after the checks made at open.
    const bool damaged = e.code() == SQLITE_CORRUPT || e.code() == SQLITE_NOTADB;
    std::fprintf(stderr, "mixtape: %s%s\n", e.what(),
                 damaged ? " (the database is damaged; if it is the catalog, move it aside and "
                           "rebuild it from tape with `mixtape recover`)"
                         : "");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixtape: %s\n", e.what());
    return 1;
  }
  return 0;
}
