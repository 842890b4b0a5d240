package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"kvc/model/tokenizer"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvc/model"
)

// llamaCppVocabRules checks a GGUF's tokenizer metadata by llama.cpp's loader rules (llama-vocab.cpp, read
// independently of kvc's reader): tokenizer.ggml.model is required ("none"/"no_vocab": no vocabulary);
// otherwise tokenizer.ggml.tokens has one distinct string per token (its id->token and token->id tables
// must be the same size), as many tokens as token_embd has rows, scores and token types per token, a
// "llama" vocabulary resolves the newline byte (<0x0A>, else "\n"), and the special ids are tokens.
func llamaCppVocabRules(path string) error {
	c, err := model.Open(path)
	if err != nil {
		return err
	}
	defer c.Close()
	meta := c.Metadata()
	kind, ok := meta["tokenizer.ggml.model"].(string)
	if !ok {
		return fmt.Errorf("key not found in model: tokenizer.ggml.model")
	}
	if kind == "none" || kind == "no_vocab" {
		return nil
	}
	tokens, ok := meta["tokenizer.ggml.tokens"].([]string)
	if !ok {
		return fmt.Errorf("tokenizer.ggml.tokens missing")
	}
	ids := map[string]int{}
	for i, s := range tokens {
		ids[s] = i
	}
	if len(ids) != len(tokens) {
		return fmt.Errorf("id_to_token.size() %d != token_to_id.size() %d", len(tokens), len(ids))
	}
	emb, err := c.Tensor("token_embd")
	if err != nil || emb.Shape[0] != len(tokens) {
		return fmt.Errorf("token_embd %v for %d tokens (%v)", emb, len(tokens), err)
	}
	if s, ok := meta["tokenizer.ggml.scores"].([]float32); ok && len(s) != len(tokens) {
		return fmt.Errorf("%d scores", len(s))
	}
	if ty, ok := meta["tokenizer.ggml.token_type"].([]int32); ok && len(ty) != len(tokens) {
		return fmt.Errorf("%d token types", len(ty))
	}
	if kind == "llama" {
		_, hex := ids["<0x0A>"]
		_, raw := ids["\n"]
		if !hex && !raw {
			return fmt.Errorf("byte_to_token('\\n'): no <0x0A> or \"\\n\" token")
		}
	}
	for _, key := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"} {
		if v, ok := meta[key].(uint32); ok && int(v) >= len(tokens) {
			return fmt.Errorf("%s %d >= %d tokens", key, v, len(tokens))
		}
	}
	return nil
}

// GGUF files kvc writes load by llama.cpp's rules: a synthetic model's byte-level vocabulary, the 32k
// llama2 tokenizer.bin embedded (its byte tokens were raw bytes that repeated real tokens), and a model
// written with no tokenizer at all ("none"). A vocabulary with a repeated string is refused by the writer.
func TestGGUFWritesLoadByLlamaCppRules(t *testing.T) {
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny.gguf")
	if err := runMain([]string{"synth", "--preset", "tiny", "--out", tiny}, os.Stdout, os.Stderr); err != 0 {
		t.Fatalf("kvc synth: status %d", err)
	}
	// 32000 tokens on a narrow model (1 MiB of embedding): the llama2 tokenizer.bin embedded.
	cfg := model.Config{Arch: "llama", Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, FFN: 16, Vocab: 32000, Context: 64,
		NormEps: 1e-5, RopeTheta: 10000, BOS: 1, EOS: []int{2}}
	kvs, err := ggufTokenizerKVs(filepath.Join(sharedModels(t), "llama2-tokenizer.bin"), cfg.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, cfg model.Config, extra []model.GGUFKV) (string, error) {
		p := filepath.Join(dir, name)
		var b bytes.Buffer
		if err := model.WriteGGUFModel(&b, cfg, model.GGUFModelOptions{DType: model.F32, Extra: extra}, model.RandomSource(1)); err != nil {
			return p, err
		}
		return p, os.WriteFile(p, b.Bytes(), 0o644)
	}
	llama2, err := write("llama2.gguf", cfg, kvs)
	if err != nil {
		t.Fatal(err)
	}
	small := cfg
	small.Vocab = 300
	bare, err := write("bare.gguf", small, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tiny, llama2, bare} {
		if err := llamaCppVocabRules(p); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
	// The llama2 byte tokens are <0xXX> now, and kvc still encodes and decodes through them.
	tok := kvs[1].Value.([]string)
	if tok[3] != "<0x00>" || tok[13] != "<0x0A>" || tok[36] != "<0x21>" {
		t.Errorf("byte tokens: %q %q %q", tok[3], tok[13], tok[36])
	}
	for _, p := range []string{tiny, llama2} {
		c, err := model.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := findTokenizer(c, "")
		c.Close()
		if err != nil {
			t.Fatalf("%s: kvc's tokenizer: %v", filepath.Base(p), err)
		}
		const text = "Hello, world!\nÄ ünïcode 😀"
		if got := tk.Decode(tk.Encode(text, false)); strings.TrimPrefix(got, " ") != text { // SentencePiece's dummy prefix
			t.Errorf("%s: round trip %q -> %q", filepath.Base(p), text, got)
		}
	}
	// A repeated token string is refused, naming both ids.
	synthKVs, _ := model.SyntheticVocabKVs(small.Vocab)
	toks := append([]string(nil), synthKVs[1].Value.([]string)...)
	toks[290] = toks[280]
	synthKVs[1].Value = toks
	if _, err := write("dup.gguf", small, synthKVs); err == nil || !strings.Contains(err.Error(), "tokens 280 and 290") {
		t.Errorf("duplicate token strings: %v", err)
	}
}

// Every text command runs on a kvc synth file written without a tokenizer (gguf; llama2c with run).
func TestCommandsOnSynthModel(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "tiny.gguf")
	if st := runMain([]string{"synth", "--preset", "tiny", "--out", m}, os.Stdout, os.Stderr); st != 0 {
		t.Fatalf("kvc synth: status %d", st)
	}
	common := []string{"--model", m, "--device", "cpu", "-n", "6", "--temp", "0", "--quiet"}
	var errOut bytes.Buffer
	var st int
	out := captureStdout(t, func() { st = runMain(append([]string{"run", "--prompt", "Hello"}, common...), os.Stdout, &errOut) })
	if st != 0 || out == "" {
		t.Errorf("kvc run: status %d, stdout %q, stderr %s", st, out, errOut.String())
	}
	in, outFile := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
	os.WriteFile(in, []byte(`{"id": 1, "prompt": "Hello"}`+"\n"+`{"id": 2, "messages": [{"role": "user", "content": "Hi"}]}`+"\n"), 0o644)
	errOut.Reset()
	if st := runMain(append([]string{"generate", "--input", in, "--output", outFile}, common...), os.Stdout, &errOut); st != 0 {
		t.Errorf("kvc generate: status %d, stderr %s", st, errOut.String())
	}
	b, _ := os.ReadFile(outFile)
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec genOutput
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Error != "" || rec.Tokens != 6 {
			t.Errorf("generate line %d: %s (%v)", i+1, line, err)
		}
	}
	// The llama2.c format gets a tokenizer.bin of the same vocabulary beside it.
	l2c := filepath.Join(dir, "l2c", "tiny.bin")
	os.Mkdir(filepath.Dir(l2c), 0o755)
	if st := runMain([]string{"synth", "--preset", "tiny", "--dtype", "f32", "--format", "llama2c", "--out", l2c}, os.Stdout, os.Stderr); st != 0 {
		t.Fatalf("kvc synth --format llama2c: status %d", st)
	}
	errOut.Reset()
	out = captureStdout(t, func() {
		st = runMain([]string{"run", "--model", l2c, "--device", "cpu", "-n", "6", "--temp", "0", "--prompt", "Hello"}, os.Stdout, &errOut)
	})
	if st != 0 || out == "" {
		t.Errorf("kvc run on the llama2c synth: status %d, stdout %q, stderr %s", st, out, errOut.String())
	}
	r, w, _ := os.Pipe()
	w.WriteString("Hello\n/exit\n")
	w.Close()
	stdin := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = stdin }()
	errOut.Reset()
	out = captureStdout(t, func() { st = runMain(append([]string{"chat"}, common...), os.Stdout, &errOut) })
	if st != 0 || out == "" {
		t.Errorf("kvc chat: status %d, stdout %q, stderr %s", st, out, errOut.String())
	}
}

// `kvc synth --format hf` writes a tokenizer.json of the same byte-level vocabulary as the GGUF: it loads
// as a Hugging Face tokenizer, round-trips any text (bytes outside the words fall back to <0xXX>), merges
// spaces and letters into the vocabulary's words, and `kvc run` works on the folder.
func TestSynthHFTokenizer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny-hf")
	if st := runMain([]string{"synth", "--preset", "tiny", "--format", "hf", "--out", dir}, os.Stdout, os.Stderr); st != 0 {
		t.Fatalf("kvc synth --format hf: status %d", st)
	}
	tk, err := tokenizer.LoadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"ab cd ab", "Hello, world!\nnaïve café 123", "  two  spaces"} {
		ids := tk.Encode(text, true)
		if got := tk.Decode(ids); got != text {
			t.Errorf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
	}
	// "ab cd ab": BOS, then "▁ab", "▁cd", "▁ab" once the merges apply.
	if ids := tk.Encode("ab cd ab", true); len(ids) != 4 || ids[1] != ids[3] {
		t.Errorf("Encode(\"ab cd ab\") = %v: want BOS and three word tokens, the first and last equal", ids)
	}
	var errOut bytes.Buffer
	var st int
	out := captureStdout(t, func() {
		st = runMain([]string{"run", "--model", dir, "--device", "cpu", "-n", "6", "--temp", "0", "--prompt", "Hello"}, os.Stdout, &errOut)
	})
	if st != 0 || out == "" {
		t.Errorf("kvc run on the hf synth: status %d, stdout %q, stderr %s", st, out, errOut.String())
	}
}
