package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Hugging Face checkpoints: a folder with config.json and either model.safetensors or
// model.safetensors.index.json plus shards; or a single .safetensors file with config.json beside it
// (or its header's __metadata__["config"] holding the same JSON). Any safetensors file may be .zst.

const maxJSONFile = 64 << 20

type shard struct {
	b blob
	h *stHeader
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJSONFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxJSONFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxJSONFile)
	}
	return data, nil
}

// existing returns path or path+".zst", whichever exists.
func existing(path string) (string, bool) {
	if _, err := os.Stat(path); err == nil {
		return path, true
	}
	if _, err := os.Stat(path + ".zst"); err == nil {
		return path + ".zst", true
	}
	return path, false
}

func openHFFolder(dir string) (*Checkpoint, error) {
	c := &Checkpoint{Path: dir, Format: "hf"}
	cfgPath := filepath.Join(dir, "config.json")
	cfgJSON, err := readSmallFile(cfgPath)
	if err != nil {
		return c, fmt.Errorf("model: %s: Hugging Face folder needs config.json: %w", dir, err)
	}
	var files []string
	var index map[string]string
	indexPath := filepath.Join(dir, "model.safetensors.index.json")
	if _, err := os.Stat(indexPath); err == nil {
		index, files, err = readIndex(indexPath)
		if err != nil {
			return c, err
		}
	} else if p, ok := existing(filepath.Join(dir, "model.safetensors")); ok {
		files = []string{filepath.Base(p)}
	} else {
		m, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		mz, _ := filepath.Glob(filepath.Join(dir, "*.safetensors.zst"))
		m = append(m, mz...)
		if len(m) != 1 {
			return c, fmt.Errorf("model: %s: no model.safetensors.index.json and %d .safetensors files (want model.safetensors or an index)", dir, len(m))
		}
		files = []string{filepath.Base(m[0])}
	}
	var shards []shard
	for _, f := range files {
		p, ok := existing(filepath.Join(dir, f))
		if !ok {
			what := ""
			for name, file := range index {
				if file == f && (what == "" || name < what) {
					what = name
				}
			}
			return c, fmt.Errorf("model: %s: shard %s (tensor %s) is missing", indexPath, f, what)
		}
		b, err := openBlob(p)
		if err != nil {
			return c, fmt.Errorf("model: %w", err)
		}
		c.blobs = append(c.blobs, b)
		c.Files = append(c.Files, p)
		c.Compressed = c.Compressed || isZstd(p)
		h, err := readSafetensorsHeader(b)
		if err != nil {
			return c, err
		}
		shards = append(shards, shard{b, h})
	}
	if index != nil {
		in := map[string]string{}
		for i, s := range shards {
			for _, e := range s.h.entries {
				in[e.Name] = files[i]
			}
		}
		names := make([]string, 0, len(index))
		for n := range index {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if in[n] != index[n] {
				return c, fmt.Errorf("model: %s: weight_map puts tensor %s in %s, but that shard does not hold it", indexPath, n, index[n])
			}
		}
	}
	return c, c.assembleHF(cfgPath, cfgJSON, shards)
}

// readIndex reads weight_map and returns it with the shard files in sorted order.
func readIndex(path string) (map[string]string, []string, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	m, files, err := parseIndexJSON(path, data)
	return m, files, err
}

func parseIndexJSON(path string, data []byte) (map[string]string, []string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, nil, fmt.Errorf("model: %s: %v", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("model: %s: weight_map is missing or empty", path)
	}
	seen := map[string]bool{}
	var files []string
	for name, f := range idx.WeightMap {
		if f == "" || f != filepath.Base(f) || f == "." || f == ".." {
			return nil, nil, fmt.Errorf("model: %s: weight_map entry %s: shard %q is not a file name in the folder", path, name, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	sort.Strings(files)
	return idx.WeightMap, files, nil
}

// readSafetensorsFile opens a lone .safetensors file: its config comes from config.json beside it or
// from the header's __metadata__["config"].
func (c *Checkpoint) readSafetensorsFile(b blob) error {
	c.Format = "safetensors"
	h, err := readSafetensorsHeader(b)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(filepath.Dir(c.Path), "config.json")
	cfgJSON, err := readSmallFile(cfgPath)
	if err != nil {
		if js, ok := h.meta["config"]; ok {
			cfgPath, cfgJSON = c.Path+" __metadata__.config", []byte(js)
		} else {
			return fmt.Errorf("%s: a lone safetensors file needs config.json beside it or __metadata__.config in its header", c.Path)
		}
	}
	return c.assembleHF(cfgPath, cfgJSON, []shard{{b, h}})
}

// assembleHF maps HF tensors onto canonical names and attaches FP8 scales.
func (c *Checkpoint) assembleHF(cfgPath string, cfgJSON []byte, shards []shard) error {
	cfg, arch, q, notes, err := parseHFConfig(cfgPath, cfgJSON)
	if err != nil {
		return err
	}
	c.Config, c.Arch, c.Notes = cfg, arch, append(c.Notes, notes...)
	type loc struct {
		s shard
		e stEntry
	}
	all := map[string]loc{}
	for _, s := range shards {
		for _, e := range s.h.entries {
			if old, ok := all[e.Name]; ok {
				return fmt.Errorf("%s: tensor %s is also in %s", s.b.Name(), e.Name, old.s.b.Name())
			}
			all[e.Name] = loc{s, e}
		}
	}
	c.Quant = "none"
	var inputScales []func() error
	unused := 0
	anyFP8 := false
	// A compressed shard gets a second stream for its scale tensors, so that reading tensors in file
	// order (bytes, then scales) moves both streams forward only. Input scales of compressed shards are
	// not read (that would cost a pass over the shard at Open); they are reported as 0.
	scaleBlob := map[blob]blob{}
	compressedInput := false
	for _, s := range shards {
		scaleBlob[s.b] = s.b
		if _, ok := s.b.(*zstdBlob); ok {
			z, err := openZstd(s.b.Name())
			if err != nil {
				return err
			}
			c.blobs = append(c.blobs, z)
			scaleBlob[s.b] = z
		}
	}
	for _, s := range shards {
		for _, e := range s.h.entries {
			module, ok := strings.CutSuffix(e.Name, ".weight")
			canon := ""
			if ok {
				canon = canonicalFromHF(module)
			}
			if m, ok := strings.CutSuffix(e.Name, ".bias"); ok && canonicalFromHF(m) != "" {
				return fmt.Errorf("%s: tensor %s: biases are not supported (llama projections have none)", s.b.Name(), e.Name)
			}
			if canon == "" {
				if !isScaleName(e.Name) {
					unused++
					if unused <= 5 {
						c.Notes = append(c.Notes, "unused tensor "+e.Name)
					}
				}
				continue
			}
			t := viewTensor(s.b, canon, e.Name, e.dt, e.Shape, e.Begin)
			if e.dt == I32 {
				return fmt.Errorf("%s: tensor %s: dtype I32, want a float type", s.b.Name(), e.Name)
			}
			if e.dt == F8E4M3 {
				anyFP8 = true
				if q == nil {
					return fmt.Errorf("%s: tensor %s is F8_E4M3 but %s has no quantization_config", s.b.Name(), e.Name, cfgPath)
				}
				if q.ignored(module) {
					return fmt.Errorf("%s: tensor %s is F8_E4M3 but quantization_config lists %s as not quantized", s.b.Name(), e.Name, module)
				}
				if len(e.Shape) != 2 {
					return fmt.Errorf("%s: tensor %s: F8_E4M3 shape %v, want [out, in]", s.b.Name(), e.Name, e.Shape)
				}
				sname := module + "." + q.ScaleName
				sl, ok := all[sname]
				if !ok {
					return fmt.Errorf("%s: tensor %s is F8_E4M3 but its scale %s is missing", s.b.Name(), e.Name, sname)
				}
				n, err := scaleCount(q.Kind, e.Shape, sl.e.Shape)
				if err != nil {
					return fmt.Errorf("%s: scale %s: %v", sl.s.b.Name(), sname, err)
				}
				t.ScaleKind = q.Kind
				t.scales = scaleReader(sl.s.b, scaleBlob[sl.s.b], sl.e, n)
				if il, ok := all[module+".input_scale"]; ok && isZstd(il.s.b.Name()) {
					compressedInput = true
				} else if ok {
					t := t
					inputScales = append(inputScales, func() error {
						v, err := readScaleValues(il.s.b, il.e, 1)
						if err != nil {
							return err
						}
						t.InputScale = v[0]
						return nil
					})
				}
			} else if q != nil {
				if _, ok := all[module+"."+q.ScaleName]; ok && e.dt != F8E4M3 {
					return fmt.Errorf("%s: tensor %s has a scale %s but is %s, want F8_E4M3", s.b.Name(), e.Name, module+"."+q.ScaleName, e.DType)
				}
			}
			if err := c.add(t); err != nil {
				return err
			}
		}
	}
	if compressedInput {
		c.Notes = append(c.Notes, "input_scale tensors of compressed shards not read (reported as 0; the engine does not use them)")
	}
	if unused > 5 {
		c.Notes = append(c.Notes, fmt.Sprintf("... %d unused tensors in all", unused))
	}
	for _, f := range inputScales {
		if err := f(); err != nil {
			return err
		}
	}
	if q != nil && anyFP8 {
		c.Quant = q.Desc
	} else if q != nil {
		c.Quant = q.Desc + " (no F8_E4M3 tensors found)"
	}
	return nil
}

func isScaleName(n string) bool {
	for _, s := range []string{".weight_scale", ".weight_scale_inv", ".input_scale", ".k_scale", ".v_scale"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// scaleCount checks a scale tensor's shape against the weight's and the scheme, returning the value count.
func scaleCount(kind ScaleKind, w, s []int) (int, error) {
	n := 1
	for _, d := range s {
		n *= d
	}
	out, in := w[0], w[1]
	switch kind {
	case ScaleTensor:
		if n == 1 && len(s) <= 2 {
			return 1, nil
		}
		return 0, fmt.Errorf("shape %v, want [] or [1] (per-tensor)", s)
	case ScaleChannel:
		if (len(s) == 1 && s[0] == out) || (len(s) == 2 && s[0] == out && s[1] == 1) {
			return out, nil
		}
		return 0, fmt.Errorf("shape %v, want [%d] or [%d, 1] (per-channel)", s, out, out)
	case ScaleBlock:
		r, k := (out+127)/128, (in+127)/128
		if len(s) == 2 && s[0] == r && s[1] == k {
			return r * k, nil
		}
		return 0, fmt.Errorf("shape %v, want [%d, %d] (128x128 blocks of [%d, %d])", s, r, k, out, in)
	}
	return 0, fmt.Errorf("unknown scale kind %v", kind)
}

// scaleReader reads a scale tensor from its shard; a compressed shard's main stream is used when the
// scale is near its position (recent window or just ahead), the shard's scale stream otherwise.
func scaleReader(main, side blob, e stEntry, n int) func() ([]float32, error) {
	return func() ([]float32, error) {
		b := main
		if z, ok := main.(*zstdBlob); ok && !z.near(e.Begin) {
			b = side
		}
		v, err := readScaleValues(b, e, n)
		if err != nil {
			return nil, err
		}
		if err := checkScales(b.Name(), e.Name, v, true); err != nil {
			return nil, err
		}
		return v, nil
	}
}

// readScaleValues decodes an F32/BF16/F16 scale tensor. It uses pread, not the mapping: a handful of
// bytes should not fault in (and read ahead) a page range.
func readScaleValues(b blob, e stEntry, n int) ([]float32, error) {
	raw := make([]byte, e.End-e.Begin)
	if k, err := b.ReadAt(raw, e.Begin); k < len(raw) {
		return nil, fmt.Errorf("%s: scale %s: read %d of %d bytes: %v", b.Name(), e.Name, k, len(raw), err)
	}
	if int64(len(raw)) < int64(n)*int64(e.dt.ElemBytes()) {
		return nil, fmt.Errorf("%s: scale %s: %d bytes for %d values", b.Name(), e.Name, len(raw), n)
	}
	out := make([]float32, n)
	for i := range out {
		switch e.dt {
		case F32:
			out[i] = f32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		case BF16:
			out[i] = bf16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		case F16:
			out[i] = halfToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		default:
			return nil, fmt.Errorf("%s: scale %s: dtype %s, want F32, BF16 or F16", b.Name(), e.Name, e.DType)
		}
	}
	return out, nil
}
