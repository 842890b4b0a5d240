// Command kvc is a portable LLM inference engine on Vulkan with a KV-Compress paged cache.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

type command struct {
	run   func(args []string) error
	usage string
}

var commands = map[string]command{
	"devices":  {cmdDevices, "list Vulkan devices and the CPU backend: kvc devices [--probe] [--json]"},
	"inspect":  {cmdInspect, "describe a checkpoint: kvc inspect PATH [--json]"},
	"plan":     {cmdPlan, "how a model and its KV cache fit in memory, from headers alone: kvc plan --model PATH [--mem SIZE] [--ctx N] [--kv-rate R] [--json]"},
	"run":      {cmdRun, "generate text: kvc run --model M --prompt TEXT [-n N] [--temp T] [--kv-policy P --kv-budget C] ..."},
	"eval":     {cmdEval, "perplexity under KV compression: kvc eval ppl|sweep --model M --text FILE [--kv-policy P --kv-budget C]"},
	"synth":    {cmdSynth, "write a random-weight Llama-shaped model: kvc synth --preset 125m|300m|1b|tp --dtype f16 --format gguf --out FILE"},
	"chat":     {cmdChat, "chat in the terminal: kvc chat --model M [--system TEXT] [sampling flags]"},
	"bench":    {cmdBench, "measure speed: kvc bench decode --model M [--batch B] [--json] | kvc bench throughput --model M --kv-rate 1,8,32 [--json]"},
	"generate": {cmdGenerate, generateUsage},
	"pull":     {cmdPull, "download a model into the cache: kvc pull NAME|ORG/REPO [--include GLOB]"},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "kvc: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "kvc:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "kvc: LLM inference on any Vulkan device, with a KV-Compress paged cache\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(os.Stderr, "\nkvc COMMAND -h shows a command's flags.")
}

func cmdPull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	include := fs.String("include", "", "only files whose name matches this glob (ORG/REPO pulls)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
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
