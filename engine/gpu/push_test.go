package gpu

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kvc/shaders"
)

// pushBlockOf names the Go struct of each shader source's push-constant block (weights.glsl's depends on
// -DQKV).
func pushBlockOf(src, defs string) reflect.Type {
	switch src {
	case "matmul.comp", "matmul_rows.comp", "matmul_tiled.comp":
		if strings.Contains(defs, "-DQKV") {
			return reflect.TypeFor[matmulQKVPush]()
		}
		return reflect.TypeFor[matmulPush]()
	}
	return map[string]reflect.Type{
		"add.comp": reflect.TypeFor[countPush](), "swiglu.comp": reflect.TypeFor[countPush](), "copy.comp": reflect.TypeFor[countPush](),
		"fill.comp": reflect.TypeFor[fillPush](), "softmax.comp": reflect.TypeFor[rowsPush](), "argmax.comp": reflect.TypeFor[rowsPush](),
		"gather.comp": reflect.TypeFor[gatherPush](), "scatter.comp": reflect.TypeFor[scatterPush](), "topk.comp": reflect.TypeFor[topkPush](), "embed.comp": reflect.TypeFor[embedPush](),
		"rmsnorm.comp": reflect.TypeFor[rmsnormPush](), "rope.comp": reflect.TypeFor[ropePush](),
		"kv_write.comp": reflect.TypeFor[kvWritePush](), "copy_moves.comp": reflect.TypeFor[kvCountPush](),
		"copy_moves_read_slots.comp": reflect.TypeFor[readSlotsPush](), "fused_rope_kv.comp": reflect.TypeFor[ropeKVPush](),
		"attention.comp": reflect.TypeFor[attentionPush](), "attention_rows.comp": reflect.TypeFor[attentionPush](),
		"attention_reduce.comp": reflect.TypeFor[attentionPush](), "attention_tiled.comp": reflect.TypeFor[attentionPush](), "window_metric.comp": reflect.TypeFor[windowPush](),
	}[src]
}

// goPushMembers flattens a push struct (embedded structs inline) into offsets and SPIR-V type names.
func goPushMembers(t *testing.T, typ reflect.Type, base int) []pushMember {
	var out []pushMember
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		off := base + int(f.Offset)
		switch f.Type.Kind() {
		case reflect.Struct:
			out = append(out, goPushMembers(t, f.Type, off)...)
		case reflect.Uint32, reflect.Int32, reflect.Float32:
			out = append(out, pushMember{Offset: off, Kind: f.Type.Kind().String(), Bytes: 4})
		default:
			t.Fatalf("%s.%s: %v is not a 32-bit push-constant type", typ.Name(), f.Name, f.Type)
		}
	}
	return out
}

// TestPushBlocks: every embedded SPIR-V module's push-constant block has, member by member, the offsets
// and types of the Go struct its op fills, and the struct's size.
func TestPushBlocks(t *testing.T) {
	files, err := filepath.Glob("../../shaders/*.variants")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shaders/*.variants: %v", err)
	}
	checked := 0
	for _, fn := range files {
		data, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || strings.HasPrefix(f[0], "#") {
				continue
			}
			name, src, defs := f[0], f[1], strings.Join(f[2:], " ")
			typ := pushBlockOf(src, defs)
			if typ == nil {
				t.Errorf("%s (%s): no Go push-constant struct for this source", name, src)
				continue
			}
			si := moduleInterface(t, name)
			want := goPushMembers(t, typ, 0)
			if !reflect.DeepEqual(si.Push, want) || si.PushBytes != int(typ.Size()) {
				t.Errorf("%s: push block %v (%d bytes), Go %s has %v (%d bytes)", name, si.Push, si.PushBytes, typ.Name(), want, typ.Size())
			}
			checked++
		}
	}
	if checked != len(shaders.Names()) {
		t.Errorf("checked %d modules of the %d embedded", checked, len(shaders.Names()))
	}
}

// TestParseSPIRVPushBlock: the reflection itself on a known block (rmsnorm.comp: uint n, dim, dt; float
// eps; uint colDiv).
func TestParseSPIRVPushBlock(t *testing.T) {
	si := moduleInterface(t, "rmsnorm")
	want := []pushMember{{0, "uint32", 4}, {4, "uint32", 4}, {8, "uint32", 4}, {12, "float32", 4}, {16, "uint32", 4}}
	if !reflect.DeepEqual(si.Push, want) || si.PushBytes != 20 {
		t.Errorf("rmsnorm push block %v (%d bytes), want %v (20)", si.Push, si.PushBytes, want)
	}
}
