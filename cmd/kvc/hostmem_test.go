package main

import (
	"io"
	"strings"
	"testing"
)

// --device cpu refuses a model that does not fit the host's memory, with the sizes, before copying any
// weights (it used to grow until the machine killed it). The machine is shrunk to 100 KiB here.
func TestCPUMemoryCheck(t *testing.T) {
	if a, ok := hostMemoryAvailable(); !ok || a <= 0 {
		t.Fatalf("host memory not readable on this machine (%d, %v)", a, ok)
	}
	real := hostMemoryAvailable
	t.Cleanup(func() { hostMemoryAvailable = real })
	hostMemoryAvailable = func() (int64, bool) { return 100 << 10, true }
	t.Setenv("KVC_MODELS", sharedModels(t))
	ef := engineFlags{model: "stories260K", device: "cpu", kvBlock: 16, maxRows: 256, policy: "full", protect: 32, window: 8, quiet: true}
	_, err := load(&ef, io.Discard)
	if err == nil {
		t.Fatal("a model larger than the host memory was loaded")
	}
	for _, want := range []string{"does not fit", "weights", "100.0 KiB free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	hostMemoryAvailable = real
	l, err := load(&ef, io.Discard)
	if err != nil {
		t.Fatalf("with the real host memory: %v", err)
	}
	l.Close()
}
