package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
)

// Flags are defined with package flag (fs.StringVar and so on, in each command); parseArgs is the one place
// that reads a command line, with the GNU conventions people type for llama.cpp and ollama:
// --name value, --name=value, -x short forms and aliases, flags and positional arguments in any order,
// "--" ending the flags, "--bool false", -h/--help on stdout, and a short error with one hint line.

// flagAliases maps what people type to the names kvc defines, in order of preference: an alias applies in a
// command that defines one of its targets.
var flagAliases = map[string][]string{
	"m":             {"model"},
	"p":             {"prompt"},
	"f":             {"file"},
	"n-predict":     {"n"},
	"predict":       {"n"},
	"max-tokens":    {"n"},
	"c":             {"ctx-size", "ctx"},
	"ctx-size":      {"ctx"},
	"ctx":           {"ctx-size"},
	"s":             {"seed"},
	"temperature":   {"temp"},
	"o":             {"output"},
	"i":             {"input"},
	"q":             {"quiet"},
	"t":             {"threads"},
	"sys":           {"system"},
	"system-prompt": {"system"},
}

// ignoredFlags are llama.cpp flags that mean nothing in kvc; each takes a value and earns a note.
var ignoredFlags = map[string]string{
	"ngl":          "kvc runs every layer on --device",
	"n-gpu-layers": "kvc runs every layer on --device",
	"gpu-layers":   "kvc runs every layer on --device",
	"t":            "this command runs no model (--threads sets the CPU backend's threads where one runs)",
	"threads":      "this command runs no model (--threads sets the CPU backend's threads where one runs)",
}

// flagSynopsis is the usage line printed above a flag set's flags, by flag set name: each command's line
// in commands, and the sub-commands' own.
var flagSynopsis = map[string]string{}

func init() {
	for n, c := range commands {
		flagSynopsis[n] = c.usage
	}
}

// parseArgs parses args into fs; fs.Args() then holds the positional arguments. -h/--help prints the
// flags to stdout and returns flag.ErrHelp (main exits 0).
func parseArgs(fs *flag.FlagSet, args []string) error {
	return parseArgsTo(fs, args, os.Stdout, os.Stderr)
}

func parseArgsTo(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a) // "-" is a positional argument (stdin or stdout)
			continue
		}
		dashes := "-"
		name := a[1:]
		if strings.HasPrefix(name, "-") {
			dashes, name = "--", name[1:]
		}
		value, hasValue := "", false
		if k := strings.IndexByte(name, '='); k >= 0 {
			name, value, hasValue = name[:k], name[k+1:], true
		}
		if name == "h" || name == "help" {
			printFlagHelp(fs, stdout)
			return flag.ErrHelp
		}
		if why, ok := ignoredFlags[name]; ok && lookupFlag(fs, name) == nil {
			if !hasValue && i+1 < len(args) {
				i++
			}
			fmt.Fprintf(stderr, "kvc: %s%s ignored: %s\n", dashes, name, why)
			continue
		}
		f := lookupFlag(fs, name)
		if f == nil {
			return unknownFlagError(fs, dashes+name)
		}
		shown := dashes + name
		if isBoolFlag(f) {
			if !hasValue {
				value = "true"
				// "--resume false": a literal boolean after a boolean flag is its value.
				if i+1 < len(args) && isBoolWord(args[i+1]) {
					value = args[i+1]
					i++
				}
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return usageError{fmt.Errorf("%s needs a value (%s)\n%s", shown, f.Usage, helpHint(fs))}
			}
			i++
			value = args[i]
		}
		if err := fs.Set(f.Name, value); err != nil {
			return usageError{fmt.Errorf("%s %q: %v", shown, value, setError(f, err))}
		}
	}
	// Hand the positional arguments to fs so fs.Arg/fs.NArg work as with fs.Parse.
	return fs.Parse(append([]string{"--"}, pos...))
}

// lookupFlag finds name, with '_' read as '-', or an alias of it that fs defines.
func lookupFlag(fs *flag.FlagSet, name string) *flag.Flag {
	for _, n := range []string{name, strings.ReplaceAll(name, "_", "-")} {
		if f := fs.Lookup(n); f != nil {
			return f
		}
		for _, target := range flagAliases[n] {
			if f := fs.Lookup(target); f != nil {
				return f
			}
		}
	}
	return nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func isBoolWord(s string) bool {
	switch s {
	case "true", "false", "TRUE", "FALSE", "True", "False":
		return true
	}
	return false
}

// setError turns package flag's "parse error" into what the flag wants.
func setError(f *flag.Flag, err error) string {
	s := err.Error()
	if s != "parse error" && s != "value out of range" {
		return s
	}
	if isBoolFlag(f) {
		return "want true or false"
	}
	typ, _ := flag.UnquoteUsage(f)
	switch typ {
	case "int":
		return "want an integer"
	case "uint":
		return "want an integer >= 0"
	case "float":
		return "want a number"
	case "duration":
		return "want a duration such as 1.5s or 2m"
	}
	return s
}

func commandPath(fs *flag.FlagSet) string { return "kvc " + fs.Name() }

func helpHint(fs *flag.FlagSet) string {
	return fmt.Sprintf("hint: `%s --help` lists the flags", commandPath(fs))
}

func unknownFlagError(fs *flag.FlagSet, given string) error {
	name := strings.TrimLeft(given, "-")
	best, bestD := "", max(2, len(name)/3)+1
	consider := func(cand, target string) {
		if d := editDistance(name, cand); d < bestD {
			best, bestD = target, d
		}
	}
	fs.VisitAll(func(f *flag.Flag) { consider(f.Name, f.Name) })
	for _, a := range sortedKeys(flagAliases) {
		if f := lookupFlag(fs, a); f != nil {
			consider(a, f.Name)
		}
	}
	hint := helpHint(fs)
	if best != "" {
		hint = fmt.Sprintf("hint: did you mean --%s? `%s --help` lists the flags", best, commandPath(fs))
	}
	return usageError{fmt.Errorf("unknown flag %s for %s\n%s", given, commandPath(fs), hint)}
}

// editDistance is the Levenshtein distance, for "did you mean".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// printFlagHelp writes the command's synopsis and every flag, with its short forms and aliases, to w.
func printFlagHelp(fs *flag.FlagSet, w io.Writer) {
	if syn := flagSynopsis[fs.Name()]; syn != "" {
		fmt.Fprintln(w, syn)
	} else {
		fmt.Fprintf(w, "usage: %s [flags]\n", commandPath(fs))
	}
	fmt.Fprintln(w, "\nflags:")
	aliases := map[string][]string{}
	for alias, targets := range flagAliases {
		for _, t := range targets {
			if fs.Lookup(t) != nil && fs.Lookup(alias) == nil {
				aliases[t] = append(aliases[t], alias)
				break
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		names := []string{dashed(f.Name)}
		al := aliases[f.Name]
		sort.Slice(al, func(i, j int) bool { return len(al[i]) < len(al[j]) || len(al[i]) == len(al[j]) && al[i] < al[j] })
		for _, a := range al {
			names = append(names, dashed(a))
		}
		// short forms first, as in GNU help
		sort.SliceStable(names, func(i, j int) bool { return len(names[i]) == 2 && len(names[j]) != 2 })
		typ, usage := flag.UnquoteUsage(f)
		head := strings.Join(names, ", ")
		if typ != "" {
			head += " " + strings.ToUpper(typ)
		}
		line := "  " + head
		if len(line) < 30 {
			line += strings.Repeat(" ", 30-len(line))
		} else {
			line += "\n" + strings.Repeat(" ", 30)
		}
		line += usage
		if !isZeroDefault(f) && !strings.Contains(usage, "default") {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
	fmt.Fprintln(w, "\n--name value and --name=value both work; a boolean takes --name, --name=false or --name false.")
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isZeroDefault reports whether f's default is its type's zero value (not worth printing).
func isZeroDefault(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z flag.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem()).Interface().(flag.Value)
	} else {
		z = reflect.Zero(t).Interface().(flag.Value)
	}
	return f.DefValue == z.String() || f.DefValue == ""
}

// usageError is a wrong command line (exit status 2), as opposed to a command that failed (1).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// subcommand runs the mode args[0] of a command with modes (kvc eval ppl, kvc bench decode); no mode or
// -h/--help lists the modes on stdout.
func subcommand(name string, args []string, modes map[string]func([]string) error, about map[string]string) error {
	names := sortedKeys(modes)
	list := func(w io.Writer) {
		fmt.Fprintf(w, "usage: kvc %s %s [flags]\n\nmodes:\n", name, strings.Join(names, "|"))
		for _, n := range names {
			fmt.Fprintf(w, "  %-11s %s\n", n, about[n])
		}
		fmt.Fprintf(w, "\nkvc %s MODE --help shows a mode's flags.\n", name)
	}
	if len(args) == 0 {
		list(os.Stdout)
		return usageError{fmt.Errorf("kvc %s needs a mode: %s", name, strings.Join(names, ", "))}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		list(os.Stdout)
		return flag.ErrHelp
	}
	f, ok := modes[args[0]]
	if !ok {
		return usageError{fmt.Errorf("kvc %s: unknown mode %q (have %s)\nhint: `kvc %s --help` lists the modes", name, args[0], strings.Join(names, ", "), name)}
	}
	return f(args[1:])
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
