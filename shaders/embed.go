// Package shaders holds the GLSL compute sources and their SPIR-V, compiled by `./build.sh shaders` from the
// variant tables (*.variants) and committed, so that `go build` needs no glslc.
package shaders

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed spv
var spv embed.FS

// SPV returns the SPIR-V module of a variant by name (the first column of a *.variants line).
func SPV(name string) ([]byte, error) {
	b, err := spv.ReadFile("spv/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("shaders: no SPIR-V module %q (is it in a shaders/*.variants table? run ./build.sh shaders)", name)
	}
	return b, nil
}

// Names lists every embedded module.
func Names() []string {
	ents, _ := fs.ReadDir(spv, "spv")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".spv"))
	}
	sort.Strings(names)
	return names
}
