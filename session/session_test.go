package session

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"kvc/engine"
)

func sample() *File {
	st := &engine.SeqState{Layers: 2, KVHeads: 2, HeadDim: 4, BlockSize: 4, KVType: engine.KVF16, NextPos: 6,
		Ctx: []int{6, 5, 3, 6}, Tokens: []int{1, 2, 3, 4, 5, 6}, Sampler: engine.SamplerConfig{Temp: 0.5, Seed: 3},
		RNG: []byte("pcg:0123456789abcdef0123456789abcdef")}
	st.Data = make([]byte, st.DataBytes())
	for i := range st.Data {
		st.Data[i] = byte(i * 7)
	}
	return &File{Model: "abc", Extra: json.RawMessage(`{"system":"hi"}`), Seq: st}
}

func encode(t testing.TB, f *File) []byte {
	var b bytes.Buffer
	if err := Write(&b, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	f := sample()
	got, err := Read(bytes.NewReader(encode(t, f)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != f.Model || string(got.Extra) != string(f.Extra) || !bytes.Equal(got.Seq.Data, f.Seq.Data) ||
		got.Seq.NextPos != 6 || got.Seq.Sampler != f.Seq.Sampler || string(got.Seq.RNG) != string(f.Seq.RNG) {
		t.Fatalf("read back %+v", got)
	}
}

// Every damaged file is refused with an error that says how it is damaged.
func TestDamagedFiles(t *testing.T) {
	good := encode(t, sample())
	for _, n := range []int{0, 3, 8, 20, headerBytes, headerBytes + 1, len(good) / 2, len(good) - 1} {
		_, err := Read(bytes.NewReader(good[:n]))
		if err == nil || !strings.Contains(err.Error(), "truncated") && !(n < 8 && strings.Contains(err.Error(), "not a kvc session")) {
			t.Errorf("truncated at %d of %d: %v", n, len(good), err)
		}
	}
	for _, at := range []int{headerBytes, headerBytes + 5, len(good) / 2, len(good) - 1, 30} {
		b := bytes.Clone(good)
		b[at] ^= 0x10
		if _, err := Read(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("byte %d flipped: %v", at, err)
		}
	}
	b := bytes.Clone(good)
	binary.LittleEndian.PutUint32(b[8:], Version+1)
	if _, err := Read(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "newer kvc") {
		t.Errorf("newer version: %v", err)
	}
	if _, err := Read(strings.NewReader("GGUF and then some more bytes than a header holds, surely enough")); err == nil || !strings.Contains(err.Error(), "not a kvc session") {
		t.Errorf("another file: %v", err)
	}
	if _, err := Read(bytes.NewReader(append(bytes.Clone(good), 0))); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("trailing byte: %v", err)
	}
	// A well-formed file whose tables and data disagree.
	f := sample()
	f.Seq.Ctx[0] = 2
	if _, err := Read(bytes.NewReader(encode(t, f))); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("inconsistent tables: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	good := encode(f, sample())
	f.Add(good)
	f.Add(good[:headerBytes+10])
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b))
		if err == nil {
			if err := got.Seq.Check(); err != nil {
				t.Fatalf("accepted an inconsistent state: %v", err)
			}
		}
	})
}
