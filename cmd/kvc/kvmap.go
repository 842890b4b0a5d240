package main

import (
	"path/filepath"
	"strings"

	"kvc/engine"
	"kvc/kvmap"
	"kvc/kvpages"
)

// writeKVMap draws seq's cache at the end of generation (kvc run --kv-map FILE.png); kvc-view draws the
// same picture live.
func writeKVMap(path string, g *generation, seq *engine.Sequence, opts kvpages.Options) error {
	v, err := g.l.eng.CacheView(seq, opts, g.ledger())
	if err != nil {
		return err
	}
	f := kvmap.Frame{View: v, Model: modelName(g.l.ck.Path), Text: g.l.tok.Decode(seq.Tokens)}
	return kvmap.WritePNG(path, f)
}

// modelName is the checkpoint's file or folder name without its extensions (stories260K).
func modelName(path string) string {
	n := filepath.Base(path)
	for _, ext := range []string{".zst", ".gguf", ".bin", ".safetensors"} {
		n = strings.TrimSuffix(n, ext)
	}
	return n
}

// ledger is what the generation's eviction rounds did, in kvpages' terms.
func (g *generation) ledger() kvpages.Ledger {
	return kvpages.Ledger{Rounds: g.rounds, EvictedKVs: g.comp.EvictedKVs, FreedBlocks: g.comp.FreedBlocks, Moves: g.comp.Moves}
}
