package gpu

import (
	"os"
	"testing"
)

// OpenForTest opens the default Vulkan device for a test: with the validation layer when KVC_VALIDATION=1
// (any validation message then fails the test at cleanup), skipping when there is no Vulkan unless
// KVC_REQUIRE_VULKAN=1 (then failing). KVC_TEST_DEVICE=N picks device N. The backend is closed at cleanup.
func OpenForTest(t testing.TB) *Backend {
	t.Helper()
	return openForTest(t, Options{})
}

func openForTest(t testing.TB, opts Options) *Backend {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("KVC_REQUIRE_VULKAN") == "1" {
			t.Fatalf("KVC_REQUIRE_VULKAN=1 but "+format, args...)
		}
		t.Skipf(format, args...)
	}
	idx := -1
	if s := os.Getenv("KVC_TEST_DEVICE"); s != "" {
		var n int
		for _, c := range s {
			if c < '0' || c > '9' {
				t.Fatalf("KVC_TEST_DEVICE=%q is not a device index", s)
			}
			n = n*10 + int(c-'0')
		}
		idx = n
	} else {
		devs, err := Devices()
		if err != nil {
			fail("no Vulkan: %v", err)
		}
		if idx = BestDevice(devs); idx < 0 {
			fail("no usable Vulkan device among %d", len(devs))
		}
	}
	b, err := Open(idx, opts)
	if err != nil {
		fail("cannot open Vulkan device %d: %v", idx, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing %s: %v", b.Name(), err)
		}
		for _, m := range b.ValidationMessages() {
			t.Error(m)
		}
	})
	return b
}
