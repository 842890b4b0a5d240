package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// The completion scripts know the commands and modes; each command's flags are read from
// `kvc COMMAND --help` when completing (so flags added later complete too), and model names from
// `kvc list --names`.
const bashCompletion = `# kvc completion for bash (zsh: kvc completion zsh)
_kvc() {
  local cur prev cmd mode help
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "%s --help --version" -- "$cur"))
    return
  fi
  cmd="${COMP_WORDS[1]}"
  case "$cmd" in
%s  esac
  case "$prev" in
    -m|--model)
      COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" list --names 2>/dev/null)" -- "$cur"))
      return ;;
  esac
  if [[ "$cur" == -* ]]; then
    help="$("${COMP_WORDS[0]}" $cmd $mode --help 2>/dev/null | awk '/^  -/ { for (i = 1; i <= NF && $i ~ /^-/; i++) { sub(/,$/, "", $i); print $i } }')"
    COMPREPLY=($(compgen -W "$help" -- "$cur"))
    return
  fi
  case "$cmd" in
    run|chat|inspect|plan)
      COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" list --names 2>/dev/null)" -- "$cur") $(compgen -f -- "$cur")) ;;
    *)
      COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -o filenames -F _kvc kvc
`

// completion is registered here: its script lists commands, which would otherwise refer to itself.
func init() {
	commands["completion"] = command{cmdCompletion, "shell completion: source <(kvc completion bash), or kvc completion zsh"}
	flagSynopsis["completion"] = commands["completion"].usage
}

func cmdCompletion(args []string) error { return completion(args, os.Stdout) }

func completion(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("completion", flag.ContinueOnError)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "bash" && fs.Arg(0) != "zsh" {
		return usageError{fmt.Errorf("usage: kvc completion bash|zsh (then: source <(kvc completion bash))")}
	}
	names := sortedKeys(commands)
	// Commands with modes complete the mode second, and read the mode's flags.
	var modes strings.Builder
	for _, m := range []struct {
		cmd   string
		modes []string
	}{{"eval", []string{"ppl", "sweep"}}, {"bench", sortedKeys(benchModes)}, {"completion", []string{"bash", "zsh"}}} {
		fmt.Fprintf(&modes, "    %s)\n      if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return; fi\n      mode=\"${COMP_WORDS[2]}\" ;;\n",
			m.cmd, strings.Join(m.modes, " "))
	}
	script := fmt.Sprintf(bashCompletion, strings.Join(names, " "), modes.String())
	if fs.Arg(0) == "zsh" {
		script = "# kvc completion for zsh (through bashcompinit)\nautoload -U +X bashcompinit && bashcompinit\n" + script
	}
	_, err := io.WriteString(out, script)
	return err
}
