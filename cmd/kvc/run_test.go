package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kvc/engine"
)

// llama2.c's greedy story for stories260K from an empty prompt (run.c: BOS, temperature 0).
const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."

func sharedModels(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "models"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "stories260K", "stories260K.bin")); err != nil {
		t.Fatalf("stories260K not found under %s", p)
	}
	return p
}

func generateText(t *testing.T, device, prompt string, n int, extra func(*engineFlags)) string {
	t.Setenv("KVC_MODELS", sharedModels(t))
	ef := engineFlags{model: "stories260K", device: device, kvBlock: 16, maxRows: 256, policy: "full", protect: 32, window: 8, quiet: true}
	if extra != nil {
		extra(&ef)
	}
	l, err := load(&ef, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	g := &generation{l: l, out: &out, stderr: io.Discard}
	if _, err := g.run(l.tok.Encode(prompt, true), engine.SamplerConfig{}, n, nil, 0); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestRunGreedyStoryCPU(t *testing.T) {
	got := generateText(t, "cpu", "", 256, nil)
	if !strings.HasPrefix(got, storiesGreedy) {
		t.Fatalf("greedy story on cpu:\n%q\nwant it to begin with\n%q", got, storiesGreedy)
	}
}

func TestRunGreedyStoryVulkan(t *testing.T) {
	if os.Getenv("KVC_REQUIRE_VULKAN") != "1" {
		if _, err := openBackend("", 0, io.Discard); err != nil {
			t.Skip("no Vulkan device:", err)
		}
	}
	cpuText := generateText(t, "cpu", "", 256, nil)
	got := generateText(t, "vulkan:0", "", 256, nil)
	if got != cpuText {
		t.Fatalf("greedy story on Vulkan differs from the CPU backend:\n%q\n%q", got, cpuText)
	}
}

func TestRunPromptAndStop(t *testing.T) {
	got := generateText(t, "cpu", "Once upon a time", 100, nil)
	if !strings.HasPrefix(got, ", there was a little girl named Lily.") {
		t.Fatalf("completion of the prompt: %q", got)
	}
}

// TestKvcChild is the child process of end-to-end tests: it runs kvc with the arguments in $KVC_CHILD_ARGS
// (separated by \x1f) and exits with kvc's status.
func TestKvcChild(t *testing.T) {
	args, ok := os.LookupEnv("KVC_CHILD_ARGS")
	if !ok {
		t.Skip("only run as a child of the end-to-end tests")
	}
	if d, err := time.ParseDuration(os.Getenv("KVC_TEST_TOKEN_DELAY")); err == nil {
		afterToken = func() { time.Sleep(d) } // slow replies down so a test can interrupt one
	}
	var list []string
	if args != "" {
		list = strings.Split(args, "\x1f")
	}
	os.Exit(runMain(list, os.Stdout, os.Stderr))
}

// kvcChild is a command running kvc args in a child process (this test binary).
func kvcChild(t *testing.T, args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^TestKvcChild$")
	c.Env = append(os.Environ(), "KVC_CHILD_ARGS="+strings.Join(args, "\x1f"), "KVC_MODELS="+sharedModels(t))
	return c
}

// The prompt comes from --prompt, from the arguments after MODEL, from --file - and from a stdin that is
// not a terminal, all giving the same greedy completion.
func TestRunPromptSources(t *testing.T) {
	want := generateText(t, "cpu", "Once upon a time", 12, nil)
	run := func(stdin string, args ...string) string {
		c := kvcChild(t, append([]string{"run", "--device", "cpu", "--temp", "0", "-n", "12", "--quiet"}, args...)...)
		c.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("kvc run %q: %v\n%s", args, err, errb.String())
		}
		return strings.TrimSuffix(out.String(), "\n")
	}
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"-m", "stories260K", "-p", "Once upon a time"}},
		{"", []string{"stories260K", "Once", "upon", "a", "time"}},
		{"Once upon a time\n", []string{"stories260K"}},
		{"Once upon a time", []string{"--model=stories260K", "-f", "-"}},
	} {
		if got := run(c.stdin, c.args...); got != want {
			t.Errorf("stdin %q, args %q: %q, want %q", c.stdin, c.args, got, want)
		}
	}
}
