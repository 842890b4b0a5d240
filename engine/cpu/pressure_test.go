package cpu

import (
	"testing"
	"time"
)

func TestParseStall(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"some avg10=1.50 avg60=0.20 avg300=0.05 total=3403957518\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n": 3403957518 * time.Microsecond,
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=7\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=9":            9 * time.Microsecond,
		"some total=0": 0,
	} {
		if got, ok := parseStall([]byte(in)); !ok || got != want {
			t.Errorf("parseStall(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "full avg10=0 total=5", "some avg10=0.00", "some total=-3", "some total=x", "some total=99999999999999999999"} {
		if got, ok := parseStall([]byte(in)); ok {
			t.Errorf("parseStall(%q) = %v, want no figure", in, got)
		}
	}
}

func FuzzParseStall(f *testing.F) {
	f.Add([]byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	f.Add([]byte("some total=9223372036854775"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, ok := parseStall(b); ok && d < 0 {
			t.Fatalf("negative stall %v", d)
		}
	})
}

// The pool polls briefly (busy) until two samples pressureEvery apart show others waited for a CPU less
// than pressureBusy of the time, and again as soon as a sample shows more, or the figures are missing.
func TestPressureSample(t *testing.T) {
	saved := cpuStall
	defer func() { cpuStall = saved }()
	var total time.Duration
	ok := true
	cpuStall = func() (time.Duration, bool) { return total, ok }
	var g pressure
	g.busy.Store(true)
	t0 := time.Unix(1000, 0)
	for i, step := range []struct {
		after, stalled time.Duration
		ok, busy       bool
	}{
		{0, 0, true, true}, // the first sample: nothing to compare with
		{pressureEvery, pressureEvery / 100, true, false},
		{pressureEvery / 2, pressureEvery, true, false}, // too soon: not sampled
		{pressureEvery, 0, true, true},                  // since the last sample: a stall of 2/3 of the time
		{2 * pressureEvery, pressureEvery / 10, true, false},
		{2 * pressureEvery, pressureEvery, true, true}, // half the time
		{pressureEvery, 0, true, false},
		{pressureEvery, 0, false, true}, // no figures
	} {
		t0 = t0.Add(step.after)
		total += step.stalled
		ok = step.ok
		g.sample(t0)
		if g.busy.Load() != step.busy {
			t.Fatalf("sample %d: busy %v, want %v", i, g.busy.Load(), step.busy)
		}
	}
}
