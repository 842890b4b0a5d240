package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// safetensors: u64 header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)},
// "__metadata__": {string: string}}, then the data buffer; offsets are relative to byte 8+N.

const maxSafetensorsHeader = 100 << 20

// stEntry is one tensor of a safetensors header.
type stEntry struct {
	Name    string
	DType   string
	Shape   []int
	Begin   int64 // absolute file offset
	End     int64
	dt      DType
	elemsOK bool
}

type stHeader struct {
	entries   []stEntry // in data order
	meta      map[string]string
	dataStart int64
}

// safetensorsDTypes are the dtypes we keep; any other is refused by its name.
var safetensorsDTypes = map[string]DType{"F32": F32, "F16": F16, "BF16": BF16, "F8_E4M3": F8E4M3, "I32": I32}

var safetensorsNames = map[DType]string{F32: "F32", F16: "F16", BF16: "BF16", F8E4M3: "F8_E4M3", I32: "I32"}

// readSafetensorsHeader parses and validates a safetensors header: sizes, dtypes, offsets inside the
// file, lengths matching shape x dtype, no overlaps, no duplicate names.
func readSafetensorsHeader(b blob) (*stHeader, error) {
	name := b.Name()
	var n8 [8]byte
	if k, _ := b.ReadAt(n8[:], 0); k < 8 {
		return nil, fmt.Errorf("%s: truncated safetensors file: %d bytes, want at least 8 (header length)", name, k)
	}
	n := binary.LittleEndian.Uint64(n8[:])
	if n > maxSafetensorsHeader {
		return nil, fmt.Errorf("%s: safetensors header length %d exceeds the 100 MB limit", name, n)
	}
	if rem := remaining(b, 8); rem >= 0 && int64(n) > rem {
		return nil, fmt.Errorf("%s: truncated safetensors file: header length %d, only %d bytes follow", name, n, rem)
	}
	// A stream of unknown size gets a buffer that grows with what it really holds.
	var js []byte
	if b.Size() >= 0 {
		js = make([]byte, n)
		if k, _ := b.ReadAt(js, 8); k < len(js) {
			return nil, fmt.Errorf("%s: truncated safetensors header: %d of %d bytes", name, k, n)
		}
	} else {
		var buf bytes.Buffer
		k, _ := io.CopyN(&buf, &blobReader{b: b, off: 8}, int64(n))
		if k < int64(n) {
			return nil, fmt.Errorf("%s: truncated safetensors header: %d of %d bytes", name, k, n)
		}
		js = buf.Bytes()
	}
	h := &stHeader{dataStart: 8 + int64(n)}
	dataLen := int64(-1)
	if b.Size() >= 0 {
		dataLen = b.Size() - h.dataStart
	}
	if err := parseSafetensorsJSON(name, js, dataLen, h); err != nil {
		return nil, err
	}
	return h, nil
}

// parseSafetensorsJSON fills h from the header JSON; dataLen < 0 means the data size is unknown (stream).
func parseSafetensorsJSON(file string, js []byte, dataLen int64, h *stHeader) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%s: safetensors header is not a JSON object (%v)", file, errOr(err, "starts with "+fmt.Sprint(tok)))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: safetensors header: %v", file, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("%s: safetensors header: duplicate key %q", file, key)
		}
		seen[key] = true
		if key == "__metadata__" {
			var m map[string]string
			if err := dec.Decode(&m); err != nil {
				return fmt.Errorf("%s: safetensors __metadata__: want a string-to-string map: %v", file, err)
			}
			h.meta = m
			continue
		}
		var raw struct {
			DType       string  `json:"dtype"`
			Shape       []int64 `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: safetensors tensor %q: %v", file, key, err)
		}
		e := stEntry{Name: key, DType: raw.DType}
		dt, ok := safetensorsDTypes[raw.DType]
		if !ok {
			return fmt.Errorf("%s: tensor %q: dtype %q not supported (want F32, F16, BF16, F8_E4M3 or I32)", file, key, raw.DType)
		}
		e.dt = dt
		if len(raw.DataOffsets) != 2 {
			return fmt.Errorf("%s: tensor %q: data_offsets has %d values, want [begin, end]", file, key, len(raw.DataOffsets))
		}
		if len(raw.Shape) > 8 {
			return fmt.Errorf("%s: tensor %q: %d dimensions, want at most 8", file, key, len(raw.Shape))
		}
		elems := int64(1)
		for _, d := range raw.Shape {
			if d < 0 || d > 1<<40 {
				return fmt.Errorf("%s: tensor %q: shape %v has a bad dimension", file, key, raw.Shape)
			}
			if d != 0 && elems > (1<<50)/d {
				return fmt.Errorf("%s: tensor %q: shape %v is too large", file, key, raw.Shape)
			}
			elems *= d
			e.Shape = append(e.Shape, int(d))
		}
		if e.Shape == nil {
			e.Shape = []int{}
		}
		begin, end := raw.DataOffsets[0], raw.DataOffsets[1]
		if begin < 0 || end < begin {
			return fmt.Errorf("%s: tensor %q: data_offsets [%d, %d) are not an increasing range", file, key, begin, end)
		}
		if dataLen >= 0 && end > dataLen {
			return fmt.Errorf("%s: tensor %q: data_offsets [%d, %d) outside the data buffer (%d bytes)", file, key, begin, end, dataLen)
		}
		if want := elems * int64(dt.ElemBytes()); end-begin != want {
			return fmt.Errorf("%s: tensor %q: %d bytes in data_offsets, want %d (shape %v x %s)", file, key, end-begin, want, raw.Shape, raw.DType)
		}
		e.Begin, e.End = h.dataStart+begin, h.dataStart+end
		h.entries = append(h.entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%s: safetensors header: %v", file, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: safetensors header: trailing data after the JSON object", file)
	}
	sort.SliceStable(h.entries, func(i, j int) bool { return h.entries[i].Begin < h.entries[j].Begin })
	for i := 1; i < len(h.entries); i++ {
		p, q := h.entries[i-1], h.entries[i]
		if q.Begin < p.End {
			return fmt.Errorf("%s: tensors %q and %q overlap (bytes [%d, %d) and [%d, %d) of the data buffer)", file, p.Name, q.Name,
				p.Begin-h.dataStart, p.End-h.dataStart, q.Begin-h.dataStart, q.End-h.dataStart)
		}
	}
	return nil
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}
