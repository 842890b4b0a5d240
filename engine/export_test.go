package engine

import (
	"encoding/binary"
	"fmt"

	"kvc/kvpages"
)

// DeviceTables reads s's block tables back from the device table buffer, [hd] as many entries as s holds
// (tests compare them with the host's view).
func (e *Engine) DeviceTables(s *kvpages.Seq) ([][]int32, error) {
	st := e.tables.seqs[s]
	if st == nil {
		return nil, fmt.Errorf("sequence has no device tables")
	}
	raw := make([]byte, e.tables.buf.Size())
	if err := e.B.Read(e.tables.buf, 0, raw); err != nil {
		return nil, err
	}
	out := make([][]int32, len(s.Tables))
	for hd := range out {
		out[hd] = make([]int32, len(s.Tables[hd]))
		for j := range out[hd] {
			out[hd][j] = int32(binary.LittleEndian.Uint32(raw[(int(st.off[hd])+j)*4:]))
		}
	}
	return out, nil
}

// TableBufferSize is the size of the device table buffer in bytes (0 before the first pass).
func (e *Engine) TableBufferSize() int64 {
	if e.tables.buf == nil {
		return 0
	}
	return e.tables.buf.Size()
}
