package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeGenPrompts writes n short prompts (ids p0..) with max_tokens m.
func writeGenPrompts(t *testing.T, path string, n, m int) {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		b, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("p%d", i), "prompt": fmt.Sprintf("Once upon a time %d", i), "max_tokens": m})
		sb.Write(b)
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Outputs that cannot be read back (/dev/zero never ends, /dev/full refuses writes) are written without the
// resume scan; the scan used to read /dev/zero until the machine ran out of memory.
func TestGenerateDeviceOutputs(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/full"} {
		if _, err := os.Stat(dev); err != nil {
			t.Skipf("no %s", dev)
		}
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeGenPrompts(t, in, 3, 4)
	args := func(out string) []string {
		return []string{"--model", genStoriesDir(t), "--device", "cpu", "--temp", "0", "--input", in, "--output", out, "--quiet"}
	}
	var log strings.Builder
	if _, err := runGenerate(args("/dev/zero"), &log, nil); err != nil {
		t.Errorf("--output /dev/zero: %v\n%s", err, log.String())
	}
	_, err := runGenerate(args("/dev/full"), &log, nil)
	if err == nil || !strings.Contains(err.Error(), "writing /dev/full") || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("--output /dev/full: error %v, want one saying writing /dev/full failed for lack of space", err)
	}
}

// --output /dev/stdout with stdout a pipe: the scan used to block forever reading its own pipe.
func TestGenerateOutputToPipe(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeGenPrompts(t, in, 3, 4)
	c := generateChild("--model", genStoriesDir(t), "--device", "cpu", "--temp", "0", "--input", in, "--output", "/dev/stdout", "--quiet")
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr // not *os.File: exec connects them through pipes
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	hung := time.AfterFunc(2*time.Minute, func() { c.Process.Kill() })
	err := c.Wait()
	if !hung.Stop() {
		t.Fatalf("--output /dev/stdout into a pipe: still running after 2 minutes")
	}
	if err != nil {
		t.Fatalf("--output /dev/stdout into a pipe: %v\n%s", err, stderr.String())
	}
	for i := 0; i < 3; i++ {
		if !strings.Contains(stdout.String(), fmt.Sprintf(`{"id":"p%d",`, i)) {
			t.Errorf("stdout lacks id p%d:\n%s", i, stdout.String())
		}
	}
}

// An empty input and an output that is the input are refused before anything runs.
func TestGenerateRefusesEmptyInputAndOutputIsInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, []byte("\n  \n"), 0o644)
	in := filepath.Join(dir, "in.jsonl")
	writeGenPrompts(t, in, 2, 2)
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ input, output, want string }{
		{empty, filepath.Join(dir, "o.jsonl"), "empty.jsonl: no requests"},
		{in, in, "is the --input file"},
		{in, link, "is the --input file"},
	} {
		var log strings.Builder
		_, err := runGenerate([]string{"--model", "/nonexistent", "--input", c.input, "--output", c.output}, &log, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--input %s --output %s: %v, want an error saying %q", c.input, c.output, err, c.want)
		}
	}
	if b, _ := os.ReadFile(in); strings.Count(string(b), "\n") != 2 {
		t.Errorf("the input was changed: %q", b)
	}
	// One device as input and output (-i - -o - on a terminal) is not "the input file".
	if f, _, err := openGenOutput("/dev/null", "/dev/null", true, io.Discard); err != nil {
		t.Errorf("a device as input and output: %v", err)
	} else {
		f.Close()
	}
}

// Two runs on one output: the second is refused while the first holds the file; SIGHUP then stops the
// first in order (exit 130, whole lines) and a rerun finishes every id exactly once.
func TestGenerateOutputLockAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	writeGenPrompts(t, in, 120, 24)
	args := []string{"--model", genStoriesDir(t), "--device", "cpu", "--temp", "0", "--input", in, "--output", out,
		"--max-seqs", "2", "--quiet"}
	first := generateChild(args...)
	var stderr1 strings.Builder
	first.Stderr = &stderr1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	genWaitLines(t, out, 1, first, exited)

	second := generateChild(args...)
	var stderr2 strings.Builder
	second.Stderr = &stderr2
	err := second.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr2.String(), "being written by another kvc generate") {
		t.Errorf("second run on a locked output: %v, stderr:\n%s", err, stderr2.String())
	}

	first.Process.Signal(syscall.SIGHUP)
	err = <-exited
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("after SIGHUP: %v, want exit status 130\n%s", err, stderr1.String())
	}
	if got := readGenLines(t, out); len(got) >= 120 {
		t.Fatalf("the first run finished (%d lines) before SIGHUP", len(got))
	}
	if err := generateChild(args...).Run(); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got := readGenLines(t, out); len(got) != 120 {
		t.Fatalf("after the rerun: %d ids, want 120", len(got))
	}
}
