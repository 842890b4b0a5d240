package gpu

import (
	"fmt"

	"kvc/engine"
)

// ReadKVBlocks copies whole blocks to dst in engine.KVBlockIO's layout (session files).
func (b *Backend) ReadKVBlocks(pool engine.KVPool, blocks []int32, dst []byte) error {
	return b.kvBlocks("ReadKVBlocks", pool, blocks, dst, true)
}

// WriteKVBlocks copies whole blocks from src, in engine.KVBlockIO's layout, into the pool.
func (b *Backend) WriteKVBlocks(pool engine.KVPool, blocks []int32, src []byte) error {
	return b.kvBlocks("WriteKVBlocks", pool, blocks, src, false)
}

// kvBlocks moves each of the four parts of a block (K, V, metric, position) between its arena and the
// host, one Read or Write per run of consecutive block ids within an arena.
func (b *Backend) kvBlocks(op string, pool engine.KVPool, blocks []int32, buf []byte, read bool) error {
	p, ok := pool.(*KVPool)
	if !ok || p == nil || p.b != b || p.k == nil {
		return fmt.Errorf("gpu: %s: pool %T is not a live KV pool of this device", op, pool)
	}
	bb := p.BlockBytes()
	if int64(len(buf)) != int64(len(blocks))*bb {
		return fmt.Errorf("gpu: %s: %d blocks of %d bytes need %d bytes, got %d", op, len(blocks), bb, int64(len(blocks))*bb, len(buf))
	}
	for _, blk := range blocks {
		if blk < 0 || int(blk) >= p.blocks {
			return fmt.Errorf("gpu: %s: block id %d outside the pool of %d blocks", op, blk, p.blocks)
		}
	}
	kv := int64(p.bs) * int64(p.hd) * p.elemBytes()
	meta := int64(p.bs) * 4
	parts := []struct {
		arenas []*Buffer
		per    int   // blocks per arena
		size   int64 // bytes of this part per block
		at     int64 // offset of the part within a block's bytes
	}{{p.k, p.kBlocks, kv, 0}, {p.v, p.kBlocks, kv, kv}, {p.met, p.mBlocks, meta, 2 * kv}, {p.pos, p.mBlocks, meta, 2*kv + meta}}
	var tmp []byte
	for _, part := range parts {
		for i := 0; i < len(blocks); {
			arena := int(blocks[i]) / part.per
			j := i + 1
			for j < len(blocks) && blocks[j] == blocks[j-1]+1 && int(blocks[j])/part.per == arena {
				j++
			}
			off := int64(int(blocks[i])%part.per) * part.size
			n := int64(j-i) * part.size
			if int64(cap(tmp)) < n {
				tmp = make([]byte, n)
			}
			tmp = tmp[:n]
			if !read {
				for k := i; k < j; k++ {
					copy(tmp[int64(k-i)*part.size:], buf[int64(k)*bb+part.at:int64(k)*bb+part.at+part.size])
				}
				if err := b.Write(part.arenas[arena], off, tmp); err != nil {
					return fmt.Errorf("gpu: %s: %w", op, err)
				}
			} else {
				if err := b.Read(part.arenas[arena], off, tmp); err != nil {
					return fmt.Errorf("gpu: %s: %w", op, err)
				}
				for k := i; k < j; k++ {
					copy(buf[int64(k)*bb+part.at:int64(k)*bb+part.at+part.size], tmp[int64(k-i)*part.size:])
				}
			}
			i = j
		}
	}
	if !read {
		return b.Sync()
	}
	return nil
}
