package gpu

import (
	"errors"
	"os"
	"strconv"
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
	var b *Backend
	var err error
	if s := os.Getenv("KVC_TEST_DEVICE"); s != "" {
		idx, perr := strconv.Atoi(s)
		if perr != nil {
			t.Fatalf("KVC_TEST_DEVICE=%q is not a device index", s)
		}
		b, err = Open(idx, opts)
	} else {
		b, err = OpenBest(opts)
	}
	if errors.Is(err, ErrNoVulkan) {
		fail("%v", err)
	}
	if err != nil {
		t.Fatalf("opening the Vulkan device: %v", err) // a device exists but fails: never a skip
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
