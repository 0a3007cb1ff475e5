// A mistyped subcommand: said so, with the nearest name.
#include <algorithm>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace mixtape::cli {
namespace {

// Damerau-Levenshtein (optimal string alignment) distance: a swapped pair
// of letters ("bakcup") is one edit.
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string mistyped_subcommand(const CLI::App& app, int argc, const char* const* argv) {
  const CLI::App* current = &app;
  std::string where = "mixtape";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') return "";  // options: CLI11 judges them
    auto subs = current->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return "";
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : subs)
      if (sub->check_name(word)) next = sub;
    if (!next) {
      std::string best;
      std::size_t best_distance = 0;
      for (const CLI::App* sub : subs) {
        const std::string& name = sub->get_name();
        std::size_t d = distance(word, name);
        if (name.starts_with(word) && word.size() >= 2) d = 1;  // an abbreviation
        if (best.empty() || d < best_distance) {
          best = name;
          best_distance = d;
        }
      }
      std::string line = "'" + word + "' is not a " + where + " command";
      if (best_distance <= std::max<std::size_t>(2, word.size() / 3))
        line += "; did you mean '" + where + " " + best + "'?";
      return line + " (see `" + where + " --help`)";
    }
    current = next;
    where += " " + next->get_name();
  }
  return "";
}

}  // namespace mixtape::cli
