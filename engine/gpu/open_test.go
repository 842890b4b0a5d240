package gpu

import (
	"testing"

	"kvc/engine/vk/vktest"
)

// OpenForTest opens the test's Vulkan device (see vktest.Open); it is closed at cleanup.
func OpenForTest(t testing.TB) *Backend {
	t.Helper()
	return openForTest(t, Options{})
}

func openForTest(t testing.TB, opts Options) *Backend {
	t.Helper()
	return vktest.Open(t, func(index int) (*Backend, error) {
		if index < 0 {
			return OpenBest(opts)
		}
		return Open(index, opts)
	}, ErrNoVulkan)
}
