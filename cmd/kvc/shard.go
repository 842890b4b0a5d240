package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"path/filepath"
	"strconv"
	"strings"
)

// shard is one part of a batch split over n independent kvc generate processes (a Kubernetes Indexed Job,
// a Slurm array, or a loop): the part of the input ids whose stable hash falls in [i/n, (i+1)/n) of the
// hash space. No coordination is needed: every process reads the whole input and keeps its own ids.
type shard struct {
	index, count int
	from         string // where it was set: --shard or the environment variables
}

// parseShard reads --shard i/n, else the Indexed Job's JOB_COMPLETION_INDEX with JOB_COMPLETIONS, else
// the Slurm array's SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT; none of them is one shard of one.
func parseShard(flagVal string, getenv func(string) string) (shard, error) {
	num := func(name, s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want an integer", name, s)
		}
		return n, nil
	}
	var sh shard
	switch {
	case flagVal != "":
		is, ns, ok := strings.Cut(flagVal, "/")
		if !ok {
			return sh, fmt.Errorf("--shard %q: want i/n, e.g. 0/4", flagVal)
		}
		var err error
		if sh.index, err = num("--shard index", is); err != nil {
			return sh, err
		}
		if sh.count, err = num("--shard count", ns); err != nil {
			return sh, err
		}
		sh.from = "--shard"
	case getenv("JOB_COMPLETION_INDEX") != "":
		var err error
		if sh.index, err = num("JOB_COMPLETION_INDEX", getenv("JOB_COMPLETION_INDEX")); err != nil {
			return sh, err
		}
		if getenv("JOB_COMPLETIONS") == "" {
			return sh, fmt.Errorf("JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not: set it in the Job's env to spec.completions (or pass --shard i/n)")
		}
		if sh.count, err = num("JOB_COMPLETIONS", getenv("JOB_COMPLETIONS")); err != nil {
			return sh, err
		}
		sh.from = "JOB_COMPLETION_INDEX/JOB_COMPLETIONS"
	case getenv("SLURM_ARRAY_TASK_ID") != "":
		var err error
		if sh.index, err = num("SLURM_ARRAY_TASK_ID", getenv("SLURM_ARRAY_TASK_ID")); err != nil {
			return sh, err
		}
		if m := getenv("SLURM_ARRAY_TASK_MIN"); m != "" { // --array=1-8 numbers tasks from 1
			lo, err := num("SLURM_ARRAY_TASK_MIN", m)
			if err != nil {
				return sh, err
			}
			sh.index -= lo
		}
		if sh.count, err = num("SLURM_ARRAY_TASK_COUNT", getenv("SLURM_ARRAY_TASK_COUNT")); err != nil {
			return sh, err
		}
		sh.from = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
	default:
		return shard{0, 1, ""}, nil
	}
	if sh.count < 1 || sh.index < 0 || sh.index >= sh.count {
		return sh, fmt.Errorf("shard %d of %d (from %s): want 0 <= index < count (a Slurm array with a step needs --array=0-N without one)", sh.index, sh.count, sh.from)
	}
	return sh, nil
}

// owns says whether the id (its compact JSON) falls in this shard: the high word of hash x count, an even
// split of a 64-bit hash that depends on nothing but the id and n. The hash is SHA-256's first 8 bytes:
// FNV-1a leaves the high bits of short, similar ids ("1", "2", ...) badly mixed (115/60/25 of 200 over 3).
func (s shard) owns(key string) bool {
	sum := sha256.Sum256([]byte(key))
	part, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(s.count))
	return int(part) == s.index
}

// output is the shard's own output file: out-00002-of-00007.jsonl for out.jsonl (unchanged for one shard).
func (s shard) output(path string) string {
	if s.count == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%05d-of-%05d%s", strings.TrimSuffix(path, ext), s.index, s.count, ext)
}

// keep returns the inputs of this shard.
func (s shard) keep(inputs []genInput, stderr io.Writer) []genInput {
	if s.count == 1 {
		return inputs
	}
	var out []genInput
	for _, in := range inputs {
		if s.owns(in.key) {
			out = append(out, in)
		}
	}
	fmt.Fprintf(stderr, "kvc: shard %d of %d (%s): %d of %d ids\n", s.index, s.count, s.from, len(out), len(inputs))
	return out
}
