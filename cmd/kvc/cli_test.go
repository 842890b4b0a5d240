package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
)

// testFlags is a flag set shaped like run's: engine and sampling flags plus a few of its own.
func testFlags() (*flag.FlagSet, *engineFlags, *samplingFlags, *string, *bool) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ef engineFlags
	var sf samplingFlags
	ef.register(fs)
	sf.register(fs)
	prompt := fs.String("prompt", "", "prompt text")
	stats := fs.Bool("stats", false, "statistics")
	return fs, &ef, &sf, prompt, stats
}

func TestParseArgsTable(t *testing.T) {
	type want struct {
		model, prompt string
		n             int
		temp          float64
		seed          uint64
		stats         bool
		pos           []string
	}
	cases := []struct {
		args []string
		want want
	}{
		{[]string{"-m", "stories260K", "-p", "hi", "-n", "5"}, want{model: "stories260K", prompt: "hi", n: 5, temp: 0.8}},
		{[]string{"--model", "a", "--prompt=b c", "--n-predict", "7", "--temperature", "0"}, want{model: "a", prompt: "b c", n: 7}},
		{[]string{"-model", "a", "-n=3", "--temp=0.5", "-s", "42"}, want{model: "a", n: 3, temp: 0.5, seed: 42}},
		{[]string{"M", "--stats", "a prompt", "-n", "1"}, want{n: 1, temp: 0.8, stats: true, pos: []string{"M", "a prompt"}}},
		{[]string{"--stats", "false", "M"}, want{n: 256, temp: 0.8, pos: []string{"M"}}},
		{[]string{"--stats=true", "-ngl", "99", "M"}, want{n: 256, temp: 0.8, stats: true, pos: []string{"M"}}},
		{[]string{"--seed", "9", "--", "-p", "--x"}, want{n: 256, temp: 0.8, seed: 9, pos: []string{"-p", "--x"}}},
		{[]string{"-", "--top_k", "3"}, want{n: 256, temp: 0.8, pos: []string{"-"}}},
		{[]string{"--max-tokens", "4", "--stop", "-"}, want{n: 4, temp: 0.8}},
	}
	for _, c := range cases {
		fs, ef, sf, prompt, stats := testFlags()
		var stderr bytes.Buffer
		if err := parseArgsTo(fs, c.args, io.Discard, &stderr); err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		got := want{model: ef.model, prompt: *prompt, n: sf.n, temp: sf.sc.Temp, seed: sf.sc.Seed, stats: *stats, pos: fs.Args()}
		if len(got.pos) == 0 {
			got.pos = nil
		}
		if got.model != c.want.model || got.prompt != c.want.prompt || got.n != c.want.n || got.temp != c.want.temp ||
			got.seed != c.want.seed || got.stats != c.want.stats || strings.Join(got.pos, "|") != strings.Join(c.want.pos, "|") {
			t.Errorf("%q:\n got %+v\nwant %+v", c.args, got, c.want)
		}
		if strings.Contains(strings.Join(c.args, " "), "-ngl") != strings.Contains(stderr.String(), "-ngl ignored") {
			t.Errorf("%q: notes %q", c.args, stderr.String())
		}
	}
	// llama.cpp's -t/--threads set the CPU backend's threads where a command runs a model, and are ignored
	// with a note elsewhere.
	for _, args := range [][]string{{"-t", "3", "M"}, {"--threads=3", "M"}} {
		fs, ef, _, _, _ := testFlags()
		var stderr bytes.Buffer
		if err := parseArgsTo(fs, args, io.Discard, &stderr); err != nil || ef.threads != 3 || stderr.Len() != 0 {
			t.Errorf("%q: threads %d, err %v, notes %q", args, ef.threads, err, stderr.String())
		}
	}
	bare := flag.NewFlagSet("devices", flag.ContinueOnError)
	var stderr bytes.Buffer
	if err := parseArgsTo(bare, []string{"-t", "3"}, io.Discard, &stderr); err != nil || !strings.Contains(stderr.String(), "-t ignored") {
		t.Errorf("devices -t 3: err %v, notes %q", err, stderr.String())
	}
	fs, _, sf, _, _ := testFlags()
	if err := parseArgsTo(fs, []string{"--top_k", "3", "--stop", "a", "--stop", "b"}, io.Discard, io.Discard); err != nil || sf.sc.TopK != 3 || len(sf.stops) != 2 {
		t.Fatalf("top_k %d stops %q err %v", sf.sc.TopK, sf.stops, err)
	}
}

func TestParseArgsErrors(t *testing.T) {
	cases := []struct {
		args        []string
		first, hint string // the error's first line and its hint line
	}{
		{[]string{"--tmep", "0"}, "unknown flag --tmep for kvc run", "hint: did you mean --temp?"},
		{[]string{"--modle=x"}, "unknown flag --modle for kvc run", "hint: did you mean --model?"},
		{[]string{"--zzzzzz"}, "unknown flag --zzzzzz for kvc run", "hint: `kvc run --help` lists the flags"},
		{[]string{"-n", "many"}, `-n "many": want an integer`, ""},
		{[]string{"--model"}, "--model needs a value", "hint: `kvc run --help`"},
		{[]string{"--stats=maybe"}, `--stats "maybe": want true or false`, ""},
		{[]string{"--seed", "-1"}, `--seed "-1": want an integer >= 0`, ""},
	}
	for _, c := range cases {
		fs, _, _, _, _ := testFlags()
		err := parseArgsTo(fs, c.args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%q: no error", c.args)
			continue
		}
		if !isUsageError(err) {
			t.Errorf("%q: %v is not a usage error", c.args, err)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) > 2 || !strings.HasPrefix(lines[0], c.first) || c.hint != "" && (len(lines) < 2 || !strings.HasPrefix(lines[1], c.hint)) {
			t.Errorf("%q: error\n%s\nwant first line %q, hint %q", c.args, err, c.first, c.hint)
		}
	}
}

// Help goes to stdout and names the short forms and aliases; it ends parsing with flag.ErrHelp (exit 0).
func TestParseArgsHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help"} {
		fs, _, _, _, _ := testFlags()
		var out bytes.Buffer
		err := parseArgsTo(fs, []string{"-n", "3", h, "--bogus"}, &out, io.Discard)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: %v", h, err)
		}
		for _, s := range []string{"-m, --model STRING", "-p, --prompt STRING", "-s, --seed", "--temp, --temperature FLOAT", "--n-predict"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%s: help lacks %q:\n%s", h, s, out.String())
			}
		}
	}
}

func TestRunMainExitStatus(t *testing.T) {
	cases := []struct {
		args   []string
		status int
		stdout string
	}{
		{nil, 0, "commands:"},
		{[]string{"--help"}, 0, "commands:"},
		{[]string{"--version"}, 0, "kvc "},
		{[]string{"help", "run"}, 0, "-m, --model"},
		{[]string{"run", "--help"}, 0, "-p, --prompt"},
		{[]string{"eval", "-h"}, 0, "ppl"},
		{[]string{"bench", "--help"}, 0, "throughput"},
		{[]string{"eval", "ppl", "-h"}, 0, "--text"},
		{[]string{"bench", "decode", "-h"}, 0, "--batch"},
		{[]string{"generate", "--help"}, 0, "--resume"},
		{[]string{"rnu"}, 2, ""},
		{[]string{"run", "--bogus"}, 2, ""},
		{[]string{"eval", "bogus"}, 2, ""},
		{[]string{"bench", "decode", "-m", "stories260K", "--device", "cpu", "-n", "2", "--prompt-len", "4", "--kv-budget", "32"}, 2, ""},
		{[]string{"bench", "decode", "-m", "stories260K", "--device", "cpu", "-n", "2", "--prompt-len", "4", "--quiet"}, 0, "of the median pass"},
		{[]string{"run", "-m", "stories260K", "--device", "cpu", "-t", "-2", "-p", "x"}, 1, ""},
		{[]string{"bench", "decode", "-m", "stories260K", "--device", "cpu", "-t", "1", "-n", "2", "--prompt-len", "4", "--quiet"}, 0, "on cpu (threads: 1)"},
	}
	t.Setenv("KVC_MODELS", sharedModels(t))
	for _, c := range cases {
		var out, errOut bytes.Buffer
		var got int
		out.WriteString(captureStdout(t, func() { got = runMain(c.args, os.Stdout, &errOut) }))
		if got != c.status || !strings.Contains(out.String(), c.stdout) {
			t.Errorf("kvc %q: status %d (want %d), stdout %q, stderr %q", c.args, got, c.status, out.String(), errOut.String())
		}
	}
}

// captureStdout returns what f writes to os.Stdout (commands print there directly).
func captureStdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return <-done
}

// A benchmark whose caches cannot fit the pool says so before the prefill, naming the flags to change.
func TestBenchDecodeRefusesWhatCannotFit(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	var errOut bytes.Buffer
	args := []string{"bench", "decode", "-m", "stories260K", "--device", "cpu", "--kv-mem", "1MiB", "--batch", "8", "--prompt-len", "400", "-n", "2", "-q"}
	if st := runMain(args, io.Discard, &errOut); st != 1 || !strings.Contains(errOut.String(), "raise --kv-mem") {
		t.Fatalf("status %d, stderr %q", st, errOut.String())
	}
}
