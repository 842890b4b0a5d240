package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func storiesBin(t *testing.T) string {
	for _, p := range []string{"../../../shared/models/stories260K/stories260K.bin", "/work/shared/models/stories260K/stories260K.bin"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("stories260K.bin not found")
	return ""
}

func TestInspectStories(t *testing.T) {
	var out bytes.Buffer
	if err := inspect([]string{"--json", storiesBin(t)}, &out); err != nil {
		t.Fatal(err)
	}
	var r inspectReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	// 260K params of f32: token_embd 512x64, 5 layers of 4 attention and 3 MLP matrices, norms.
	params := int64(512*64 + 5*(64*64*2+32*64*2+3*64*172+2*64) + 64)
	if r.Format != "llama2c" || r.Params != params || r.DTypes["f32"].Bytes != 4*params || r.WeightBytes != 4*params {
		t.Fatalf("report %+v, want %d params", r, params)
	}
	if r.Tokenizer == nil || r.Tokenizer.File != "tok512.bin" || r.ChatTmpl != nil {
		t.Fatalf("tokenizer %+v template %+v", r.Tokenizer, r.ChatTmpl)
	}
	out.Reset()
	if err := inspect([]string{storiesBin(t)}, &out); err != nil || !strings.Contains(out.String(), "layers 5") {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := inspect([]string{"/nonexistent.gguf"}, &out); err == nil {
		t.Fatal("inspect of a missing file succeeded")
	}
}

func TestPlanSmall(t *testing.T) {
	var out bytes.Buffer
	if err := plan([]string{"--model", storiesBin(t), "--mem", "512MiB", "--ctx", "512", "--kv-type", "f32", "--kv-rate", "4", "--kv-block", "16", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var r planReport
	json.Unmarshal(out.Bytes(), &r)
	if r.KVBytesPerToken != 2*5*4*8*4 || r.BlockBytes != 16*(2*8*4+8) {
		t.Fatalf("kv per token %d block %d", r.KVBytesPerToken, r.BlockBytes)
	}
	mem := int64(512 << 20)
	pool := mem - r.WeightsBytes - mem/20
	if r.KVPoolBytes != pool || r.MaxSequences != pool/r.BlockBytes/(5*4*32) || r.MaxSequencesCompressed != pool/r.BlockBytes/(5*4*8) || !r.Fits {
		t.Fatalf("plan %+v", r)
	}
	for _, bad := range [][]string{{"--model", storiesBin(t), "--mem", "lots"}, {"--model", storiesBin(t), "--kv-type", "q4"}, {}, {"--model", storiesBin(t), "--kv-rate", "0.5"}} {
		if err := plan(bad, &out); err == nil {
			t.Fatalf("plan %v succeeded", bad)
		}
	}
}
