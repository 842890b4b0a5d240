// Package tokenizer turns text into token ids and back for llama-family models. It reads three vocab
// sources: llama2.c's tokenizer.bin, Hugging Face tokenizer.json (byte-level BPE and SentencePiece-style
// BPE) and the vocab stored in GGUF metadata. Two merge algorithms cover them all: score-greedy merging
// (llama2.c run.c, SentencePiece, GGUF "llama") and ranked merges (Hugging Face BPE, GGUF "gpt2").
//
// Conventions shared by every kind:
//   - Encode matches the tokenizer's special tokens (HF added_tokens, GGUF control/user-defined tokens)
//     as whole strings before BPE, so a rendered chat template encodes its markers to their ids. The
//     llama2.c tokenizer has no special strings: run.c encodes every character as text.
//   - Decode omits BOS, EOS and special/control tokens (like HF decode(skip_special_tokens=True)) and
//     returns raw bytes: byte-fallback tokens that do not form valid UTF-8 are passed through unchanged.
//   - SentencePiece-style tokenizers drop one leading space from the piece that follows BOS (the dummy
//     prefix), exactly as run.c's decode does; without a BOS the space stays.
package tokenizer

// Tokenizer encodes text to ids and decodes ids to text.
type Tokenizer interface {
	// Encode returns the ids of text, led by BOS when addBOS is set.
	Encode(text string, addBOS bool) []int
	// Decode returns the text of ids (see the package comment for what is omitted).
	Decode(ids []int) string
	// NewDecoder returns a streaming decoder that prints only complete UTF-8.
	NewDecoder() *StreamDecoder
	// Vocab is the number of token ids.
	Vocab() int
	// BOS is the begin-of-sequence id, -1 when the tokenizer has none (then Encode adds nothing).
	BOS() int
	// EOS are the ids that end generation, the primary end-of-sequence id first.
	EOS() []int
	// TokenID finds a token by its text, e.g. "<|eot_id|>" or "<s>".
	TokenID(s string) (int, bool)
}

// vocab holds what every kind shares: the token strings, how each decodes, the special tokens, and a
// kind-specific encoder for the text between special tokens.
type vocab struct {
	pieces  []string       // token text as stored in the source
	ids     map[string]int // text -> id; the lowest id wins for duplicates
	aliases map[string]int // extra names for TokenID only (llama2.c stores BOS as "\n<s>\n")
	decoded [][]byte       // bytes each token decodes to
	skip    []bool         // omitted by Decode: BOS, EOS, special/control tokens
	bos     int
	eos     []int

	stripAfterBOS bool           // drop one leading space from the piece right after BOS
	specials      *specialSet    // matched as whole strings before the segment encoder; may be nil
	segment       segmentEncoder // encodes text that holds no special token
}

// segmentEncoder encodes one run of ordinary text (between special tokens). first is true for the run
// at the very start of the input: some prefix schemes add the dummy space only there.
type segmentEncoder interface {
	encode(out []int, text string, first bool) []int
}

func newVocab(pieces []string) *vocab {
	v := &vocab{pieces: pieces, ids: make(map[string]int, len(pieces)), decoded: make([][]byte, len(pieces)),
		skip: make([]bool, len(pieces)), bos: -1}
	for i, p := range pieces {
		if _, dup := v.ids[p]; !dup {
			v.ids[p] = i
		}
	}
	return v
}

func (v *vocab) Encode(text string, addBOS bool) []int {
	var out []int
	if addBOS && v.bos >= 0 {
		out = append(out, v.bos)
	}
	if v.specials == nil {
		return v.segment.encode(out, text, true)
	}
	first := true
	v.specials.split(text, func(seg string, special int) {
		if special >= 0 {
			out = append(out, special)
		} else {
			out = v.segment.encode(out, seg, first)
		}
		first = false
	})
	return out
}

// piece is the bytes id contributes to the output when it follows prev (-1 at the start).
func (v *vocab) piece(prev, id int) []byte {
	if id < 0 || id >= len(v.pieces) || v.skip[id] {
		return nil
	}
	b := v.decoded[id]
	if v.stripAfterBOS && prev >= 0 && prev == v.bos && len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

func (v *vocab) Decode(ids []int) string {
	var out []byte
	prev := -1
	for _, id := range ids {
		out = append(out, v.piece(prev, id)...)
		prev = id
	}
	return string(out)
}

func (v *vocab) NewDecoder() *StreamDecoder { return &StreamDecoder{v: v, prev: -1} }
func (v *vocab) Vocab() int                 { return len(v.pieces) }
func (v *vocab) BOS() int                   { return v.bos }
func (v *vocab) EOS() []int                 { return append([]int(nil), v.eos...) }

func (v *vocab) TokenID(s string) (int, bool) {
	if id, ok := v.aliases[s]; ok {
		return id, true
	}
	id, ok := v.ids[s]
	return id, ok
}

// markSkipped marks BOS and EOS as omitted by Decode.
func (v *vocab) markSkipped() {
	for _, id := range append([]int{v.bos}, v.eos...) {
		if id >= 0 && id < len(v.skip) {
			v.skip[id] = true
		}
	}
}

// StreamDecoder turns ids pushed one at a time into text, holding back the bytes of a UTF-8 character
// until all of them have arrived (a character split over byte-fallback tokens is printed whole).
type StreamDecoder struct {
	v       *vocab
	prev    int
	pending []byte
}

// Follow tells the decoder which token precedes the stream (e.g. the last prompt token) without
// printing it, so that a first generated token after BOS loses its dummy-prefix space as in run.c.
func (d *StreamDecoder) Follow(prev int) { d.prev = prev }

// Push adds one id and returns the text that is now complete (possibly "").
func (d *StreamDecoder) Push(id int) string {
	d.pending = append(d.pending, d.v.piece(d.prev, id)...)
	d.prev = id
	n := completeUTF8(d.pending)
	s := string(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return s
}

// Flush returns whatever is held back (an incomplete character, as raw bytes) and empties the decoder.
func (d *StreamDecoder) Flush() string {
	s := string(d.pending)
	d.pending = d.pending[:0]
	return s
}

// completeUTF8 is the length of the longest prefix of b that does not end inside a character that
// further bytes could still complete. Bytes that can never start a valid character are not held back.
func completeUTF8(b []byte) int {
	// A character is at most 4 bytes: only the last 3 can be an unfinished one.
	for back := 1; back <= 3 && back <= len(b); back++ {
		i := len(b) - back
		c := b[i]
		if c < 0x80 {
			return len(b) // ASCII: nothing pending after it
		}
		if c >= 0xC0 { // a lead byte: is its character finished?
			need := 0
			switch {
			case c >= 0xF0 && c <= 0xF4:
				need = 4
			case c >= 0xE0 && c < 0xF0:
				need = 3
			case c >= 0xC2 && c < 0xE0:
				need = 2
			default:
				return len(b) // never valid
			}
			if back >= need {
				return len(b)
			}
			// Hold back only if the bytes so far are a valid beginning of a character.
			if validPrefix(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}

// validPrefix says whether p (a lead byte and fewer continuation bytes than it needs) can still become
// a valid UTF-8 character: continuation bytes in 80..BF, and the second byte inside the narrower range
// some lead bytes allow (no overlong forms, no surrogates, nothing above U+10FFFF).
func validPrefix(p []byte) bool {
	for k, c := range p[1:] {
		lo, hi := byte(0x80), byte(0xBF)
		if k == 0 {
			switch p[0] {
			case 0xE0:
				lo = 0xA0
			case 0xED:
				hi = 0x9F
			case 0xF0:
				lo = 0x90
			case 0xF4:
				hi = 0x8F
			}
		}
		if c < lo || c > hi {
			return false
		}
	}
	return true
}
