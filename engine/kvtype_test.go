package engine_test

import (
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
)

// deviceLike is the CPU backend dressed as a device backend (one with memory of its own).
type deviceLike struct{ *cpu.Backend }

func (deviceLike) MemoryAvailable() int64 { return 1 << 30 }

// TestChooseKVType: every combination of backend kind, head-dim parity and request.
func TestChooseKVType(t *testing.T) {
	host, device := engine.Backend(&cpu.Backend{}), engine.Backend(deviceLike{&cpu.Backend{}})
	fast := cpu.New(2)
	defer fast.Close()
	const bad = engine.KVType(-1) // an error is expected
	for _, c := range []struct {
		name    string
		b       engine.Backend
		headDim int
		req     string
		want    engine.KVType
	}{
		{"device even default", device, 64, "", engine.KVF16},
		{"device even f16", device, 64, "f16", engine.KVF16},
		{"device even f32", device, 64, "f32", engine.KVF32},
		{"device odd default", device, 7, "", engine.KVF32},
		{"device odd f16", device, 7, "f16", bad},
		{"device odd f32", device, 7, "f32", engine.KVF32},
		{"host even default", host, 64, "", engine.KVF32},
		{"host even f16", host, 64, "f16", engine.KVF16},
		{"host even f32", host, 64, "f32", engine.KVF32},
		{"host odd default", host, 7, "", engine.KVF32},
		{"host odd f16", host, 7, "f16", engine.KVF16},
		{"host odd f32", host, 7, "f32", engine.KVF32},
		{"fast host even default", fast, 64, "", engine.KVF16},
		{"fast host odd default", fast, 7, "", engine.KVF16},
		{"fast host f32", fast, 64, "f32", engine.KVF32},
		{"device unknown", device, 64, "q4", bad},
		{"host unknown", host, 64, "F16", bad},
	} {
		got, err := engine.ChooseKVType(c.b, c.headDim, c.req)
		switch {
		case c.want == bad && err == nil:
			t.Errorf("%s: got %v, want an error", c.name, got)
		case c.want == bad && !strings.Contains(err.Error(), "KV type"):
			t.Errorf("%s: error %q does not name the KV type", c.name, err)
		case c.want != bad && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != bad && got != c.want:
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}
