package main

import (
	"io"

	"kvc/engine"
	"kvc/engine/device"
)

// openBackend opens --device: "cpu", "vulkan:N", or "" for the best Vulkan device, falling back to the CPU
// backend with one line on stderr when there is no Vulkan.
func openBackend(spec string, stderr io.Writer) (engine.Backend, error) {
	return device.Open(spec, device.Options{}, stderr)
}
