// Package device picks the backend for a --device spec: "cpu", "vulkan:N", or "" for the best Vulkan device
// with a fall back to the CPU (saying why, once) when there is no Vulkan loader or device.
package device

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/gpu"
	"kvc/engine/vk"
)

// Options configures the backend Open returns.
type Options struct {
	Vulkan     gpu.Options
	CPUThreads int // the CPU backend's workers (0: cpu.DefaultThreads, one per physical core)
}

// Info describes one device for `kvc devices`.
type Info struct {
	Spec   string         // "vulkan:0", "cpu"
	Name   string         // device name
	Vulkan *vk.DeviceInfo // nil for the CPU backend
	Usable string         // "" when kvc can use it, else why not
}

// List returns every Vulkan device, then the CPU backend. A missing loader is not an error: the list then
// holds only the CPU, and the error says why (for display).
func List() ([]Info, error) {
	var out []Info
	devs, err := gpu.Devices()
	for i := range devs {
		d := &devs[i]
		info := Info{Spec: fmt.Sprintf("vulkan:%d", i), Name: d.Name, Vulkan: d}
		switch {
		case d.QueueFamily < 0:
			info.Usable = "no compute queue"
		case d.APIVersion < vk.APIVersion(1, 2, 0):
			info.Usable = "Vulkan " + vk.VersionString(d.APIVersion) + " < 1.2"
		}
		out = append(out, info)
	}
	out = append(out, Info{Spec: "cpu", Name: "Go CPU backend"})
	return out, err
}

// Default picks the default device from the Vulkan devices: the best usable one by type (discrete >
// integrated > virtual > other), except that when the best is CPU-type (lavapipe/llvmpipe, SwiftShader)
// it is the CPU backend (-1), which runs the same cores faster: on every model measured (README,
// "Generation speed") it decodes and prefills several times faster than lavapipe, whose kernels reach a
// small fraction of the memory bandwidth the CPU backend's SIMD kernels use. reason says, in one line,
// why the CPU backend was chosen ("" when a Vulkan device is).
func Default(devs []vk.DeviceInfo) (index int, reason string) {
	best := gpu.BestDevice(devs)
	switch {
	case best < 0:
		return -1, "no usable Vulkan device"
	case devs[best].Type == vk.TypeCPU:
		return -1, fmt.Sprintf("the only Vulkan devices are CPU-type (vulkan:%d is %s), and the CPU backend is faster on the same cores (--device vulkan:%d overrides)",
			best, devs[best].Name, best)
	}
	return best, ""
}

// Open returns the backend for spec. With spec "" it takes the Default device; when that is the CPU
// backend (no Vulkan, or only CPU-type Vulkan devices) it says why in one line on warn.
func Open(spec string, opts Options, warn io.Writer) (engine.Backend, error) {
	switch {
	case spec == "cpu":
		return cpu.New(opts.CPUThreads), nil
	case spec == "" || spec == "auto":
		if devs, err := gpu.Devices(); err == nil {
			if i, why := Default(devs); i < 0 && len(devs) > 0 && gpu.BestDevice(devs) >= 0 {
				fmt.Fprintf(warn, "kvc: using the CPU backend: %s\n", why)
				return cpu.New(opts.CPUThreads), nil
			}
		}
		b, err := gpu.OpenBest(opts.Vulkan)
		if errors.Is(err, gpu.ErrNoVulkan) {
			fmt.Fprintf(warn, "kvc: using the CPU backend: %v\n", err)
			return cpu.New(opts.CPUThreads), nil
		}
		if err != nil {
			return nil, err
		}
		return b, nil
	case strings.HasPrefix(spec, "vulkan:"):
		n, err := strconv.Atoi(strings.TrimPrefix(spec, "vulkan:"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("device %q: want vulkan:N with N a device index (see kvc devices)", spec)
		}
		b, err := gpu.Open(n, opts.Vulkan)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("device %q: want cpu, vulkan:N or nothing for the default (see kvc devices)", spec)
}
