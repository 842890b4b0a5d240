// Package vktest opens the Vulkan device a test runs on, under the contract ./build.sh test relies on: with
// no Vulkan the test skips, unless KVC_REQUIRE_VULKAN=1 (then it fails); KVC_TEST_DEVICE=N picks device N;
// at cleanup the device is closed and every validation-layer message (KVC_VALIDATION=1) fails the test.
// It is a package of its own so that the kvc binary does not link the testing package, and it does not
// import the backend so that the backend's own tests can use it.
package vktest

import (
	"errors"
	"os"
	"strconv"
	"testing"
)

// Device is what a test needs of an opened device.
type Device interface {
	Name() string
	Close() error
	ValidationMessages() []string
}

// Open opens the test's device with open(index), index -1 meaning the best device; open returns an error
// wrapping noVulkan when the machine has no usable Vulkan device.
func Open[D Device](t testing.TB, open func(index int) (D, error), noVulkan error) D {
	t.Helper()
	idx := -1
	if s := os.Getenv("KVC_TEST_DEVICE"); s != "" {
		var err error
		if idx, err = strconv.Atoi(s); err != nil || idx < 0 {
			t.Fatalf("KVC_TEST_DEVICE=%q is not a device index", s)
		}
	}
	d, err := open(idx)
	if errors.Is(err, noVulkan) {
		if os.Getenv("KVC_REQUIRE_VULKAN") == "1" {
			t.Fatalf("KVC_REQUIRE_VULKAN=1 but %v", err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("opening the Vulkan device: %v", err) // a device exists but fails: never a skip
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing %s: %v", d.Name(), err)
		}
		for _, m := range d.ValidationMessages() {
			t.Error(m)
		}
	})
	return d
}
