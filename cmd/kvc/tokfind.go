package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"kvc/model"
	"kvc/model/tokenizer"
)

// findTokenizer loads the tokenizer given, else the one inside a GGUF or beside the model.
func findTokenizer(ck *model.Checkpoint, given string) (tokenizer.Tokenizer, error) {
	vocab := ck.Config.Vocab
	if given != "" {
		return openTokenizerFile(given, vocab)
	}
	if ck.Format == "gguf" {
		if t, err := tokenizer.FromGGUF(ck.Metadata()); err == nil {
			return t, nil
		} else if !fileExists(filepath.Join(ck.Dir(), "tokenizer.json")) {
			return nil, fmt.Errorf("%s: %w", ck.Path, err)
		}
	}
	dir := ck.Dir()
	if fileExists(filepath.Join(dir, "tokenizer.json")) {
		return tokenizer.LoadHF(dir)
	}
	// llama2.c checkpoints ship tokenizers named by vocab size, e.g. tok512.bin.
	for _, name := range []string{"tokenizer.bin", fmt.Sprintf("tok%d.bin", vocab)} {
		p := filepath.Join(dir, name)
		if fileExists(p) {
			return openTokenizerFile(p, vocab)
		}
	}
	return nil, fmt.Errorf("no tokenizer found beside %s (looked for tokenizer.json, tokenizer.bin, tok%d.bin); give one with --tokenizer", ck.Path, vocab)
}

func openTokenizerFile(p string, vocab int) (tokenizer.Tokenizer, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return tokenizer.LoadHF(p)
	}
	if strings.HasSuffix(p, ".json") {
		return tokenizer.LoadHF(filepath.Dir(p))
	}
	return tokenizer.LoadLlama2C(p, vocab)
}
