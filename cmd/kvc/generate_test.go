package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseGenLine(t *testing.T) {
	good := []struct {
		line, key string
	}{
		{`{"id": "a", "prompt": "hi"}`, `"a"`},
		{`{"id": 7, "prompt": "hi", "temperature": 0, "top_k": 3, "top_p": 0.5, "min_p": 0.1, "repeat_penalty": 1.1, "seed": 5, "max_tokens": 9, "stop": "x", "kv_rate": 4}`, `7`},
		{`{"id": -1.5, "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b"], "kv_budget": 64}`, `-1.5`},
		{`{"id": "m", "messages": [], "extra": 1}`, `"m"`},
	}
	for _, g := range good {
		in, _, err := parseGenLine([]byte(g.line), 1)
		if err != nil {
			t.Errorf("%s: %v", g.line, err)
			continue
		}
		if in.key != g.key {
			t.Errorf("%s: key %s, want %s", g.line, in.key, g.key)
		}
	}
	in, unknown, _ := parseGenLine([]byte(`{"id":1,"prompt":"p","stop":"s","max_tokens":3,"extra":2}`), 1)
	if len(in.stop) != 1 || in.stop[0] != "s" || *in.maxTokens != 3 || len(unknown) != 1 || unknown[0] != "extra" {
		t.Errorf("parsed %+v, unknown %v", in, unknown)
	}
	bad := []struct{ line, want string }{
		{`[1]`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`{"prompt": "x"}`, `missing "id"`},
		{`{"id": {"a":1}, "prompt": "x"}`, `"id" must be a string or a number`},
		{`{"id": true, "prompt": "x"}`, `"id" must be a string or a number`},
		{`{"id": 1}`, "exactly one of"},
		{`{"id": 1, "prompt": "x", "messages": []}`, "exactly one of"},
		{`{"id": 1, "prompt": 3}`, `"prompt" must be a string`},
		{`{"id": 1, "messages": "hi"}`, `"messages" must be`},
		{`{"id": 1, "messages": [{"content": "hi"}]}`, `has no "role"`},
		{`{"id": 1, "prompt": "x", "temperature": "hot"}`, `"temperature" must be a number`},
		{`{"id": 1, "prompt": "x", "temperature": -1}`, "temperature"},
		{`{"id": 1, "prompt": "x", "top_k": 1.5}`, `"top_k" must be an integer`},
		{`{"id": 1, "prompt": "x", "max_tokens": -3}`, `"max_tokens" must be >= 0`},
		{`{"id": 1, "prompt": "x", "seed": -3}`, `"seed" must be an unsigned integer`},
		{`{"id": 1, "prompt": "x", "stop": 5}`, `"stop" must be a string or a list`},
		{`{"id": 1, "prompt": "x", "kv_rate": 0.5}`, `"kv_rate" must be a number >= 1`},
		{`{"id": 1, "prompt": "x", "kv_rate": 2, "kv_budget": 64}`, "not both"},
		{`{"id": 1, "prompt": "x", "top_p": 2}`, "top-p"},
	}
	for _, b := range bad {
		_, _, err := parseGenLine([]byte(b.line), 1)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want one mentioning %q", b.line, err, b.want)
		}
	}
}

func FuzzParseGenLine(f *testing.F) {
	for _, s := range []string{`{"id": "a", "prompt": "hi"}`, `{"id": 1, "messages": [{"role": "user", "content": "x"}]}`,
		`{"id": 1, "prompt": "x", "stop": ["a"], "kv_rate": 2, "seed": 3}`, `{"id": null}`, `{`, `"x"`, `{"id": 1e400, "prompt": ""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, _, err := parseGenLine(data, 1)
		if err != nil {
			return
		}
		if in.key == "" || (in.prompt == nil) == (in.messages == nil) {
			t.Fatalf("accepted %q as id %q with prompt %v and %d messages", data, in.key, in.prompt, len(in.messages))
		}
		if !json.Valid(in.id) {
			t.Fatalf("id %q is not valid JSON", in.id)
		}
	})
}

// A torn last line is cut off and its id is not counted; a foreign line in the middle is an error.
func TestScanGenOutput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.jsonl")
	os.WriteFile(p, []byte("{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":2}\n{\"id\":\"c\",\"te"), 0o644)
	var log strings.Builder
	done, err := scanGenOutput(p, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || !done[`"a"`] || !done[`2`] || done[`"c"`] {
		t.Fatalf("done %v", done)
	}
	if b, _ := os.ReadFile(p); !strings.HasSuffix(string(b), "{\"id\":2}\n") {
		t.Fatalf("file after the scan: %q", b)
	}
	if !strings.Contains(log.String(), "incomplete last line") {
		t.Fatalf("no report of the torn line: %q", log.String())
	}
	os.WriteFile(p, []byte("{\"id\":1}\nhello\n{\"id\":2}\n"), 0o644)
	if _, err := scanGenOutput(p, &log); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("foreign line: %v", err)
	}
}

func genStoriesDir(t *testing.T) string {
	for _, p := range []string{"../../../shared/models/stories260K", "/work/shared/models/stories260K"} {
		if _, err := os.Stat(filepath.Join(p, "stories260K.bin")); err == nil {
			abs, _ := filepath.Abs(p)
			return abs
		}
	}
	t.Fatal("stories260K not found in ../shared/models")
	return ""
}

// TestGenerateChild is the child process of the end-to-end tests: it runs kvc generate with the
// arguments in $KVC_GENERATE_ARGS and exits like the command.
func TestGenerateChild(t *testing.T) {
	args := os.Getenv("KVC_GENERATE_ARGS")
	if args == "" {
		t.Skip("only run as the child of TestGenerateKillAndResume")
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, genStopSignals...)
	interrupted, err := runGenerate(strings.Split(args, "\x1f"), os.Stderr, sigs)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "kvc:", err)
		os.Exit(1)
	case interrupted:
		os.Exit(130)
	}
	os.Exit(0)
}

func generateChild(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], "-test.run=^TestGenerateChild$")
	c.Env = append(os.Environ(), "KVC_GENERATE_ARGS="+strings.Join(args, "\x1f"))
	return c
}

var genTimeField = regexp.MustCompile(`,"time_s":[-0-9.e+]+`)

// readGenLines maps id -> output line without its time, failing on a torn or repeated line.
func readGenLines(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("%s ends in a torn line", path)
	}
	out := map[string]string{}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var rec genOutput
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if _, dup := out[string(rec.ID)]; dup {
			t.Fatalf("%s:%d: id %s written twice", path, i+1, rec.ID)
		}
		out[string(rec.ID)] = genTimeField.ReplaceAllString(l, "")
	}
	return out
}

// genWaitLines polls path until it has at least n lines, or the child exits.
func genWaitLines(t *testing.T, path string, n int, c *exec.Cmd, exited <-chan error) {
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") >= n {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before %d lines were written; stderr:\n%s", err, n, c.Stderr)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// kvc generate on stories260K (CPU): a 200-prompt file runs; a run killed with SIGKILL mid-way, its
// output ending in a torn line, and restarted with the same output file writes every id exactly once,
// greedy lines byte-identical (time aside) to an uninterrupted run; SIGINT finishes the lines in flight
// and exits 130; malformed lines and duplicate ids are reported with their line numbers and skipped.
func TestGenerateKillAndResume(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.jsonl")
	var sb strings.Builder
	starts := []string{"Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird", "The sun was"}
	for i := 0; i < 200; i++ {
		var rec map[string]any
		switch {
		case i%25 == 3:
			rec = map[string]any{"id": i, "messages": []map[string]string{{"role": "user", "content": starts[i%5]}}}
		case i%10 == 7:
			rec = map[string]any{"id": fmt.Sprintf("s%d", i), "prompt": starts[i%5], "stop": []string{"."}}
		default:
			rec = map[string]any{"id": fmt.Sprintf("p%d", i), "prompt": fmt.Sprintf("%s %d", starts[i%5], i)}
		}
		rec["max_tokens"] = 6 + i%7
		b, _ := json.Marshal(rec)
		sb.Write(b)
		sb.WriteByte('\n')
		if i == 50 {
			sb.WriteString("{\"id\": \"broken\", \"prompt\": \n")
			sb.WriteString("{\"id\": \"p10\", \"prompt\": \"duplicate\"}\n")
		}
	}
	os.WriteFile(input, []byte(sb.String()), 0o644)
	common := []string{"--model", genStoriesDir(t), "--device", "cpu", "--temp", "0", "--input", input, "--max-seqs", "4", "--max-rows", "64", "--quiet"}

	run := func(out string) (string, error) {
		c := generateChild(append(common, "--output", out)...)
		var stderr strings.Builder
		c.Stderr = &stderr
		err := c.Run()
		return stderr.String(), err
	}
	full := filepath.Join(dir, "full.jsonl")
	log, err := run(full)
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, log)
	}
	want := readGenLines(t, full)
	if len(want) != 200 {
		t.Fatalf("uninterrupted run wrote %d ids, want 200", len(want))
	}
	for _, s := range []string{"in.jsonl:52: not a JSON object", "in.jsonl:53: id \"p10\" already used on line 11"} {
		if !strings.Contains(log, s) {
			t.Errorf("stderr lacks %q:\n%s", s, log)
		}
	}
	if !strings.Contains(want[`"s7"`], `"finish_reason":"stop"`) && !strings.Contains(want[`"s7"`], `"finish_reason":"length"`) {
		t.Errorf("s7: %s", want[`"s7"`])
	}

	// SIGKILL mid-run, a torn last line, then resume.
	killed := filepath.Join(dir, "killed.jsonl")
	c := generateChild(append(common, "--output", killed)...)
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	genWaitLines(t, killed, 30, c, exited)
	c.Process.Kill()
	<-exited
	b, _ := os.ReadFile(killed)
	n := strings.Count(string(b), "\n")
	if n >= 200 {
		t.Fatalf("the run finished before the kill")
	}
	f, _ := os.OpenFile(killed, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"id":"p199","text":"torn`)
	f.Close()
	log, err = run(killed)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, log)
	}
	if !strings.Contains(log, "incomplete last line") || !strings.Contains(log, fmt.Sprintf("%d ids already done", n)) {
		t.Errorf("resume stderr:\n%s", log)
	}
	compare := func(name string, got map[string]string) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d ids, want %d", name, len(got), len(want))
		}
		for id, l := range want {
			if got[id] != l {
				t.Fatalf("%s: id %s:\n got %s\nwant %s", name, id, got[id], l)
			}
		}
	}
	compare("killed+resumed", readGenLines(t, killed))
	t.Logf("killed after %d of 200 lines", n)

	// SIGINT: the lines in flight are finished, exit status 130, then resume.
	inter := filepath.Join(dir, "inter.jsonl")
	c = generateChild(append(common, "--output", inter)...)
	stderr.Reset()
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- c.Wait() }()
	genWaitLines(t, inter, 20, c, exited)
	c.Process.Signal(os.Interrupt)
	err = <-exited
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130\n%s", err, stderr.String())
	}
	part := readGenLines(t, inter)
	if len(part) >= 200 {
		t.Fatalf("the run finished before SIGINT")
	}
	if log, err = run(inter); err != nil {
		t.Fatalf("resume after SIGINT: %v\n%s", err, log)
	}
	compare("interrupted+resumed", readGenLines(t, inter))
	t.Logf("SIGINT after %d lines", len(part))
}
