package main

import (
	"io"

	"kvc/engine"
	"kvc/engine/cpu"
)

// openBackend opens --device.
func openBackend(spec string, stderr io.Writer) (engine.Backend, error) {
	return &cpu.Backend{}, nil
}
