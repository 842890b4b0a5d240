// Package session is kvc's session file: a conversation with its compressed KV cache, restorable without
// prefilling the history. The file is a fixed header (magic, format version, payload length, SHA-256 of
// the payload) and a zstd payload: a JSON document (model identity, the sequence's shape and tokens, the
// sampler, the command's own settings) followed by the cache blocks (engine.KVBlockIO's layout).
package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"kvc/engine"
)

// Version is the format version this package writes; it reads versions 1..Version.
const Version = 1

var magic = [8]byte{'K', 'V', 'C', 'S', 'E', 'S', 'S', 0}

const headerBytes = 8 + 4 + 4 + 8 + 32

// maxMeta bounds the JSON document (a million tokens of history is ~7 MB of JSON).
const maxMeta = 256 << 20

// File is what a session file holds.
type File struct {
	Model string           `json:"model"`           // model identity (ModelID)
	Extra json.RawMessage  `json:"extra,omitempty"` // the writing command's settings and conversation
	Seq   *engine.SeqState `json:"seq"`
}

// Write writes f to w.
func Write(w io.Writer, f *File) error {
	meta, err := json.Marshal(f)
	if err != nil {
		return err
	}
	var payload bytes.Buffer
	enc, err := zstd.NewWriter(&payload, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(meta)))
	for _, b := range [][]byte{n[:], meta, f.Seq.Data} {
		if _, err := enc.Write(b); err != nil {
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	h := make([]byte, 0, headerBytes)
	h = append(h, magic[:]...)
	h = binary.LittleEndian.AppendUint32(h, Version)
	h = binary.LittleEndian.AppendUint32(h, 0) // flags, none yet
	h = binary.LittleEndian.AppendUint64(h, uint64(payload.Len()))
	sum := sha256.Sum256(payload.Bytes())
	h = append(h, sum[:]...)
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err = w.Write(payload.Bytes())
	return err
}

// Read reads a session file. Every way a file can be wrong is an error that says which: not a session
// file, a newer format, truncated, damaged (checksum), or inconsistent contents.
func Read(r io.Reader) (*File, error) {
	h := make([]byte, headerBytes)
	if n, err := io.ReadFull(r, h); err != nil {
		if n >= 8 && !bytes.Equal(h[:8], magic[:]) || n < 8 && !bytes.HasPrefix(magic[:], h[:n]) {
			return nil, errors.New("not a kvc session file")
		}
		return nil, fmt.Errorf("truncated: %d of the header's %d bytes", n, headerBytes)
	}
	if !bytes.Equal(h[:8], magic[:]) {
		return nil, errors.New("not a kvc session file")
	}
	v := binary.LittleEndian.Uint32(h[8:])
	if v == 0 || v > Version {
		return nil, fmt.Errorf("session format version %d: this kvc reads versions 1 to %d (written by a newer kvc?)", v, Version)
	}
	size := binary.LittleEndian.Uint64(h[16:])
	if size > 1<<50 {
		return nil, fmt.Errorf("damaged: payload length %d", size)
	}
	payload, err := io.ReadAll(io.LimitReader(r, int64(size)+1))
	if err != nil {
		return nil, err
	}
	if uint64(len(payload)) < size {
		return nil, fmt.Errorf("truncated: %d of %d payload bytes", len(payload), size)
	}
	if uint64(len(payload)) > size {
		return nil, fmt.Errorf("damaged: data after the %d-byte payload", size)
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], h[24:56]) {
		return nil, errors.New("damaged: the payload's checksum does not match")
	}
	dec, err := zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	var n [4]byte
	if _, err := io.ReadFull(dec, n[:]); err != nil {
		return nil, fmt.Errorf("damaged payload: %w", err)
	}
	mlen := binary.LittleEndian.Uint32(n[:])
	if mlen > maxMeta {
		return nil, fmt.Errorf("damaged: a %d-byte description", mlen)
	}
	meta := make([]byte, mlen)
	if _, err := io.ReadFull(dec, meta); err != nil {
		return nil, fmt.Errorf("damaged payload: %w", err)
	}
	f := &File{}
	if err := json.Unmarshal(meta, f); err != nil {
		return nil, fmt.Errorf("damaged description: %w", err)
	}
	if f.Seq == nil {
		return nil, errors.New("damaged: no sequence state")
	}
	if err := checkShape(f.Seq); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	want := f.Seq.DataBytes()
	data, err := io.ReadAll(io.LimitReader(dec, want+1))
	if err != nil {
		return nil, fmt.Errorf("damaged payload: %w", err)
	}
	if int64(len(data)) != want {
		return nil, fmt.Errorf("damaged: %d bytes of cache blocks, the tables need %d", len(data), want)
	}
	f.Seq.Data = data
	if err := f.Seq.Check(); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	return f, nil
}

// checkShape bounds the fields DataBytes multiplies, before anything is allocated from them.
func checkShape(st *engine.SeqState) error {
	if st.Layers <= 0 || st.KVHeads <= 0 || st.HeadDim <= 0 || st.BlockSize <= 0 ||
		st.Layers > 1<<12 || st.KVHeads > 1<<12 || st.HeadDim > 1<<14 || st.BlockSize > 1<<16 {
		return fmt.Errorf("layers %d, KV heads %d, head dim %d, block size %d", st.Layers, st.KVHeads, st.HeadDim, st.BlockSize)
	}
	if len(st.Ctx) != st.Layers*st.KVHeads {
		return fmt.Errorf("%d context lengths for %d layers x %d KV heads", len(st.Ctx), st.Layers, st.KVHeads)
	}
	for _, c := range st.Ctx {
		if c < 0 || c > st.NextPos || st.NextPos > 1<<30 {
			return fmt.Errorf("context %d of %d positions", c, st.NextPos)
		}
	}
	return nil
}
