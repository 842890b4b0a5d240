package gpu

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"kvc/engine/vk"
	"kvc/shaders"
)

func TestParseSPIRVOfEmbeddedModules(t *testing.T) {
	for _, c := range []struct {
		name     string
		spec     []uint32
		bindings map[[2]uint32]bool
	}{
		{"fill", []uint32{0}, map[[2]uint32]bool{{0, 0}: false}},
		{"copy", []uint32{0}, map[[2]uint32]bool{{0, 0}: true, {0, 1}: false}},
	} {
		code, err := shaders.SPV(c.name)
		if err != nil {
			t.Fatal(err)
		}
		si, err := parseSPIRV(code)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(si.SpecIDs, c.spec) || !reflect.DeepEqual(si.Bindings, c.bindings) {
			t.Errorf("%s: spec %v bindings %v, want %v %v", c.name, si.SpecIDs, si.Bindings, c.spec, c.bindings)
		}
		if !reflect.DeepEqual(si.Capabilities, []uint32{1}) {
			t.Errorf("%s: capabilities %v, want [1] (Shader)", c.name, si.Capabilities)
		}
	}
	// Every embedded module parses.
	for _, n := range shaders.Names() {
		code, _ := shaders.SPV(n)
		if _, err := parseSPIRV(code); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestParseSPIRVRejectsGarbage(t *testing.T) {
	hdr := func(words ...uint32) []byte {
		b := make([]byte, 4*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		return b
	}
	for name, code := range map[string][]byte{
		"empty":                    nil,
		"odd length":               make([]byte, 21),
		"bad magic":                hdr(1, 0, 0, 0, 0),
		"zero-length instruction":  hdr(spvMagic, 0x10000, 0, 10, 0, 0),
		"instruction past the end": hdr(spvMagic, 0x10000, 0, 10, 0, 5<<16|opDecorate, 1),
	} {
		if _, err := parseSPIRV(code); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMissingFeatures(t *testing.T) {
	none := vk.Features{}
	sg := vk.Subgroup{Size: 32, InCompute: true, Operations: vk.SubgroupBasic | vk.SubgroupArithmetic}
	got := missingFeatures([]uint32{1, 9, 4448, 63, 65}, none, sg)
	want := []string{"shaderFloat16", "storageBuffer8BitAccess", "subgroup shuffle operations in compute shaders"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("missing = %v, want %v", got, want)
	}
	all := vk.Features{ShaderFloat16: true, StorageBuffer8BitAccess: true}
	if got := missingFeatures([]uint32{1, 9, 4448, 63}, all, sg); len(got) != 0 {
		t.Errorf("with the features enabled: missing %v", got)
	}
	if got := missingFeatures([]uint32{12345}, all, sg); len(got) != 1 || !strings.Contains(got[0], "12345") {
		t.Errorf("unknown capability: %v", got)
	}
}

func FuzzParseSPIRV(f *testing.F) {
	for _, n := range []string{"fill", "copy"} {
		code, _ := shaders.SPV(n)
		f.Add(code)
	}
	f.Add([]byte{0x03, 0x02, 0x23, 0x07, 0, 0, 1, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, code []byte) {
		si, err := parseSPIRV(code)
		if err == nil && si == nil {
			t.Fatal("nil result without error")
		}
	})
}

// TestKVF16NeedsNoFeature pins the rule engine.ChooseKVType relies on: every f16 KV module (<name>_f16,
// chosen by KVPool.variant) needs no device feature beyond what its f32 sibling needs. K and V are packed
// half pairs in 32-bit words, so neither 16-bit storage nor shaderFloat16 is required.
func TestKVF16NeedsNoFeature(t *testing.T) {
	sg := vk.Subgroup{Size: 32, InCompute: true, Operations: ^uint32(0)}
	need := func(name string) []string {
		return missingFeatures(moduleInterface(t, name).Capabilities, vk.Features{}, sg)
	}
	pairs := 0
	for _, n := range shaders.Names() {
		base, ok := strings.CutSuffix(n, "_f16")
		if !ok {
			continue
		}
		pairs++
		if f16, f32 := need(n), need(base+"_f32"); !reflect.DeepEqual(f16, f32) {
			t.Errorf("%s needs %v, %s_f32 needs %v", n, f16, base, f32)
		}
	}
	if pairs < 5 { // kv_write, attention, attention_rows, window_metric, copy_moves, fused_rope_kv
		t.Errorf("only %d f16 KV modules found", pairs)
	}
}

// moduleInterface parses the embedded SPIR-V module name.
func moduleInterface(t *testing.T, name string) *shaderInterface {
	t.Helper()
	code, err := shaders.SPV(name)
	if err != nil {
		t.Fatal(err)
	}
	si, err := parseSPIRV(code)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return si
}
