package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/engine/cpu"
)

// oomBackend is the CPU backend on a device that refuses KV pools over maxBlocks and buffers over maxAlloc
// bytes, as a full Vulkan heap would (the error wraps engine.ErrOutOfMemory).
type oomBackend struct {
	*cpu.Backend
	maxBlocks int
	maxAlloc  int64
}

func (b *oomBackend) NewKVPool(blocks, blockSize, headDim int, typ engine.KVType) (engine.KVPool, error) {
	if blocks > b.maxBlocks {
		return nil, fmt.Errorf("fake device: %w for %d blocks", engine.ErrOutOfMemory, blocks)
	}
	return b.Backend.NewKVPool(blocks, blockSize, headDim, typ)
}

func (b *oomBackend) Alloc(n int64) (engine.Buf, error) {
	if n > b.maxAlloc {
		return nil, fmt.Errorf("fake device: %w for %d bytes", engine.ErrOutOfMemory, n)
	}
	return b.Backend.Alloc(n)
}

// Out of memory for the KV pool or the scratch, NewEngine falls back to a smaller pool and fewer rows
// per pass (down to the minimums it is given), says so, and generates the same greedy tokens; without
// minimums, or below them, it fails with an error that still says "out of device memory".
func TestNewEngineFallsBackWhenOutOfMemory(t *testing.T) {
	ck := openStories(t)
	prompts := randomPrompts(3, ck.Config.Vocab, 7)
	ref := greedy(t, newEngine(t, &cpu.Backend{}, ck, engine.Options{MaxRows: 64}), prompts, 8, true)

	logits := int64(64 * ck.Config.Vocab * 4) // the largest scratch buffer at 64 rows
	b := &oomBackend{Backend: &cpu.Backend{}, maxBlocks: 3000, maxAlloc: logits/2 + 1}
	e := newEngine(t, b, ck, engine.Options{KVBlocks: 16384, MaxRows: 64, MinKVBlocks: 100, MinRows: 8})
	if e.Opt.KVBlocks != 2048 || e.Opt.MaxRows != 32 {
		t.Fatalf("after the fallback: %d blocks, %d rows; want 2048 and 32", e.Opt.KVBlocks, e.Opt.MaxRows)
	}
	if len(e.Notes) != 4 || !strings.Contains(e.Notes[0], "KV pool") || !strings.Contains(e.Notes[3], "32 rows per pass") {
		t.Errorf("notes %q", e.Notes)
	}
	got := greedy(t, e, prompts, 8, true)
	for i := range ref {
		if !slices.Equal(got[i], ref[i]) {
			t.Errorf("prompt %d: %v after the fallback, %v before", i, got[i], ref[i])
		}
	}

	w, err := engine.LoadWeights(b, ck, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []engine.Options{
		{KVBlocks: 16384, MaxRows: 64},                                // no minimums: no fallback
		{KVBlocks: 16384, MaxRows: 64, MinKVBlocks: 4000, MinRows: 8}, // the pool cannot shrink enough
		{KVBlocks: 1024, MaxRows: 64, MinKVBlocks: 100, MinRows: 64},  // the rows cannot
	} {
		_, err := engine.NewEngine(b, ck.Config, w, opt)
		if !errors.Is(err, engine.ErrOutOfMemory) || !strings.Contains(err.Error(), "out of device memory") {
			t.Errorf("%+v: %v, want an out-of-memory error", opt, err)
		}
	}
}
