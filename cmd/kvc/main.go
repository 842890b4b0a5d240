// Command kvc is a portable LLM inference engine on Vulkan with a KV-Compress paged cache.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

type command struct {
	run   func(args []string) error
	usage string
}

var commands = map[string]command{
	"devices":  {cmdDevices, "list Vulkan devices and the CPU backend: kvc devices [--probe] [--json]"},
	"inspect":  {cmdInspect, "describe a checkpoint: kvc inspect MODEL [--json]"},
	"plan":     {cmdPlan, "how a model and its KV cache fit in memory, from headers alone: kvc plan MODEL [--mem SIZE] [--ctx N] [--kv-rate R] [--json]"},
	"run":      {cmdRun, "generate text: kvc run MODEL [PROMPT] (or -m MODEL -p PROMPT; stdin when it is not a terminal) [-n N] [--temp T] [-c CTX] [--kv-policy P --kv-budget C] ..."},
	"eval":     {cmdEval, "perplexity under KV compression: kvc eval ppl|sweep --model M --text FILE [--kv-policy P --kv-budget C]"},
	"synth":    {cmdSynth, "write a random-weight Llama-shaped model: kvc synth --preset 125m|300m|1b|tp --dtype f16 --format gguf --out FILE"},
	"chat":     {cmdChat, "chat in the terminal: kvc chat MODEL [--system TEXT] [sampling flags]"},
	"bench":    {cmdBench, "measure speed: kvc bench decode --model M [--batch B] [--json] | kvc bench throughput --model M --kv-rate 1,8,32 [--json]"},
	"generate": {cmdGenerate, generateUsage},
	"serve":    {cmdServe, serveUsage},
	"pull":     {cmdPull, "download a model into the cache: kvc pull NAME|ORG/REPO [--include GLOB]"},
	"list":     {cmdList, "the models in $KVC_MODELS and the cache, with format and size: kvc list [--names]"},
	"rm":       {cmdRm, "remove downloaded models from the cache: kvc rm NAME..."},
}

func main() { os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr)) }

// runMain runs one command line and returns the exit status: 0 done (help included), 1 the command failed,
// 2 the command line is wrong.
func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return 0
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 { // kvc help run
			return runMain([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	case "--version", "-v", "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "kvc: unknown command %q\n%s\n", args[0], commandHint(args[0]))
		return 2
	}
	if err := c.run(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "kvc:", err)
		if isUsageError(err) {
			return 2
		}
		return 1
	}
	return 0
}

// commandHint suggests the command nearest to a mistyped one.
func commandHint(name string) string {
	best, bestD := "", max(1, len(name)/3)+1
	for n := range commands {
		if d := editDistance(name, n); d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("hint: did you mean `kvc %s`? `kvc --help` lists the commands", best)
	}
	return "hint: `kvc --help` lists the commands"
}

// version is set at link time (-ldflags "-X main.version=..."); the VCS revision comes from the build info.
var version = "dev"

func versionString() string {
	s := "kvc " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				dirty = kv.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			s += " (" + rev
			if dirty {
				s += ", modified"
			}
			s += ")"
		}
		s += " " + bi.GoVersion
	}
	return s
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "kvc: LLM inference on any Vulkan device, with a KV-Compress paged cache\n\nusage: kvc COMMAND [flags]\n\ncommands:")
	for _, n := range sortedKeys(commands) {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(w, "\nkvc COMMAND --help shows a command's flags; kvc --version prints the version.")
}

func cmdPull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	include := fs.String("include", "", "only files whose name matches this glob (ORG/REPO pulls)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: kvc pull NAME|ORG/REPO")
	}
	dir, err := pullModel(fs.Arg(0), *include, os.Stderr, *quiet)
	if err != nil {
		return err
	}
	fmt.Println(dir)
	return nil
}
