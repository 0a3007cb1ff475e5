// mixtape: back up write-once data to LTO tape, N copies on N tapes.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "engine/common/common.h"

int main(int argc, char** argv) {
  CLI::App app{"mixtape " MIXTAPE_VERSION
               " - back up write-once data to LTO tape as age-encrypted tar archives"};
  app.set_version_flag("--version", std::string("mixtape ") + MIXTAPE_VERSION);
  app.require_subcommand(1);
  mixtape::cli::add_keygen_command(app);
  mixtape::cli::add_tape_commands(app);
  mixtape::cli::add_backup_commands(app);
  mixtape::cli::add_catalog_commands(app);
  mixtape::cli::add_mount_command(app);
  mixtape::cli::add_restore_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mixtape: %s\n", e.what());
    return 1;
  }
  return 0;
}
