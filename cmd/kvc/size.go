package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseByteSize reads sizes like 512MiB, 24GiB, 80GB, 1.5G, 4096 (bytes).
func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suf string
		mul float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	mul := 1.0
	u := strings.ToUpper(t)
	for _, x := range units {
		if strings.HasSuffix(u, x.suf) {
			mul, t = x.mul, strings.TrimSpace(t[:len(t)-len(x.suf)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v >= 0) || v*mul > 1<<62 { // !(v >= 0) also refuses NaN
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return int64(v * mul), nil
}
