package vk

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFault(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind faultKind
		n    int64
		ok   bool
	}{
		{"", faultNone, 0, true}, {"alloc:1", faultAlloc, 1, true}, {"submit:7", faultSubmit, 7, true},
		{"lost:30", faultLost, 30, true}, {"alloc", 0, 0, false}, {"alloc:0", 0, 0, false}, {"alloc:-2", 0, 0, false},
		{"oom:3", 0, 0, false}, {"lost:x", 0, 0, false}, {"lost:3:4", 0, 0, false},
	} {
		k, n, err := parseFault(c.in)
		if (err == nil) != c.ok || k != c.kind || n != c.n {
			t.Errorf("parseFault(%q) = %v, %d, %v", c.in, k, n, err)
		}
		if err != nil && !strings.Contains(err.Error(), "KVC_FAULT") {
			t.Errorf("parseFault(%q) error %q does not name KVC_FAULT", c.in, err)
		}
	}
}

// setFault arms an injected fault for one test and restores the process's own setting afterwards.
func setFault(t *testing.T, k faultKind, n int64) {
	on, which, at := faultOn, faultWhich, faultAt
	faultOn, faultWhich, faultAt = true, k, n
	for i := range faultCount {
		faultCount[i].Store(0)
	}
	deviceLost.Store(false)
	t.Cleanup(func() {
		faultOn, faultWhich, faultAt = on, which, at
		deviceLost.Store(false)
	})
}

func vkResult(err error) string {
	var ve *Error
	if errors.As(err, &ve) {
		return resultName(ve.Result)
	}
	return "no Vulkan error"
}

// The N-th call of the chosen kind fails as a driver would, the others go through, and a lost device stays lost.
func TestInjectedFaults(t *testing.T) {
	in := openInstance(t)
	devs, err := in.Devices()
	if err != nil || len(devs) == 0 {
		t.Fatalf("no device: %v", err)
	}
	p := devs[0]
	d, err := p.CreateDevice(Features{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	typ := p.Info.MemoryTypes
	if len(typ) == 0 {
		t.Fatal("no memory types")
	}
	pool, cmd, err := d.CreateCommandBuffer()
	if err != nil {
		t.Fatal(err)
	}
	defer d.DestroyCommandPool(pool)
	fence, err := d.CreateFence()
	if err != nil {
		t.Fatal(err)
	}
	defer d.DestroyFence(fence)
	submit := func() error {
		if err := d.Begin(cmd); err != nil {
			t.Fatal(err)
		}
		if err := d.End(cmd); err != nil {
			t.Fatal(err)
		}
		return d.SubmitWait(cmd, fence, 5e9)
	}

	setFault(t, faultAlloc, 2)
	for i := 1; i <= 3; i++ {
		m, err := d.AllocateMemory(4096, 0)
		if i == 2 {
			if got := vkResult(err); got != "VK_ERROR_OUT_OF_DEVICE_MEMORY" {
				t.Errorf("alloc:2, allocation 2: %v (%s)", err, got)
			} else if !err.(*Error).OutOfMemory() {
				t.Errorf("injected allocation failure is not OutOfMemory")
			}
			continue
		}
		if err != nil {
			t.Fatalf("alloc:2, allocation %d: %v", i, err)
		}
		d.FreeMemory(m)
	}
	if err := submit(); err != nil {
		t.Errorf("alloc:2 made a submission fail: %v", err)
	}

	setFault(t, faultSubmit, 2)
	for i := 1; i <= 3; i++ {
		err := submit()
		if got := vkResult(err); i == 2 && got != "VK_ERROR_OUT_OF_DEVICE_MEMORY" || i != 2 && err != nil {
			t.Errorf("submit:2, submission %d: %v", i, err)
		}
	}
	if DeviceLost() {
		t.Errorf("a failed submission marked the device lost")
	}

	setFault(t, faultLost, 2)
	for i := 1; i <= 4; i++ {
		err := submit()
		if got := vkResult(err); i >= 2 && got != "VK_ERROR_DEVICE_LOST" || i < 2 && err != nil {
			t.Errorf("lost:2, submission %d: %v (want the device lost from the 2nd on)", i, err)
		}
	}
	if !DeviceLost() {
		t.Errorf("DeviceLost false after lost:2")
	}
	if m, err := d.AllocateMemory(4096, 0); err != nil {
		t.Errorf("allocation after an injected loss: %v", err)
	} else {
		d.FreeMemory(m)
	}
}
