package model

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A .zst checkpoint file is read as one forward stream, never mapped and never decompressed to disk.
// Headers are decoded from the stream start. Memory per open file: the decoder's window (the frame's
// window size: 8 MiB for klauspost's default level, capped at 1 GiB), the last 1 MiB decoded (so header
// re-reads and read-ahead never rewind), and a copy of the tensor being read (up to twice its size when
// it is over 64 MiB, since such buffers grow with the data really decoded). Reading tensors in file order
// (bytes, then scales) is one pass: GGUF Q8_0 scales come with the bytes, llama2.c v2 scales follow
// their values, and an HF shard reads a scale tensor from its main stream when it is near, else from a
// second stream of the same shard (layouts with all scales first or last). Asking for an earlier
// offset restarts the stream from the file's beginning.

func isZstd(path string) bool { return strings.HasSuffix(path, ".zst") }

// zstdMaxWindow bounds the decoder window a hostile frame can demand.
const zstdMaxWindow = 1 << 30

// zstdRecent is how much of the most recently decoded data is kept, so that re-reading a header or a
// buffered reader's read-ahead never rewinds the stream.
const zstdRecent = 1 << 20

type zstdBlob struct {
	path string
	mu   sync.Mutex
	f    *os.File
	dec  *zstd.Decoder
	pos  int64 // decompressed offset of the stream
	size int64 // -1 until the end has been seen
	done bool
	// recent holds the decoded bytes [pos-len(recent), pos).
	recent []byte
	// restarts counts rewinds to the stream start (tests check that file-order reads need none).
	restarts int
}

func openZstd(path string) (*zstdBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: zstd: %w", path, err)
	}
	return &zstdBlob{path: path, f: f, dec: dec, size: -1}, nil
}

func (z *zstdBlob) Name() string { return z.path }

func (z *zstdBlob) Size() int64 {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.size
}

// remember appends freshly decoded bytes to the recent window.
func (z *zstdBlob) remember(b []byte) {
	if len(b) >= zstdRecent {
		z.recent = append(z.recent[:0], b[len(b)-zstdRecent:]...)
		return
	}
	if over := len(z.recent) + len(b) - zstdRecent; over > 0 {
		z.recent = z.recent[:copy(z.recent, z.recent[over:])]
	}
	z.recent = append(z.recent, b...)
}

// decode reads len(p) bytes from the stream at pos; a short read means the stream ended.
func (z *zstdBlob) decode(p []byte) (int, error) {
	n, err := io.ReadFull(z.dec, p)
	z.remember(p[:n])
	z.pos += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		z.size = z.pos
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("%s: zstd: %w", z.path, err)
	}
	return n, nil
}

// seek makes off readable: rewinds when off is before the recent window, skips forward when past pos.
func (z *zstdBlob) seek(off int64) error {
	if z.done {
		return fmt.Errorf("%s: %w", z.path, errClosed)
	}
	if off < z.pos-int64(len(z.recent)) {
		if _, err := z.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", z.path, err)
		}
		if err := z.dec.Reset(z.f); err != nil {
			return fmt.Errorf("%s: zstd: %w", z.path, err)
		}
		z.pos, z.recent = 0, z.recent[:0]
		z.restarts++
	}
	var buf []byte
	for off > z.pos {
		if buf == nil {
			buf = make([]byte, 64<<10)
		}
		n, err := z.decode(buf[:min(int64(len(buf)), off-z.pos)])
		if err != nil {
			return err
		}
		if n == 0 {
			return io.EOF
		}
	}
	return nil
}

// readAt fills p from off: first from the recent window, then from the stream.
func (z *zstdBlob) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", z.path)
	}
	if err := z.seek(off); err != nil {
		return 0, err
	}
	n := 0
	if start := z.pos - int64(len(z.recent)); off < z.pos {
		n = copy(p, z.recent[off-start:])
	}
	if n == len(p) {
		return n, nil
	}
	k, err := z.decode(p[n:])
	return n + k, err
}

// near reports whether off is in the recent window or at most 1 MiB ahead: reading it costs no rewind
// and skips little.
func (z *zstdBlob) near(off int64) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return off >= z.pos-int64(len(z.recent)) && off <= z.pos+zstdRecent
}

func (z *zstdBlob) ReadAt(p []byte, off int64) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.readAt(p, off)
}

func (z *zstdBlob) outside(off, n int64) error {
	return fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes decompressed)", z.path, off, off+n, z.size)
}

// View copies n bytes at off. Buffers past 64 MiB grow with the data actually decoded, so a header
// that lies about a length cannot make us allocate more than the stream holds (times two).
func (z *zstdBlob) View(off, n int64) ([]byte, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%s: bad range [%d, %d)", z.path, off, off+n)
	}
	if z.size >= 0 && (off > z.size || n > z.size-off) {
		return nil, z.outside(off, n)
	}
	if n <= 64<<20 {
		got := make([]byte, n)
		k, err := z.readAt(got, off)
		if err == io.EOF || (err == nil && int64(k) < n) {
			return nil, z.outside(off, n)
		}
		if err != nil {
			return nil, err
		}
		return got, nil
	}
	var out []byte
	chunk := make([]byte, 16<<20)
	for int64(len(out)) < n {
		c := chunk[:min(int64(len(chunk)), n-int64(len(out)))]
		k, err := z.readAt(c, off+int64(len(out)))
		out = append(out, c[:k]...)
		if err == io.EOF {
			return nil, z.outside(off, n)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// verifyEnd decodes the rest of the stream, so that a cut file or a damaged frame (its xxhash checksum is
// checked at the frame's end) is an error even when every tensor was read before the end.
func (z *zstdBlob) verifyEnd() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.done {
		return fmt.Errorf("%s: %w", z.path, errClosed)
	}
	n, err := io.Copy(io.Discard, z.dec)
	z.pos += n
	z.recent = z.recent[:0]
	if err != nil {
		return fmt.Errorf("%s: zstd stream damaged or cut short after %d decompressed bytes: %w", z.path, z.pos, err)
	}
	z.size = z.pos
	return nil
}

func (z *zstdBlob) Close() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.done {
		return nil
	}
	z.done = true
	z.dec.Close()
	return z.f.Close()
}

// CompressZstd streams src into dst as one zstd stream (used by tests and `kvc synth`).
func CompressZstd(dst io.Writer, src io.Reader) error {
	enc, err := zstd.NewWriter(dst, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, src); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// CompressFileZstd writes path+".zst" from path.
func CompressFileZstd(path string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(path + ".zst")
	if err != nil {
		return "", err
	}
	if err := CompressZstd(out, in); err != nil {
		out.Close()
		return "", fmt.Errorf("%s: %w", out.Name(), err)
	}
	return out.Name(), out.Close()
}
