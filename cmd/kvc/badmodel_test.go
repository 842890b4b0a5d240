package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"kvc/model"
)

// What kvc run loads must be whole: a stories260K.bin.zst missing its last 4 bytes (the frame checksum)
// is refused after loading; a FIFO as --model is refused at once.
func TestLoadRefusesCutZstdAndFIFO(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(sharedModels(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := model.CompressZstd(&buf, bytes.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	z := filepath.Join(dir, "stories260K.bin.zst")
	os.WriteFile(z, buf.Bytes()[:buf.Len()-4], 0o644)
	tok := filepath.Join(sharedModels(t), "stories260K", "tok512.bin")
	fifo := filepath.Join(dir, "fifo.bin")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{{z, "cut short"}, {fifo, "named pipe"}} {
		ef := engineFlags{model: c.path, tokenizer: tok, device: "cpu", kvBlock: 16, maxRows: 256, policy: "full", protect: 32, window: 8, quiet: true}
		l, err := load(&ef, io.Discard)
		if err == nil {
			l.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--model %s: %v, want an error saying %q", c.path, err, c.want)
		}
	}
}
