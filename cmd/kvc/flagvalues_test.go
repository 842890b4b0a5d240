package main

import (
	"bytes"
	"strings"
	"testing"
)

// Values the parser accepts but that mean nothing are refused, naming the flag, before any model is opened.
func TestFlagValuesRefused(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--top-p", "NaN"}, "top-p NaN must be a finite number"},
		{[]string{"--temp", "Inf"}, "temperature +Inf must be a finite number"},
		{[]string{"--temp", "-Inf"}, "temperature"},
		{[]string{"--min-p", "nan"}, "min-p"},
		{[]string{"--repeat-penalty", "+Inf"}, "repeat penalty"},
		{[]string{"--kv-window", "-3"}, "--kv-window -3"},
		{[]string{"--kv-interval", "-4"}, "--kv-interval -4"},
		{[]string{"--kv-budget", "-5", "--kv-policy", "kvcompress"}, "--kv-budget -5"},
		{[]string{"--kv-rate", "NaN", "--kv-policy", "kvcompress"}, "--kv-rate NaN"},
		{[]string{"--kv-rate", "0.5", "--kv-policy", "kvcompress"}, "--kv-rate 0.5"},
		{[]string{"--kv-mem", "NaN"}, `--kv-mem: size "NaN"`},
		{[]string{"--kv-mem", "-1GiB"}, `--kv-mem: size "-1GiB"`},
		{[]string{"--kv-mem", "InfMiB"}, `--kv-mem: size "InfMiB"`},
	} {
		var stderr bytes.Buffer
		args := append([]string{"run", "--model", "/nonexistent/model", "--device", "cpu", "--prompt", "x"}, c.flags...)
		status := runMain(args, &bytes.Buffer{}, &stderr)
		msg := strings.TrimSpace(stderr.String())
		if status == 0 || !strings.Contains(msg, c.want) || strings.Contains(msg, "/nonexistent") || strings.Count(msg, "\n") > 0 {
			t.Errorf("kvc %s: status %d, stderr %q; want one line saying %q", strings.Join(c.flags, " "), status, msg, c.want)
		}
	}
}
