package device

import (
	"strings"
	"testing"

	"kvc/engine/vk"
)

func fakeDevice(name string, t vk.DeviceType) vk.DeviceInfo {
	return vk.DeviceInfo{Name: name, Type: t, QueueFamily: 0, APIVersion: vk.APIVersion(1, 3, 0)}
}

// The default device for fake device lists: a real GPU wins over a CPU-type device; CPU-type devices
// alone (or none usable) give the CPU backend, with one line naming why and how to override.
func TestDefaultDevice(t *testing.T) {
	lavapipe := fakeDevice("llvmpipe (LLVM 15.0.6, 256 bits)", vk.TypeCPU)
	swiftshader := fakeDevice("SwiftShader Device (Subzero)", vk.TypeCPU)
	old := fakeDevice("old GPU", vk.TypeDiscrete)
	old.APIVersion = vk.APIVersion(1, 1, 0)
	noQueue := fakeDevice("no compute", vk.TypeIntegrated)
	noQueue.QueueFamily = -1
	for _, c := range []struct {
		name   string
		devs   []vk.DeviceInfo
		want   int
		reason string // a substring of the reason; "" for a Vulkan choice
	}{
		{"none", nil, -1, "no usable"},
		{"discrete and lavapipe", []vk.DeviceInfo{lavapipe, fakeDevice("RTX", vk.TypeDiscrete)}, 1, ""},
		{"integrated", []vk.DeviceInfo{fakeDevice("Iris", vk.TypeIntegrated), lavapipe}, 0, ""},
		{"virtual", []vk.DeviceInfo{lavapipe, fakeDevice("virtio-gpu", vk.TypeVirtual)}, 1, ""},
		{"lavapipe only", []vk.DeviceInfo{lavapipe}, -1, "vulkan:0 is llvmpipe"},
		{"two CPU-type", []vk.DeviceInfo{swiftshader, lavapipe}, -1, "CPU-type"},
		{"unusable GPUs and lavapipe", []vk.DeviceInfo{old, noQueue, lavapipe}, -1, "--device vulkan:2 overrides"},
		{"only unusable", []vk.DeviceInfo{old, noQueue}, -1, "no usable"},
	} {
		i, why := Default(c.devs)
		if i != c.want || (c.reason == "") != (why == "") || !strings.Contains(why, c.reason) || strings.Contains(why, "\n") {
			t.Errorf("%s: Default = %d, %q; want %d and a reason containing %q", c.name, i, why, c.want, c.reason)
		}
	}
}
