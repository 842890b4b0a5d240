package cpu

import (
	"encoding/binary"
	"fmt"
	"math"

	"kvc/engine"
)

// ReadKVBlocks copies whole blocks to dst in engine.KVBlockIO's layout.
func (c *Backend) ReadKVBlocks(pool engine.KVPool, blocks []int32, dst []byte) error {
	return kvBlocks("ReadKVBlocks", pool, blocks, dst, true)
}

// WriteKVBlocks copies whole blocks from src, in engine.KVBlockIO's layout, into the pool.
func (c *Backend) WriteKVBlocks(pool engine.KVPool, blocks []int32, src []byte) error {
	return kvBlocks("WriteKVBlocks", pool, blocks, src, false)
}

func kvBlocks(op string, pool engine.KVPool, blocks []int32, buf []byte, read bool) error {
	p, ok := pool.(*KVPool)
	if !ok {
		return fmt.Errorf("cpu: %s: pool %T is not a CPU KV pool", op, pool)
	}
	bb := int(p.BlockBytes())
	if len(buf) != len(blocks)*bb {
		return fmt.Errorf("cpu: %s: %d blocks of %d bytes need %d bytes, got %d", op, len(blocks), bb, len(blocks)*bb, len(buf))
	}
	el := int(kvElemBytes(p.typ))
	n := p.blockSize * p.headDim
	for i, blk := range blocks {
		if blk < 0 || int(blk) >= p.blocks {
			return fmt.Errorf("cpu: %s: block id %d outside the pool of %d blocks", op, blk, p.blocks)
		}
		b := buf[i*bb : (i+1)*bb]
		first, slot0 := int(blk)*n, int(blk)*p.blockSize
		for half, a := range [2]struct {
			f32 []float32
			f16 []uint16
		}{{p.k32, p.k16}, {p.v32, p.v16}} {
			part := b[half*n*el : (half+1)*n*el]
			for j := 0; j < n; j++ {
				switch {
				case p.typ == engine.KVF16 && read:
					binary.LittleEndian.PutUint16(part[2*j:], a.f16[first+j])
				case p.typ == engine.KVF16:
					a.f16[first+j] = binary.LittleEndian.Uint16(part[2*j:])
				case read:
					binary.LittleEndian.PutUint32(part[4*j:], math.Float32bits(a.f32[first+j]))
				default:
					a.f32[first+j] = math.Float32frombits(binary.LittleEndian.Uint32(part[4*j:]))
				}
			}
		}
		meta := b[2*n*el:]
		for j := 0; j < p.blockSize; j++ {
			m, ps := meta[4*j:], meta[4*(p.blockSize+j):]
			if read {
				binary.LittleEndian.PutUint32(m, math.Float32bits(p.Metric[slot0+j]))
				binary.LittleEndian.PutUint32(ps, uint32(p.Pos[slot0+j]))
			} else {
				p.Metric[slot0+j] = math.Float32frombits(binary.LittleEndian.Uint32(m))
				p.Pos[slot0+j] = int32(binary.LittleEndian.Uint32(ps))
			}
		}
	}
	return nil
}
