package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		if _, err := openBackend("", io.Discard); err != nil {
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
