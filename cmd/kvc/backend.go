package main

import (
	"io"

	"kvc/engine"
	"kvc/engine/device"
)

// openBackend opens --device: "cpu", "vulkan:N", or "" for the best Vulkan device, falling back to the CPU
// backend with one line on stderr when there is no Vulkan. threads is --threads (0: the CPU backend's default).
func openBackend(spec string, threads int, stderr io.Writer) (engine.Backend, error) {
	return device.Open(spec, device.Options{CPUThreads: threads}, stderr)
}
