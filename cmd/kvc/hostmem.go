package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hostMemoryAvailable is the memory a host backend can still use: the kernel's MemAvailable, lowered to
// what the process's cgroup limit leaves (v2 memory.max, v1 memory.limit_in_bytes). ok is false where
// neither can be read (then nothing is checked). A variable so that tests can shrink the machine.
var hostMemoryAvailable = func() (int64, bool) {
	avail, ok := memInfoAvailable()
	if left, cok := cgroupMemoryLeft(); cok && (!ok || left < avail) {
		avail, ok = left, true
	}
	return avail, ok
}

func memInfoAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// cgroupMemoryLeft is the process's cgroup memory limit minus its usage.
func cgroupMemoryLeft() (int64, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	readInt := func(p string) (int64, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n, err == nil // "max" (no limit) fails here
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		var limitFile, usageFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = []string{filepath.Join("/sys/fs/cgroup", parts[2]), "/sys/fs/cgroup"}
			limitFile, usageFile = "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dirs = []string{filepath.Join("/sys/fs/cgroup/memory", parts[2]), "/sys/fs/cgroup/memory"}
			limitFile, usageFile = "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		for _, d := range dirs {
			limit, ok1 := readInt(filepath.Join(d, limitFile))
			used, ok2 := readInt(filepath.Join(d, usageFile))
			if ok1 && ok2 && limit < 1<<60 {
				return max(limit-used, 0), true
			}
		}
	}
	return 0, false
}
