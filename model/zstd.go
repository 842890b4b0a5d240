package model

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A .zst checkpoint file is read as one forward stream, never mapped and never decompressed to disk.
// Memory: the decoder's window (the frame's window size, 8 MiB for klauspost's default encoder level,
// capped at 1 GiB here) plus one copy of the tensor being read. Reading tensors in file order costs one
// pass; asking for an earlier offset restarts the stream from the file's beginning.

func isZstd(path string) bool { return strings.HasSuffix(path, ".zst") }

// zstdMaxWindow bounds the decoder window a hostile frame can demand.
const zstdMaxWindow = 1 << 30

type zstdBlob struct {
	path string
	mu   sync.Mutex
	f    *os.File
	dec  *zstd.Decoder
	pos  int64 // decompressed offset of the stream
	size int64 // -1 until the end has been seen
	done bool
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

// seek moves the stream to off, restarting from the beginning when off is behind.
func (z *zstdBlob) seek(off int64) error {
	if z.done {
		return fmt.Errorf("%s: %w", z.path, errClosed)
	}
	if off < z.pos {
		if _, err := z.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%s: %w", z.path, err)
		}
		if err := z.dec.Reset(z.f); err != nil {
			return fmt.Errorf("%s: zstd: %w", z.path, err)
		}
		z.pos = 0
	}
	if off > z.pos {
		n, err := io.CopyN(io.Discard, z.dec, off-z.pos)
		z.pos += n
		if err == io.EOF {
			z.size = z.pos
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("%s: zstd: %w", z.path, err)
		}
	}
	return nil
}

func (z *zstdBlob) ReadAt(p []byte, off int64) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset", z.path)
	}
	if err := z.seek(off); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(z.dec, p)
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

// View copies n bytes at off. Buffers past 64 MiB grow with the data actually decoded, so a header
// that lies about a length cannot make us allocate more than the stream holds (times two).
func (z *zstdBlob) View(off, n int64) ([]byte, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("%s: bad range [%d, %d)", z.path, off, off+n)
	}
	if z.size >= 0 && (off > z.size || n > z.size-off) {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes decompressed)", z.path, off, off+n, z.size)
	}
	if err := z.seek(off); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes decompressed)", z.path, off, off+n, z.size)
		}
		return nil, err
	}
	var got []byte
	if n <= 64<<20 {
		got = make([]byte, n)
		k, err := io.ReadFull(z.dec, got)
		z.pos += int64(k)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				z.size = z.pos
				return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes decompressed)", z.path, off, off+n, z.size)
			}
			return nil, fmt.Errorf("%s: zstd: %w", z.path, err)
		}
		return got, nil
	}
	var buf bytes.Buffer
	k, err := io.CopyN(&buf, z.dec, n)
	z.pos += k
	if err != nil {
		if err == io.EOF {
			z.size = z.pos
			return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes decompressed)", z.path, off, off+n, z.size)
		}
		return nil, fmt.Errorf("%s: zstd: %w", z.path, err)
	}
	return buf.Bytes(), nil
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
