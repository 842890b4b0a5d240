package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length and the
// token's bytes (little-endian). The file does not store the vocab size: run.c takes it from the model.
// Spaces are stored as " " (export.py replaced SentencePiece's "▁"), byte tokens as "<0xXX>" at id
// byte+3, and BOS/EOS as "\n<s>\n" and "\n</s>\n" at ids 1 and 2.

const (
	llama2cUnk = 0
	llama2cBOS = 1
	llama2cEOS = 2
)

// LoadLlama2C reads a llama2.c tokenizer.bin. vocabSize > 0 reads exactly that many tokens (as run.c
// does, ignoring anything after them); 0 reads tokens up to the end of the file.
func LoadLlama2C(path string, vocabSize int) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseLlama2C(data, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseLlama2C parses the bytes of a tokenizer.bin (see LoadLlama2C for vocabSize).
func ParseLlama2C(data []byte, vocabSize int) (Tokenizer, error) {
	if vocabSize < 0 {
		return nil, fmt.Errorf("vocab size %d is negative", vocabSize)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 4-byte max_token_length header", len(data))
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 {
		return nil, fmt.Errorf("max_token_length is %d, want > 0", maxLen)
	}
	// Each token takes at least 8 bytes, which bounds what we allocate by the file size.
	if vocabSize > (len(data)-4)/8 {
		return nil, fmt.Errorf("vocab size %d needs at least %d bytes, file has %d", vocabSize, 4+8*vocabSize, len(data))
	}
	var pieces []string
	var scores []float32
	off := 4
	for i := 0; vocabSize == 0 || i < vocabSize; i++ {
		if vocabSize == 0 && off == len(data) {
			break
		}
		if len(data)-off < 8 {
			return nil, fmt.Errorf("token %d at byte %d: %d bytes left, need 8 for score and length", i, off, len(data)-off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int64(int32(binary.LittleEndian.Uint32(data[off+4:])))
		off += 8
		if n < 0 || n > int64(len(data)-off) {
			return nil, fmt.Errorf("token %d at byte %d: length %d, but %d bytes are left", i, off-4, n, len(data)-off)
		}
		pieces = append(pieces, string(data[off:off+int(n)]))
		scores = append(scores, score)
		off += int(n)
	}
	if len(pieces) < 3+256 {
		return nil, fmt.Errorf("vocab has %d tokens; llama2.c needs <unk>, <s>, </s> and 256 byte tokens (>= 259)", len(pieces))
	}
	v := newVocab(pieces)
	v.bos = llama2cBOS
	// run.c stops generating when BOS is sampled (its training data is BOS-delimited stories), so BOS
	// also ends generation; </s> comes first as the primary end id.
	v.eos = []int{llama2cEOS, llama2cBOS}
	// The special ids under their usual names, as the stored text is "\n<s>\n" etc.
	v.aliases = map[string]int{"<unk>": llama2cUnk, "<s>": llama2cBOS, "</s>": llama2cEOS}
	for i, p := range pieces {
		v.decoded[i] = []byte(p)
		if b, ok := byteToken(p); ok {
			v.decoded[i] = []byte{b}
		}
	}
	// Older exports (e.g. the 32k llama2 tokenizer.bin) store byte token b at id b+3 as the UTF-8 of
	// rune b instead of "<0xXX>". Those texts collide with real tokens ("," is both 47 and 29892), so
	// they decode to their byte and are left out of the text lookup: SentencePiece never matches byte
	// pieces as text, and the bytes of a missing character fall back to them by id anyway.
	if oldByteTokens(pieces) {
		v.ids = make(map[string]int, len(pieces))
		for i, p := range pieces {
			if i >= 3 && i < 3+256 {
				v.decoded[i] = []byte{byte(i - 3)}
				continue
			}
			if _, dup := v.ids[p]; !dup {
				v.ids[p] = i
			}
		}
	}
	v.markSkipped()
	v.stripAfterBOS = true
	v.segment = &scoreEncoder{v: v, scores: scores, space: " ", prefix: prefixAlways, minScore: -1e10,
		byteID: func(b byte) int { return int(b) + 3 }}
	return v, nil
}

// oldByteTokens says whether ids 3..258 hold the 256 bytes as UTF-8 runes (the older export format).
func oldByteTokens(pieces []string) bool {
	for b := 0; b < 256; b++ {
		if pieces[b+3] != string(rune(b)) {
			return false
		}
	}
	return true
}

// byteToken parses a byte-fallback token "<0xXX>".
func byteToken(p string) (byte, bool) {
	if len(p) != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(p[3])
	lo, ok2 := hexDigit(p[4])
	return hi<<4 | lo, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
