package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"kvc/engine"
	"kvc/engine/cpu"
	"kvc/engine/gpu"
)

// openBackend opens --device: "cpu", "vulkan:N", or "" for the best Vulkan device (discrete > integrated >
// virtual > CPU-type), falling back to the CPU backend with one line on stderr when there is none.
func openBackend(spec string, stderr io.Writer) (engine.Backend, error) {
	switch {
	case spec == "cpu":
		return &cpu.Backend{}, nil
	case strings.HasPrefix(spec, "vulkan:"):
		n, err := strconv.Atoi(strings.TrimPrefix(spec, "vulkan:"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--device %q: want vulkan:N with N a device index (see kvc devices) or cpu", spec)
		}
		return gpu.Open(n, gpu.Options{})
	case spec == "" || spec == "vulkan":
		devs, err := gpu.Devices()
		if err != nil {
			fmt.Fprintf(stderr, "kvc: no Vulkan (%v); running on the CPU backend\n", err)
			return &cpu.Backend{}, nil
		}
		best := gpu.BestDevice(devs)
		if best < 0 {
			fmt.Fprintln(stderr, "kvc: no usable Vulkan device (install a driver, e.g. mesa-vulkan-drivers); running on the CPU backend")
			return &cpu.Backend{}, nil
		}
		return gpu.Open(best, gpu.Options{})
	}
	return nil, fmt.Errorf("--device %q: want vulkan:N or cpu", spec)
}
