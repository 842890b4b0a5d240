package model

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// memBlob is an in-memory blob for fuzzing the parsers without files.
type memBlob struct{ data []byte }

func (m *memBlob) Name() string { return "fuzz" }
func (m *memBlob) Size() int64  { return int64(len(m.data)) }
func (m *memBlob) Close() error { return nil }
func (m *memBlob) ReadAt(p []byte, off int64) (int, error) {
	b := &mmapBlob{path: "fuzz", data: m.data}
	return b.ReadAt(p, off)
}
func (m *memBlob) View(off, n int64) ([]byte, error) {
	b := &mmapBlob{path: "fuzz", data: m.data}
	return b.View(off, n)
}

// readAllTensors touches every tensor's bytes and scales: nothing may panic.
func readAllTensors(c *Checkpoint) {
	for _, t := range c.Tensors {
		t.Bytes()
		t.Scales()
	}
}

func FuzzSafetensorsHeader(f *testing.F) {
	var buf bytes.Buffer
	cj, _ := hfConfigFile(tinyConfig, HFOptions{Architecture: "LlamaForCausalLM", DType: F32}, ScaleNone, nil)
	var ts []WriteTensor
	for _, s := range CanonicalTensors(tinyConfig)[:3] {
		ts = append(ts, BytesTensor(hfName(s.Name), F32, s.Shape, make([]byte, shapeElems(s.Shape)*4)))
	}
	WriteSafetensors(&buf, ts, map[string]string{"config": string(cj)})
	f.Add(buf.Bytes())
	f.Add([]byte(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &memBlob{data}
		h, err := readSafetensorsHeader(b)
		if err != nil {
			return
		}
		// Every accepted entry lies inside the file with the length its shape implies.
		for _, e := range h.entries {
			if e.Begin < h.dataStart || e.End > int64(len(data)) || e.End-e.Begin != shapeElems(e.Shape)*int64(e.dt.ElemBytes()) {
				t.Fatalf("accepted bad entry %+v", e)
			}
		}
		c := &Checkpoint{Path: "fuzz"}
		if c.assembleHF("fuzz config", []byte(h.meta["config"]), []shard{{b, h}}) == nil && c.finish() == nil {
			readAllTensors(c)
		}
	})
}

func FuzzIndexJSON(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"../x"}}`))
	f.Add([]byte(`{"weight_map":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, files, err := parseIndexJSON("fuzz", data)
		if err != nil {
			return
		}
		for _, f := range files {
			if f != filepath.Base(f) || f == "" {
				t.Fatalf("accepted shard path %q", f)
			}
		}
		if len(m) == 0 {
			t.Fatal("accepted an empty weight_map")
		}
	})
}

func FuzzGGUF(f *testing.F) {
	var buf bytes.Buffer
	WriteGGUFModel(&buf, tinyConfig, GGUFModelOptions{DType: Q8_0 + 0, Extra: []GGUFKV{{"x", []any{[]string{"a"}}}}}, RandomSource(1))
	f.Add(buf.Bytes())
	buf.Reset()
	WriteGGUF(&buf, []GGUFKV{{"general.architecture", "llama"}, {"a", []int32{1, 2}}, {"b", 1.5}}, nil, 64)
	f.Add(buf.Bytes())
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Checkpoint{Path: "fuzz"}
		if c.readGGUF(&memBlob{data}) == nil && c.finish() == nil {
			readAllTensors(c)
		}
	})
}

func FuzzLlama2CHeader(f *testing.F) {
	var buf bytes.Buffer
	WriteLlama2C(&buf, tinyConfig, 0, 0, RandomSource(1))
	f.Add(buf.Bytes())
	buf.Reset()
	WriteLlama2C(&buf, tinyConfig, 2, 4, RandomSource(1))
	f.Add(buf.Bytes())
	hdr := make([]byte, 28)
	for i, v := range []int32{64, 172, 5, 8, 4, -512, 512} {
		binary.LittleEndian.PutUint32(hdr[4*i:], uint32(v))
	}
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Checkpoint{Path: "fuzz"}
		b := &memBlob{data}
		var err error
		if len(data) >= 4 && binary.LittleEndian.Uint32(data) == llama2cMagic {
			err = c.readLlama2CVersioned(b)
		} else {
			err = c.readLlama2CLegacy(b)
		}
		if err == nil && c.finish() == nil {
			readAllTensors(c)
		}
	})
}

// TestOpenNeverPanicsOnPrefixes opens every prefix of small valid files of each format.
func TestOpenNeverPanicsOnPrefixes(t *testing.T) {
	dir := t.TempDir()
	var files []string
	files = append(files, writeFile(t, filepath.Join(dir, "a.gguf"), func(f *os.File) error {
		return WriteGGUFModel(f, tinyConfig, GGUFModelOptions{DType: F16}, RandomSource(1))
	}))
	files = append(files, writeFile(t, filepath.Join(dir, "a.bin"), func(f *os.File) error {
		return WriteLlama2C(f, tinyConfig, 2, 4, RandomSource(1))
	}))
	for _, p := range files {
		raw, _ := os.ReadFile(p)
		for n := 0; n < len(raw); n += 1 + n/50 {
			q := filepath.Join(dir, "prefix"+filepath.Ext(p))
			os.WriteFile(q, raw[:n], 0o644)
			if c, err := Open(q); err == nil {
				c.Close()
				t.Fatalf("%s prefix %d/%d opened", p, n, len(raw))
			}
		}
	}
}
