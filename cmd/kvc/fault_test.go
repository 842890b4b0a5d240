package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMainChild is the child process of the fault tests: it runs kvc with the arguments in $KVC_MAIN_ARGS
// and exits with kvc's status.
func TestMainChild(t *testing.T) {
	args := os.Getenv("KVC_MAIN_ARGS")
	if args == "" {
		t.Skip("only run as a child of the fault-injection tests")
	}
	os.Exit(runMain(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// faultVulkan skips without a Vulkan device unless KVC_REQUIRE_VULKAN=1 (then the children fail loudly).
func faultVulkan(t *testing.T) {
	if os.Getenv("KVC_REQUIRE_VULKAN") != "1" {
		if _, err := openBackend("vulkan:0", 0, io.Discard); err != nil {
			t.Skip("no Vulkan device:", err)
		}
	}
}

// faultChild is a child process (generate when gen is set, else kvc main) with KVC_FAULT=fault.
func faultChild(fault string, gen bool, args ...string) *exec.Cmd {
	var c *exec.Cmd
	if gen {
		c = generateChild(args...)
	} else {
		c = exec.Command(os.Args[0], "-test.run=^TestMainChild$")
		c.Env = append(os.Environ(), "KVC_MAIN_ARGS="+strings.Join(args, "\x1f"))
	}
	c.Env = append(c.Env, "KVC_FAULT="+fault)
	return c
}

// faultFailed checks a run stopped by an injected fault: exit status 1, the last stderr line naming the
// failure as kvc reports it, and no panic or Go stack.
func faultFailed(t *testing.T, what string, err error, stderr string, want ...string) {
	t.Helper()
	ee, ok := err.(*exec.ExitError)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !ok || ee.ExitCode() != 1 || strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Fatalf("%s: %v, want exit status 1 without a panic; stderr:\n%s", what, err, stderr)
	}
	for _, w := range want {
		if strings.Contains(last, w) {
			return
		}
	}
	t.Fatalf("%s: last stderr line %q names none of %q", what, last, want)
}

var faultMessages = []string{"VK_ERROR_DEVICE_LOST", "VK_ERROR_OUT_OF_DEVICE_MEMORY", "out of device memory"}

// kvc generate on stories260K (Vulkan) under injected device faults: each kind at several N, with a SIGKILL
// among them, all on one output file. Every faulted run exits 1 with one line naming the failure and
// leaves only whole, valid lines (no error lines for the requests it dropped); the final run without a
// fault resumes, and the file then holds every id exactly once, byte-identical (time aside) to an
// uninterrupted greedy run. An allocation failure for the KV pool falls back to a smaller pool instead.
func TestGenerateUnderDeviceFaults(t *testing.T) {
	faultVulkan(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeGenPrompts(t, in, 24, 10)
	args := func(out string, extra ...string) []string {
		return append([]string{"--model", genStoriesDir(t), "--device", "vulkan:0", "--temp", "0", "--input", in, "--output", out,
			"--max-seqs", "4", "--kv-mem", "8MiB", "--quiet"}, extra...)
	}
	ref := filepath.Join(dir, "ref.jsonl")
	if out, err := faultChild("", true, args(ref)...).CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, out)
	}
	want := readGenLines(t, ref)
	if len(want) != 24 {
		t.Fatalf("reference run wrote %d ids", len(want))
	}

	out := filepath.Join(dir, "out.jsonl")
	have := 0
	step := func(fault string) {
		c := faultChild(fault, true, args(out)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		faultFailed(t, "KVC_FAULT="+fault, c.Run(), stderr.String(), faultMessages...)
		got := readGenLines(t, out) // whole lines, each id once
		for id, l := range got {
			if l != want[id] {
				t.Fatalf("KVC_FAULT=%s: id %s:\n got %s\nwant %s", fault, id, l, want[id])
			}
		}
		t.Logf("KVC_FAULT=%s: %d -> %d lines", fault, have, len(got))
		have = len(got)
	}
	step("submit:25") // mid-run: the first wave is written
	kill := generateChild(args(out)...)
	exited := make(chan error, 1)
	if err := kill.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- kill.Wait() }()
	genWaitLines(t, out, have+2, kill, exited)
	kill.Process.Kill()
	<-exited
	readGenLines(t, out) // a torn last line here is cut by the next run, not written over
	step("lost:18")
	step("alloc:1") // the weights
	step("submit:1")
	step("lost:3")
	c := faultChild("", true, args(out)...)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, b)
	}
	got := readGenLines(t, out)
	if len(got) != len(want) {
		t.Fatalf("after the final run: %d ids, want %d", len(got), len(want))
	}
	for id, l := range want {
		if got[id] != l {
			t.Fatalf("id %s:\n got %s\nwant %s", id, got[id], l)
		}
	}

	// The KV pool's first arena cannot be allocated: a pool half the size, then the same lines.
	fb := filepath.Join(dir, "fallback.jsonl")
	c = faultChild("alloc:2", true, append(args(fb), "--kv-mem", "300MiB")...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil || !strings.Contains(stderr.String(), "out of device memory for the KV pool") {
		t.Fatalf("alloc:2 with a 300 MiB pool: %v, want a smaller pool; stderr:\n%s", err, stderr.String())
	}
	for id, l := range readGenLines(t, fb) {
		if l != want[id] {
			t.Fatalf("after the KV fallback, id %s:\n got %s\nwant %s", id, l, want[id])
		}
	}
}

// kvc run and chat under injected faults exit 1 with the failure named, no panic or hang; chat with
// --session keeps the conversation as it was after the last complete reply, and it loads afterwards.
func TestRunAndChatUnderDeviceFaults(t *testing.T) {
	faultVulkan(t)
	t.Setenv("KVC_MODELS", sharedModels(t))
	common := []string{"--model", "stories260K", "--device", "vulkan:0", "--temp", "0", "--kv-mem", "8MiB", "-n", "12"}
	for _, f := range []string{"submit:2", "lost:6"} {
		c := faultChild(f, false, append([]string{"run", "--prompt", "Once upon a time"}, common...)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		faultFailed(t, "run KVC_FAULT="+f, c.Run(), stderr.String(), faultMessages...)
	}
	session := filepath.Join(t.TempDir(), "chat.kvs")
	chatRun := func(fault, input string) (string, error) {
		c := faultChild(fault, false, append([]string{"chat", "--session", session}, common...)...)
		c.Stdin = strings.NewReader(input)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		err := c.Run()
		return stderr.String(), err
	}
	if log, err := chatRun("", "Hello\n"); err != nil {
		t.Fatalf("first chat: %v\n%s", err, log)
	}
	saved, _ := os.ReadFile(session)
	// lost:2 fails the first reply: the file is untouched.
	log, err := chatRun("lost:2", "Tell me a story\n")
	faultFailed(t, "chat KVC_FAULT=lost:2", err, log, faultMessages...)
	if now, _ := os.ReadFile(session); !bytes.Equal(now, saved) {
		t.Fatalf("a failed reply changed the session file")
	}
	// submit:20: one reply completes (saved), the next fails.
	log, err = chatRun("submit:20", "Tell me a story\nAnd then?\n")
	faultFailed(t, "chat KVC_FAULT=submit:20", err, log, faultMessages...)
	if !strings.Contains(log, "keeps the conversation up to the last complete reply") {
		t.Errorf("chat stderr does not say what the session holds:\n%s", log)
	}
	if now, _ := os.ReadFile(session); bytes.Equal(now, saved) {
		t.Errorf("the complete reply before the failure was not saved")
	}
	if log, err := chatRun("", "/show\n"); err != nil || strings.Contains(log, "damaged") {
		t.Fatalf("loading the session after the faults: %v\n%s", err, log)
	}
}
