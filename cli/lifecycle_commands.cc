// mixtape retire | tape location | check: the life of tapes, and whether
// the catalog's goals are met.
#include <cstdio>

#include "cli/commands.h"
#include "cli/context.h"
#include "cli/json.h"
#include "cli/tape_report.h"

namespace mixtape::cli {
namespace {

using catalog::Catalog;

catalog::TapeRow tape_named(Catalog& catalog, const std::string& serial) {
  auto tape = catalog.tape_by_serial(serial);
  if (!tape) throw Error("tape " + serial + " is not in the catalog (see `mixtape tapes`)");
  return *tape;
}

// retire and tape location change one tape's row: under the writer lock,
// with the tape looked up by serial before anything changes.
struct TapeChangeArgs {
  std::string catalog;
  std::string serial;
  std::string text;  // retire: the reason; tape location: where it is
};

using TapeChange = void (*)(Catalog&, const catalog::TapeRow&, const std::string& text);

void change_tape(TapeChangeArgs& args, TapeChange change) {
  apply_settings(args.catalog);
  auto lock = lock_catalog(args.catalog);
  auto catalog = open_catalog(args.catalog);
  change(catalog, tape_named(catalog, args.serial), args.text);
}

std::string count(std::uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Versions below their goal that are on disk as hashed: what the next
// backup can copy (the others were changed or deleted since).
std::pair<std::uint64_t, std::uint64_t> below_goal_on_disk(Catalog& catalog) {
  std::uint64_t versions = 0, bytes = 0;
  catalog.for_each_pending(0, [&](const catalog::PendingVersion& p) {
    ++versions;
    bytes += p.version.size;
  });
  return {versions, bytes};
}

// ------------------------------------------------------------ retire

void retire(Catalog& catalog, const catalog::TapeRow& tape, const std::string& reason) {
  const auto before = catalog.below_goal();
  catalog.retire_tape(tape.id, reason);
  const auto [versions, bytes] = catalog.below_goal();
  const auto [on_disk, on_disk_bytes] = below_goal_on_disk(catalog);
  std::printf("retired tape %s (%s): it is never written again; its copies no longer count\n",
              tape.serial.c_str(), reason.c_str());
  std::printf("%s (%s) %s below their copy goal now, %llu more than before\n",
              count(versions, "version", "versions").c_str(), format_size(bytes).c_str(),
              versions == 1 ? "is" : "are",
              static_cast<unsigned long long>(versions - std::min(versions, before.first)));
  if (versions > 0) {
    std::printf("the next backup copies the %llu still on disk (%s) to other tapes",
                static_cast<unsigned long long>(on_disk), format_size(on_disk_bytes).c_str());
    if (versions > on_disk)
      std::printf("; %llu are no longer on disk: their remaining copies are all there is",
                  static_cast<unsigned long long>(versions - on_disk));
    std::printf("\n");
  }
}

// ------------------------------------------------------------ tape location

void set_location(Catalog& catalog, const catalog::TapeRow& tape, const std::string& location) {
  catalog.set_tape_location(tape.id, location);
  if (location.empty())
    std::printf("tape %s: location cleared\n", tape.serial.c_str());
  else
    std::printf("tape %s: %s\n", tape.serial.c_str(), printable(location).c_str());
}

// ------------------------------------------------------------ check

struct CheckArgs {
  std::string catalog;
  std::string max_age;
  bool json = false;
};

struct Problem {
  std::string kind;  // below-goal, verify-failed, never-verified, verify-overdue
  std::string tape;
  std::string message;
};

std::vector<Problem> problems_of(Catalog& catalog, std::optional<std::int64_t> max_age) {
  std::vector<Problem> problems;
  if (const auto [versions, bytes] = catalog.below_goal(); versions > 0) {
    const auto [on_disk, on_disk_bytes] = below_goal_on_disk(catalog);
    problems.push_back({"below-goal", "",
                        count(versions, "version", "versions") + " (" + format_size(bytes) +
                            ") below their copy goal; " + std::to_string(on_disk) +
                            " of them on disk, which `mixtape backup` copies"});
  }
  const std::int64_t now = now_ns();
  for (const auto& tape : catalog.tapes()) {
    if (tape.state == catalog::TapeState::kRetired) continue;  // its copies do not count
    const TapeVerification v = verification_of(catalog, tape);
    if (v.archives == 0) continue;  // nothing on it to verify
    if (v.failed) {
      problems.push_back({"verify-failed", tape.serial,
                          "tape " + tape.serial + ": its last verify found it " +
                              catalog::to_string(v.result) + " (" + format_time_ns(v.failed_at_ns) +
                              "): " + v.detail});
      continue;
    }
    if (!max_age) continue;
    if (!v.complete()) {
      problems.push_back({"never-verified", tape.serial,
                          "tape " + tape.serial + " was never verified" +
                              (v.verified ? " in full (" + std::to_string(v.verified) + " of " +
                                                std::to_string(v.archives) + " archives)"
                                          : std::string())});
    } else if (const std::int64_t age = (now - v.verified_at_ns) / 1000000000; age > *max_age) {
      problems.push_back({"verify-overdue", tape.serial,
                          "tape " + tape.serial + " was last verified " +
                              format_time_ns(v.verified_at_ns) + ", " + format_age(age) +
                              " ago (more than " + format_age(*max_age) + ")"});
    }
  }
  return problems;
}

void check(CheckArgs& args) {
  apply_settings(args.catalog);
  std::optional<std::int64_t> max_age;
  if (!args.max_age.empty()) max_age = parse_duration(args.max_age);
  auto catalog = open_checked(args.catalog);
  const std::vector<Problem> problems = problems_of(catalog, max_age);
  if (args.json) {
    JsonWriter json;
    json.begin_object().field("ok", problems.empty()).key("problems").begin_array();
    for (const auto& p : problems) {
      json.begin_object().field("kind", p.kind).key("tape");
      p.tape.empty() ? json.null() : json.value(p.tape);
      json.field("message", p.message).end_object();
    }
    json.end_array().end_object();
  } else {
    for (const auto& p : problems) std::printf("%s: %s\n", p.kind.c_str(), p.message.c_str());
  }
  std::fflush(stdout);
  if (!problems.empty())
    throw Error("check found " + count(problems.size(), "problem", "problems"));
}

}  // namespace

void add_tape_location_command(CLI::App* tape_command) {
  auto [command, args] = add_catalog_command<TapeChangeArgs>(
      *tape_command, "location",
      "Record where a tape is kept (shown and filtered by `mixtape tapes`)",
      [](TapeChangeArgs& a) { change_tape(a, set_location); });
  command->add_option("serial", args->serial, "The tape")->required();
  command
      ->add_option("location", args->text,
                   "Where it is, e.g. \"offsite: bank box 12\" (\"\" clears it)")
      ->required();
}

void add_lifecycle_commands(CLI::App& app) {
  auto [retire_cmd, retire_args] = add_catalog_command<TapeChangeArgs>(
      app, "retire",
      "Take a tape out of service: its copies stop counting, it is never written again",
      [](TapeChangeArgs& a) { change_tape(a, retire); });
  retire_cmd->add_option("serial", retire_args->serial, "The tape")->required();
  retire_cmd->add_option("--reason", retire_args->text, "Why")
      ->required()
      ->check(CLI::IsMember({"lost", "destroyed", "bad", "worn"}));

  auto [check_cmd, check_args] = add_catalog_command<CheckArgs>(
      app, "check",
      "Exit 1, one line per problem, when versions are below goal or verifies fail or "
      "are overdue",
      check);
  check_cmd->add_option("--max-age", check_args->max_age,
                        "A tape not verified in full within this long is a problem (e.g. 90d)");
  add_json_option(check_cmd, check_args->json);
}

}  // namespace mixtape::cli
