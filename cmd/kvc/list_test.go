package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kvc list shows models in $KVC_MODELS and the cache (with ORG/REPO folders); kvc rm removes only cache
// entries; the completion scripts are valid shell.
func TestListRmCompletion(t *testing.T) {
	src := filepath.Join(sharedModels(t), "stories260K")
	cache := t.TempDir()
	repo := filepath.Join(cache, "karpathy", "stories")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"stories260K.bin", "tok512.bin"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(repo, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(cache, "notes.txt"), []byte("not a model"), 0o644)
	t.Setenv("KVC_MODELS", sharedModels(t))
	t.Setenv("KVC_CACHE", cache)
	var out bytes.Buffer
	if err := list(nil, &out); err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"karpathy/stories llama2c 1.0 MiB cache (", "stories260K llama2c 1.0 MiB " + sharedModels(t)} {
		if !strings.Contains(flat, want) {
			t.Fatalf("kvc list lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "notes") || strings.Contains(out.String(), "llama2-tokenizer") {
		t.Fatalf("kvc list shows files that are not models:\n%s", out.String())
	}
	if err := cmdRm([]string{"stories260K"}); err == nil || !strings.Contains(err.Error(), "not in kvc's cache") {
		t.Fatalf("rm of a $KVC_MODELS model: %v", err)
	}
	if err := cmdRm([]string{"nothing"}); err == nil {
		t.Fatal("rm of an unknown name succeeded")
	}
	captureStdout(t, func() {
		if err := cmdRm([]string{"karpathy/stories"}); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(cache, "karpathy")); !os.IsNotExist(err) {
		t.Fatalf("the ORG/REPO folder is still there: %v", err)
	}
	for _, sh := range []string{"bash", "zsh"} {
		var script bytes.Buffer
		if err := completion([]string{sh}, &script); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(script.String(), "generate") || !strings.Contains(script.String(), "throughput") {
			t.Fatalf("%s script lacks commands or modes", sh)
		}
		if sh == "bash" {
			c := exec.Command("bash", "-n")
			c.Stdin = &script
			if b, err := c.CombinedOutput(); err != nil {
				t.Fatalf("bash -n: %v\n%s", err, b)
			}
		}
	}
}
