package engine

import (
	"encoding/binary"
	"fmt"
	"math"

	"kvc/kvpages"
	"kvc/model"
)

// SeqState is all a sequence's next step depends on, in host memory: its tokens, its per-(layer, KV head)
// tables with the kept K/V, metrics and positions, and its sampler with the random stream's position.
type SeqState struct {
	Layers    int           `json:"layers"`
	KVHeads   int           `json:"kv_heads"`
	HeadDim   int           `json:"head_dim"`
	BlockSize int           `json:"block_size"`
	KVType    KVType        `json:"kv_type"`
	NextPos   int           `json:"next_pos"`
	Ctx       []int         `json:"ctx"` // [layer*KVHeads + head] slots in use
	Tokens    []int         `json:"tokens"`
	Sampler   SamplerConfig `json:"sampler"`
	RNG       []byte        `json:"rng"`
	// Data is every head's blocks in logical order, head after head (KVBlockIO's block layout);
	// head hd has ceil(Ctx[hd] / BlockSize) blocks.
	Data []byte `json:"-"`
}

// DataBytes is len(Data) that the shape fields call for.
func (st *SeqState) DataBytes() int64 {
	n := int64(0)
	for _, c := range st.Ctx {
		n += int64((c + st.BlockSize - 1) / st.BlockSize)
	}
	return n * KVBlockBytes(st.HeadDim, st.BlockSize, st.KVType)
}

func (e *Engine) blockIO() (KVBlockIO, error) {
	io, ok := e.B.(KVBlockIO)
	if !ok {
		return nil, fmt.Errorf("engine: backend %s cannot copy KV blocks to the host", e.B.Name())
	}
	return io, nil
}

// SaveSequence copies s's state to the host (s is unchanged).
func (e *Engine) SaveSequence(s *Sequence) (*SeqState, error) {
	bio, err := e.blockIO()
	if err != nil {
		return nil, err
	}
	st := &SeqState{Layers: s.KV.Layers, KVHeads: s.KV.KVHeads, HeadDim: e.Cfg.HeadDim, BlockSize: e.Opt.BlockSize,
		KVType: e.KV.Type(), NextPos: s.KV.NextPos, Ctx: append([]int(nil), s.KV.Ctx...),
		Tokens: append([]int(nil), s.Tokens...), Sampler: s.Sampler.Config(), RNG: s.Sampler.State()}
	blocks := s.KV.SlotBlocks()
	st.Data = make([]byte, int64(len(blocks))*e.KV.BlockBytes())
	if err := bio.ReadKVBlocks(e.KV, blocks, st.Data); err != nil {
		return nil, fmt.Errorf("engine: reading the cache back: %w", err)
	}
	return st, nil
}

// Check reports the first inconsistency between st's fields (a damaged or hand-made state).
func (st *SeqState) Check() error {
	switch {
	case st.Layers <= 0 || st.KVHeads <= 0 || st.HeadDim <= 0 || st.BlockSize <= 0:
		return fmt.Errorf("layers %d, KV heads %d, head dim %d, block size %d: want positive values", st.Layers, st.KVHeads, st.HeadDim, st.BlockSize)
	case st.KVType != KVF32 && st.KVType != KVF16:
		return fmt.Errorf("KV type %d: want f32 (0) or f16 (1)", st.KVType)
	case len(st.Ctx) != st.Layers*st.KVHeads:
		return fmt.Errorf("%d context lengths for %d layers x %d KV heads", len(st.Ctx), st.Layers, st.KVHeads)
	case len(st.Tokens) != st.NextPos:
		return fmt.Errorf("%d tokens for %d cached positions", len(st.Tokens), st.NextPos)
	}
	for hd, c := range st.Ctx {
		if c < 0 || c > st.NextPos {
			return fmt.Errorf("layer %d head %d keeps %d slots of %d positions", hd/st.KVHeads, hd%st.KVHeads, c, st.NextPos)
		}
	}
	if int64(len(st.Data)) != st.DataBytes() {
		return fmt.Errorf("%d bytes of cache blocks, the tables need %d", len(st.Data), st.DataBytes())
	}
	return nil
}

// RestoreSequence makes a sequence from st in the pool: the blocks are allocated and written, nothing is
// prefilled. A state of another shape, or one that does not fit the context or the free blocks, is an error
// and leaves the pool as it was. A KV type other than the pool's is converted.
func (e *Engine) RestoreSequence(st *SeqState) (*Sequence, error) {
	bio, err := e.blockIO()
	if err != nil {
		return nil, err
	}
	if err := st.Check(); err != nil {
		return nil, fmt.Errorf("engine: session state: %w", err)
	}
	c := e.Cfg
	if st.Layers != c.Layers || st.KVHeads != c.KVHeads || st.HeadDim != c.HeadDim {
		return nil, fmt.Errorf("engine: the state is of %d layers x %d KV heads of dim %d, the model has %d x %d of dim %d",
			st.Layers, st.KVHeads, st.HeadDim, c.Layers, c.KVHeads, c.HeadDim)
	}
	if st.BlockSize != e.Opt.BlockSize {
		return nil, fmt.Errorf("engine: the state has KV blocks of %d slots, this cache %d: pass --kv-block %d", st.BlockSize, e.Opt.BlockSize, st.BlockSize)
	}
	if st.NextPos > c.Context {
		return nil, fmt.Errorf("engine: the state holds %d positions, more than the context of %d", st.NextPos, c.Context)
	}
	if err := st.Sampler.Validate(); err != nil {
		return nil, fmt.Errorf("engine: session sampler: %w", err)
	}
	data := st.Data
	if st.KVType != e.KV.Type() {
		data = convertKVBlocks(data, st.HeadDim, st.BlockSize, st.KVType, e.KV.Type())
	}
	s := &Sequence{KV: kvpages.NewSeq(c.Layers, c.KVHeads), Tokens: append([]int(nil), st.Tokens...), Sampler: NewSampler(st.Sampler)}
	if err := s.Sampler.SetState(st.RNG); err != nil {
		return nil, fmt.Errorf("engine: session %w", err)
	}
	need := 0
	for _, n := range st.Ctx {
		need += (n + st.BlockSize - 1) / st.BlockSize
	}
	if need > e.Pool.Free() {
		return nil, fmt.Errorf("engine: the state needs %d KV blocks, the pool has %d free (raise --kv-mem)", need, e.Pool.Free())
	}
	for hd, n := range st.Ctx {
		for i := 0; i < (n+st.BlockSize-1)/st.BlockSize; i++ {
			id, _ := e.Pool.Alloc() // cannot fail: counted above
			s.KV.Tables[hd] = append(s.KV.Tables[hd], id)
		}
		s.KV.Ctx[hd] = n
	}
	s.KV.NextPos = st.NextPos
	if err := bio.WriteKVBlocks(e.KV, s.KV.SlotBlocks(), data); err != nil {
		e.Release(s)
		return nil, fmt.Errorf("engine: writing the cache: %w", err)
	}
	return s, nil
}

// convertKVBlocks rewrites blocks of one KV type as another (K and V elements; metric and position as
// they are).
func convertKVBlocks(src []byte, hd, bs int, from, to KVType) []byte {
	el := func(t KVType) int {
		if t == KVF16 {
			return 2
		}
		return 4
	}
	n := bs * hd * 2 // K and V elements per block
	inB, outB := int(KVBlockBytes(hd, bs, from)), int(KVBlockBytes(hd, bs, to))
	out := make([]byte, len(src)/inB*outB)
	for b := 0; b < len(src)/inB; b++ {
		in, o := src[b*inB:(b+1)*inB], out[b*outB:(b+1)*outB]
		for i := 0; i < n; i++ {
			var x float32
			if from == KVF16 {
				x = model.F16ToF32(binary.LittleEndian.Uint16(in[2*i:]))
			} else {
				x = math.Float32frombits(binary.LittleEndian.Uint32(in[4*i:]))
			}
			if to == KVF16 {
				binary.LittleEndian.PutUint16(o[2*i:], model.F32ToF16(x))
			} else {
				binary.LittleEndian.PutUint32(o[4*i:], math.Float32bits(x))
			}
		}
		copy(o[n*el(to):], in[n*el(from):])
	}
	return out
}
