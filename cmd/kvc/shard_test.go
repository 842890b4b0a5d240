package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	good := []struct {
		flag string
		env  func(string) string
		i, n int
	}{
		{"", env(), 0, 1},
		{"2/7", env("JOB_COMPLETION_INDEX", "1", "JOB_COMPLETIONS", "3"), 2, 7},
		{"", env("JOB_COMPLETION_INDEX", "1", "JOB_COMPLETIONS", "3"), 1, 3},
		{"", env("SLURM_ARRAY_TASK_ID", "4", "SLURM_ARRAY_TASK_COUNT", "5"), 4, 5},
		{"", env("SLURM_ARRAY_TASK_ID", "5", "SLURM_ARRAY_TASK_MIN", "1", "SLURM_ARRAY_TASK_COUNT", "5"), 4, 5},
	}
	for _, g := range good {
		sh, err := parseShard(g.flag, g.env)
		if err != nil || sh.index != g.i || sh.count != g.n {
			t.Errorf("%q: %+v %v, want %d/%d", g.flag, sh, err, g.i, g.n)
		}
	}
	bad := []struct {
		flag string
		env  func(string) string
		want string
	}{
		{"3", env(), "want i/n"},
		{"a/3", env(), "--shard index"},
		{"3/3", env(), "0 <= index < count"},
		{"-1/3", env(), "0 <= index < count"},
		{"0/0", env(), "0 <= index < count"},
		{"", env("JOB_COMPLETION_INDEX", "1"), "JOB_COMPLETIONS is not"},
		{"", env("SLURM_ARRAY_TASK_ID", "8", "SLURM_ARRAY_TASK_COUNT", "4"), "0 <= index < count"},
		{"", env("SLURM_ARRAY_TASK_ID", "x", "SLURM_ARRAY_TASK_COUNT", "4"), "SLURM_ARRAY_TASK_ID"},
	}
	for _, b := range bad {
		if _, err := parseShard(b.flag, b.env); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want an error with %q", b.flag, err, b.want)
		}
	}
	if got := (shard{index: 2, count: 7}).output("/x/out.jsonl"); got != "/x/out-00002-of-00007.jsonl" {
		t.Errorf("output name %s", got)
	}
}

// kvc generate over a 200-line file with n = 1, 3 and 7 shards: the shards' outputs hold every id exactly
// once, each shard in its own file.
func TestGenerateShards(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "{\"id\": %d, \"prompt\": \"Once\"}\n", i)
		} else {
			fmt.Fprintf(&b, "{\"id\": \"s%d\", \"prompt\": \"The cat\"}\n", i)
		}
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 7} {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			out := filepath.Join(dir, fmt.Sprintf("out%d.jsonl", n))
			args := []string{"--model", "stories260K", "--device", "cpu", "--quiet", "-n", "1", "--temp", "0", "--input", in, "--output", out,
				"--shard", fmt.Sprintf("%d/%d", i, n)}
			if _, err := runGenerate(args, io.Discard, nil); err != nil {
				t.Fatalf("shard %d/%d: %v", i, n, err)
			}
			got := (shard{index: i, count: n}).output(out)
			f, err := os.Open(got)
			if err != nil {
				t.Fatalf("shard %d/%d: %v", i, n, err)
			}
			lines := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var rec struct {
					ID    json.RawMessage `json:"id"`
					Error string          `json:"error"`
				}
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Error != "" {
					t.Fatalf("%s: %q: %v", got, sc.Text(), err)
				}
				seen[string(rec.ID)]++
				lines++
			}
			f.Close()
			t.Logf("n=%d shard %d: %d ids", n, i, lines)
			if want := 200 / n; lines < want/3 || lines > want*2 { // a hash split, not an exact one
				t.Errorf("n=%d shard %d holds %d ids, an even split gives about %d", n, i, lines, want)
			}
		}
		if len(seen) != 200 {
			t.Fatalf("n=%d: %d distinct ids written, want 200", n, len(seen))
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: id %s written %d times", n, id, c)
			}
		}
	}
}
