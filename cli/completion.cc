// mixtape completion bash: a bash completion script made from the command
// line definition itself (the CLI11 apps), so that it never lists a command
// or a flag the program does not take. The build writes it, and
// `cmake --install` puts it where bash-completion looks.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/common/common.h"

namespace mixtape::cli {
namespace {

struct Command {
  std::vector<std::string> subcommands;
  std::vector<std::string> flags;                 // every -x and --name
  std::map<std::string, std::string> value_kind;  // flag -> file | choices a b c | none
};

// "TEXT:{lost,destroyed,bad,worn}" -> "lost destroyed bad worn".
std::string choices_of(const std::string& type_name) {
  auto open = type_name.find('{');
  auto close = type_name.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  std::string list = type_name.substr(open + 1, close - open - 1);
  for (char& c : list)
    if (c == ',') c = ' ';
  return list;
}

void collect(const CLI::App* app, const std::string& path, std::map<std::string, Command>& out) {
  Command& command = out[path];
  for (const CLI::Option* option : app->get_options()) {
    if (option->get_positional()) continue;
    std::vector<std::string> names;
    for (const auto& s : option->get_snames()) names.push_back("-" + s);
    for (const auto& l : option->get_lnames()) names.push_back("--" + l);
    std::string kind;
    if (option->get_expected_max() > 0) {
      const std::string type = option->get_type_name();
      const std::string choices = choices_of(type);
      kind = !choices.empty() ? "choices " + choices : type.starts_with("TEXT") ? "file" : "none";
    }
    for (const auto& name : names) {
      command.flags.push_back(name);
      if (!kind.empty()) command.value_kind[name] = kind;
    }
  }
  const CLI::App* top = app;
  for (const CLI::App* sub : top->get_subcommands([](const CLI::App*) { return true; })) {
    command.subcommands.push_back(sub->get_name());
    collect(sub, path + " " + sub->get_name(), out);
  }
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string bash_script(const CLI::App& app) {
  std::map<std::string, Command> commands;
  collect(&app, "mixtape", commands);  // bash's keys cannot be empty
  std::string s =
      "# bash completion for mixtape, made by `mixtape completion bash` from the program's own\n"
      "# command-line definition (mixtape " MIXTAPE_VERSION
      ").\n"
      "_mixtape() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\"\n"
      "  (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "  local -A subs=(";
  for (const auto& [path, command] : commands)
    if (!command.subcommands.empty())
      s += " [\"" + path + "\"]=\"" + joined(command.subcommands) + "\"";
  s += " )\n  local -A flags=(";
  for (const auto& [path, command] : commands)
    s += " [\"" + path + "\"]=\"" + joined(command.flags) + "\"";
  s += " )\n  local -A values=(";
  for (const auto& [path, command] : commands)
    for (const auto& [flag, kind] : command.value_kind)
      s += " [\"" + path + " " + flag + "\"]=\"" + kind + "\"";
  s += " )\n";
  s += "  # The command named so far: words that are subcommands, option values skipped.\n"
       "  local path=mixtape i word skip=0\n"
       "  for (( i = 1; i < COMP_CWORD; i++ )); do\n"
       "    word=\"${COMP_WORDS[i]}\"\n"
       "    if (( skip )); then skip=0; continue; fi\n"
       "    if [[ $word == -* ]]; then\n"
       "      [[ $word != *=* && -n ${values[\"$path $word\"]+x} ]] && skip=1\n"
       "      continue\n"
       "    fi\n"
       "    if [[ \" ${subs[\"$path\"]} \" == *\" $word \"* ]]; then\n"
       "      path=\"$path $word\"\n"
       "    fi\n"
       "  done\n"
       "  local kind=\"${values[\"$path $prev\"]}\"\n"
       "  if [[ -n $kind ]]; then\n"
       "    case $kind in\n"
       "      choices*) COMPREPLY=( $(compgen -W \"${kind#choices }\" -- \"$cur\") ) ;;\n"
       "      file) COMPREPLY=( $(compgen -f -- \"$cur\") ) ;;\n"
       "      *) COMPREPLY=() ;;\n"
       "    esac\n"
       "    return 0\n"
       "  fi\n"
       "  if [[ $cur == -* ]]; then\n"
       "    COMPREPLY=( $(compgen -W \"${flags[\"$path\"]}\" -- \"$cur\") )\n"
       "  elif [[ -n ${subs[\"$path\"]} ]]; then\n"
       "    COMPREPLY=( $(compgen -W \"${subs[\"$path\"]}\" -- \"$cur\") )\n"
       "  else\n"
       "    COMPREPLY=( $(compgen -f -- \"$cur\") )\n"
       "  fi\n"
       "  return 0\n"
       "}\n"
       "complete -o filenames -F _mixtape mixtape\n";
  return s;
}

}  // namespace

void add_completion_command(CLI::App& app) {
  auto* command = app.add_subcommand(
      "completion", "Print a shell completion script (cmake --install puts bash's in place)");
  // The option writes into *shell when the command line is parsed, after
  // this function returned: the callback keeps it alive (it was freed here,
  // a heap-use-after-free the whole suite under ASan found).
  auto shell = std::make_shared<std::string>();
  command->add_option("shell", *shell, "The shell")->required()->check(CLI::IsMember({"bash"}));
  command->callback([&app, shell] {
    // IsMember lets only "bash" through; another shell would be chosen here.
    if (*shell != "bash") throw Error("no completion script for " + *shell);
    const std::string script = bash_script(app);
    std::fwrite(script.data(), 1, script.size(), stdout);
  });
}

}  // namespace mixtape::cli
