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

// Options configures the Vulkan backend.
type Options = gpu.Options

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

// Open returns the backend for spec. With spec "" it takes the best Vulkan device (discrete > integrated >
// virtual > CPU-type) and, when Vulkan is unavailable, the CPU backend after one line on warn.
func Open(spec string, opts Options, warn io.Writer) (engine.Backend, error) {
	switch {
	case spec == "cpu":
		return cpu.New(0), nil
	case spec == "" || spec == "auto":
		b, err := gpu.OpenBest(opts)
		if errors.Is(err, gpu.ErrNoVulkan) {
			fmt.Fprintf(warn, "kvc: using the CPU backend: %v\n", err)
			return cpu.New(0), nil
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
		b, err := gpu.Open(n, opts)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("device %q: want cpu, vulkan:N or nothing for the default (see kvc devices)", spec)
}
