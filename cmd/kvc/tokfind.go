package main

import (
	"fmt"
	"os"
	"path/filepath"

	"kvc/model"
	"kvc/model/tokenizer"
)

// findTokenizer loads the tokenizer given, else the one beside the model.
func findTokenizer(ck *model.Checkpoint, given string) (tokenizer.Tokenizer, error) {
	vocab := ck.Config.Vocab
	if given != "" {
		return openTokenizerFile(given, vocab)
	}
	dir := ck.Dir()
	// llama2.c checkpoints ship tokenizers named by vocab size, e.g. tok512.bin.
	for _, name := range []string{"tokenizer.bin", fmt.Sprintf("tok%d.bin", vocab)} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return openTokenizerFile(p, vocab)
		}
	}
	return nil, fmt.Errorf("no tokenizer found beside %s (looked for tokenizer.bin, tok%d.bin); give one with --tokenizer", ck.Path, vocab)
}

func openTokenizerFile(p string, vocab int) (tokenizer.Tokenizer, error) {
	return tokenizer.LoadLlama2C(p, vocab)
}
