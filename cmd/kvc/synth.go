package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"kvc/model"
)

// Llama-shaped configurations for synthetic models (random weights, real layouts).
var synthPresets = map[string]model.Config{
	// DESIGN.md's 125M comparison model.
	"125m": {Arch: "llama", Dim: 768, Layers: 12, Heads: 12, KVHeads: 4, HeadDim: 64, FFN: 2048, Vocab: 32000, Context: 2048},
	// a ~300M model with Llama-3-like GQA.
	"300m": {Arch: "llama", Dim: 1024, Layers: 16, Heads: 16, KVHeads: 4, HeadDim: 64, FFN: 2816, Vocab: 32000, Context: 4096},
	// TinyLlama-1.1B's shape.
	"1b": {Arch: "llama", Dim: 2048, Layers: 22, Heads: 32, KVHeads: 4, HeadDim: 64, FFN: 5632, Vocab: 32000, Context: 2048},
	// a few MB: for tests and quick checks of every command.
	"tiny": {Arch: "llama", Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 160, Vocab: 512, Context: 512},
	// long context, little KV memory per token budget: for throughput runs where the KV pool limits the batch.
	"tp": {Arch: "llama", Dim: 256, Layers: 8, Heads: 8, KVHeads: 2, HeadDim: 32, FFN: 704, Vocab: 32000, Context: 8192},
}

func presetNames() string {
	var n []string
	for k := range synthPresets {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

func cmdSynth(args []string) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	preset := fs.String("preset", "125m", "model shape: "+presetNames())
	dtype := fs.String("dtype", "f16", "weight dtype: f32, f16, bf16, q8_0 (gguf), fp8 (hf)")
	format := fs.String("format", "gguf", "file format: gguf, hf (safetensors folder), llama2c")
	out := fs.String("out", "", "output file (gguf, llama2c) or folder (hf)")
	tok := fs.String("tokenizer", "", "llama2.c tokenizer.bin to embed (gguf) or copy beside the model (e.g. ../shared/models/llama2-tokenizer.bin)")
	seed := fs.Uint64("seed", 1, "random seed")
	layers := fs.Int("layers", 0, "override the preset's layer count")
	ctx := fs.Int("ctx", 0, "override the preset's context length")
	kvHeads := fs.Int("kv-heads", 0, "override the preset's KV head count (a divisor of its query heads)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, ok := synthPresets[*preset]
	if !ok {
		return fmt.Errorf("unknown preset %q (have %s)", *preset, presetNames())
	}
	if *out == "" {
		return fmt.Errorf("kvc synth: --out is required")
	}
	if *layers > 0 {
		cfg.Layers = *layers
	}
	if *ctx > 0 {
		cfg.Context = *ctx
	}
	if *kvHeads > 0 {
		if cfg.Heads%*kvHeads != 0 {
			return fmt.Errorf("kvc synth: --kv-heads %d does not divide the %d query heads of preset %s", *kvHeads, cfg.Heads, *preset)
		}
		cfg.KVHeads = *kvHeads
	}
	cfg.NormEps, cfg.RopeTheta, cfg.RopeLayout = 1e-5, 10000, model.RopeInterleaved
	cfg.BOS, cfg.EOS = 1, []int{2}
	dt, err := parseDType(*dtype)
	if err != nil {
		return err
	}
	src := model.RandomSource(*seed)
	switch *format {
	case "gguf":
		// Without --tokenizer, a byte-level vocabulary: every text command runs on the file, here and in llama.cpp.
		extra, err := model.SyntheticVocabKVs(cfg.Vocab)
		if *tok != "" {
			extra, err = ggufTokenizerKVs(*tok, cfg.Vocab)
		}
		if err != nil {
			return err
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		if err := model.WriteGGUFModel(w, cfg, model.GGUFModelOptions{DType: dt, Name: "kvc-synth-" + *preset, Extra: extra}, src); err != nil {
			f.Close()
			return err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case "hf":
		cfg.RopeLayout = model.RopeInterleaved // the source's layout; WriteHF permutes Q/K to rotate-half
		if err := model.WriteHF(*out, cfg, model.HFOptions{DType: dt}, src); err != nil {
			return err
		}
		if *tok == "" {
			// A byte-level vocabulary beside the weights, as the gguf and llama2c formats get.
			tj, cj, err := model.SyntheticHFTokenizer(cfg.Vocab)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, "tokenizer.json"), tj, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, "tokenizer_config.json"), cj, 0o644); err != nil {
				return err
			}
		}
	case "llama2c":
		if dt != model.F32 {
			return fmt.Errorf("llama2c format stores f32 weights only (got --dtype %s)", dt)
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(f, 1<<20)
		if err := model.WriteLlama2C(w, cfg, 0, 0, src); err != nil {
			f.Close()
			return err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		tb := filepath.Join(filepath.Dir(*out), "tokenizer.bin")
		if *tok != "" {
			err = copyFile(*tok, tb)
		} else {
			err = writeSynthTokenizerBin(tb, cfg.Vocab)
		}
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("--format %q: want gguf, hf or llama2c", *format)
	}
	params := int64(0)
	for _, t := range model.CanonicalTensors(cfg) {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		params += n
	}
	fmt.Fprintf(os.Stderr, "kvc: wrote %s: %s preset, %.1fM parameters, %s weights\n", *out, *preset, float64(params)/1e6, dt)
	return nil
}

func parseDType(s string) (model.DType, error) {
	switch strings.ToLower(s) {
	case "f32":
		return model.F32, nil
	case "f16":
		return model.F16, nil
	case "bf16":
		return model.BF16, nil
	case "q8_0", "q8":
		return model.Q8_0, nil
	case "fp8", "f8_e4m3", "fp8-e4m3":
		return model.F8E4M3, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want f32, f16, bf16, q8_0, fp8)", s)
}

// ggufTokenizerKVs turns a llama2.c tokenizer.bin into GGUF "llama" tokenizer metadata, so the synthetic
// GGUF is self-contained.
func ggufTokenizerKVs(path string, vocab int) ([]model.GGUFKV, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%s: too short for a tokenizer.bin", path)
	}
	off := 4
	tokens := make([]string, 0, vocab)
	scores := make([]float32, 0, vocab)
	types := make([]int32, 0, vocab)
	for i := 0; i < vocab; i++ {
		if off+8 > len(b) {
			return nil, fmt.Errorf("%s: token %d: file ends (it holds fewer than the model's %d tokens)", path, i, vocab)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		n := int(int32(binary.LittleEndian.Uint32(b[off+4:])))
		off += 8
		if n < 0 || off+n > len(b) {
			return nil, fmt.Errorf("%s: token %d: length %d past the end of the file", path, i, n)
		}
		s := string(b[off : off+n])
		off += n
		typ := int32(1) // normal
		switch {
		case i == 0:
			typ = 2 // unknown
			s = "<unk>"
		case i == 1:
			typ, s = 3, "<s>"
		case i == 2:
			typ, s = 3, "</s>"
		case i >= 3 && i < 259 && s == string(rune(i-3)):
			// Older exports (the 32k llama2 tokenizer.bin) store byte b at id b+3 as the UTF-8 of rune b;
			// GGUF wants <0xXX>, and the bare text would repeat real tokens ("!" is also a piece).
			typ, s = model.GGUFTokenByte, fmt.Sprintf("<0x%02X>", i-3)
		case strings.HasPrefix(s, "<0x") && len(s) == 6:
			typ = model.GGUFTokenByte
		default:
			s = strings.ReplaceAll(s, " ", "\u2581")
		}
		tokens = append(tokens, s)
		scores = append(scores, score)
		types = append(types, typ)
	}
	return []model.GGUFKV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(0)},
	}, nil
}

// writeSynthTokenizerBin writes the synthetic vocabulary (model.SyntheticVocab) as a llama2.c tokenizer.bin:
// int32 max_token_length, then per token f32 score, int32 length, bytes; spaces as " " and BOS/EOS as
// export.py stores them.
func writeSynthTokenizerBin(path string, vocab int) error {
	tokens, scores, _, err := model.SyntheticVocab(vocab)
	if err != nil {
		return err
	}
	var body []byte
	maxLen := 0
	for i, t := range tokens {
		switch i {
		case 1:
			t = "\n<s>\n"
		case 2:
			t = "\n</s>\n"
		default:
			t = strings.ReplaceAll(t, "\u2581", " ")
		}
		maxLen = max(maxLen, len(t))
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(scores[i]))
		body = binary.LittleEndian.AppendUint32(body, uint32(len(t)))
		body = append(body, t...)
	}
	return os.WriteFile(path, append(binary.LittleEndian.AppendUint32(nil, uint32(maxLen)), body...), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
