package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"kvc/model"
)

// inspectReport is what `kvc inspect` prints (and --json emits).
type inspectReport struct {
	Path        string                `json:"path"`
	Format      string                `json:"format"`
	Arch        string                `json:"arch"`
	Compressed  bool                  `json:"compressed"`
	Files       []string              `json:"files"`
	Config      model.Config          `json:"config"`
	Tensors     int                   `json:"tensors"`
	Params      int64                 `json:"params"`
	DTypes      map[string]dtypeStats `json:"dtypes"`
	WeightBytes int64                 `json:"weights_bytes"`
	Quant       string                `json:"quantization"`
	Tokenizer   *fileKind             `json:"tokenizer"`
	ChatTmpl    *fileKind             `json:"chat_template"`
	Notes       []string              `json:"notes,omitempty"`
}

type dtypeStats struct {
	Tensors    int   `json:"tensors"`
	Params     int64 `json:"params"`
	Bytes      int64 `json:"bytes"`       // element bytes
	ScaleBytes int64 `json:"scale_bytes"` // f32 scales (fp8, q8_0)
}

// fileKind names where a tokenizer or chat template was found and what kind it is.
type fileKind struct {
	Kind string `json:"kind"`
	File string `json:"file"`
}

func cmdInspect(args []string) error { return inspect(args, os.Stdout) }

func inspect(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("usage: kvc inspect MODEL [--json] (a file or folder, or a name under $KVC_MODELS or the cache)")}
	}
	path, err := resolveModel(fs.Arg(0), false, io.Discard)
	if err != nil {
		return err
	}
	ck, err := model.Open(path)
	if err != nil {
		return err
	}
	defer ck.Close()
	r := inspectCheckpoint(ck)
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printInspect(out, r)
	return nil
}

func inspectCheckpoint(ck *model.Checkpoint) inspectReport {
	r := inspectReport{Path: ck.Path, Format: ck.Format, Arch: ck.Arch, Compressed: ck.Compressed, Files: ck.Files,
		Config: ck.Config, Tensors: len(ck.Tensors), DTypes: map[string]dtypeStats{}, Quant: ck.Quant, Notes: ck.Notes}
	for _, t := range ck.Tensors {
		s := r.DTypes[t.DType.String()]
		s.Tensors++
		s.Params += t.Elems()
		s.Bytes += t.DataBytes()
		s.ScaleBytes += model.TensorStoredBytes(t) - t.DataBytes()
		r.DTypes[t.DType.String()] = s
		r.Params += t.Elems()
	}
	r.WeightBytes = ck.WeightBytes()
	r.Tokenizer, r.ChatTmpl = findTokenizerFiles(ck)
	return r
}

// findTokenizerFiles looks for a tokenizer and a chat template in the checkpoint (GGUF metadata) or
// beside it, by file name only: nothing is parsed.
func findTokenizerFiles(ck *model.Checkpoint) (tok, tmpl *fileKind) {
	if m := ck.Metadata(); m != nil {
		if v, ok := m["tokenizer.ggml.model"].(string); ok {
			tok = &fileKind{Kind: "gguf " + v, File: filepath.Base(ck.Path)}
		}
		if _, ok := m["tokenizer.chat_template"].(string); ok {
			tmpl = &fileKind{Kind: "gguf tokenizer.chat_template", File: filepath.Base(ck.Path)}
		}
	}
	dir := ck.Dir()
	exists := func(n string) bool { _, err := os.Stat(filepath.Join(dir, n)); return err == nil }
	if tok == nil {
		for _, c := range []struct{ name, kind string }{
			{"tokenizer.json", "hf tokenizer.json"},
			{"tokenizer.model", "sentencepiece"},
			{"tokenizer.bin", "llama2.c"},
			{fmt.Sprintf("tok%d.bin", ck.Config.Vocab), "llama2.c"},
		} {
			if exists(c.name) {
				tok = &fileKind{Kind: c.kind, File: c.name}
				break
			}
		}
	}
	if tmpl == nil {
		if exists("chat_template.jinja") {
			tmpl = &fileKind{Kind: "jinja", File: "chat_template.jinja"}
		} else if data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil && len(data) < 64<<20 {
			var tc map[string]json.RawMessage
			if json.Unmarshal(data, &tc) == nil && len(tc["chat_template"]) > 0 && string(tc["chat_template"]) != "null" {
				tmpl = &fileKind{Kind: "tokenizer_config.json chat_template", File: "tokenizer_config.json"}
			}
		}
	}
	return tok, tmpl
}

func printInspect(w io.Writer, r inspectReport) {
	c := r.Config
	fmt.Fprintf(w, "%s\n", r.Path)
	z := ""
	if r.Compressed {
		z = ", zstd"
	}
	fmt.Fprintf(w, "  format        %s (%s%s), %d file(s)\n", r.Format, r.Arch, z, len(r.Files))
	fmt.Fprintf(w, "  config        dim %d, layers %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d, context %d\n",
		c.Dim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab, c.Context)
	rs := ""
	if c.RopeScaling != nil {
		rs = fmt.Sprintf(", %s scaling x%g (low %g, high %g, original %d)", c.RopeScaling.Type, c.RopeScaling.Factor,
			c.RopeScaling.LowFreqFactor, c.RopeScaling.HighFreqFactor, c.RopeScaling.OriginalContext)
	}
	fmt.Fprintf(w, "  rope          %s, theta %g%s; norm eps %g; tied embeddings %v; bos %d, eos %v\n",
		c.RopeLayout, c.RopeTheta, rs, c.NormEps, c.Tied, c.BOS, c.EOS)
	fmt.Fprintf(w, "  tensors       %d, %.3g params, %s\n", r.Tensors, float64(r.Params), fmtBytes(r.WeightBytes))
	names := make([]string, 0, len(r.DTypes))
	for n := range r.DTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := r.DTypes[n]
		extra := ""
		if s.ScaleBytes > 0 {
			extra = fmt.Sprintf(" + %s scales", fmtBytes(s.ScaleBytes))
		}
		fmt.Fprintf(w, "    %-9s %5d tensors  %10.4g params  %s%s\n", n, s.Tensors, float64(s.Params), fmtBytes(s.Bytes), extra)
	}
	fmt.Fprintf(w, "  quantization  %s\n", r.Quant)
	if r.Tokenizer != nil {
		fmt.Fprintf(w, "  tokenizer     %s (%s)\n", r.Tokenizer.Kind, r.Tokenizer.File)
	} else {
		fmt.Fprintf(w, "  tokenizer     none found\n")
	}
	if r.ChatTmpl != nil {
		fmt.Fprintf(w, "  chat template %s (%s)\n", r.ChatTmpl.Kind, r.ChatTmpl.File)
	} else {
		fmt.Fprintf(w, "  chat template none\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note          %s\n", n)
	}
}
