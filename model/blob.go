package model

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// blob is the bytes of one checkpoint file: mmap'd when plain, a zstd stream when compressed.
type blob interface {
	io.ReaderAt
	// Size is the content length, or -1 when a compressed stream does not say.
	Size() int64
	// View returns n bytes at off: a view into the mapping (mmap) or a fresh copy (stream).
	View(off, n int64) ([]byte, error)
	Name() string
	Close() error
}

// mmapBlob maps a whole file read-only; views are slices of the mapping.
type mmapBlob struct {
	path string
	f    *os.File // header and scale reads use pread: no page faults or readahead over the mapping
	data []byte
	mu   sync.RWMutex
	done bool
}

func openMmap(path string) (*mmapBlob, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	b := &mmapBlob{path: path, f: f}
	if st.Size() == 0 {
		return b, nil
	}
	if int64(int(st.Size())) != st.Size() {
		f.Close()
		return nil, fmt.Errorf("%s: file too large to map (%d bytes)", path, st.Size())
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	b.data = data
	return b, nil
}

func (b *mmapBlob) Name() string { return b.path }
func (b *mmapBlob) Size() int64  { return int64(len(b.data)) }

var errClosed = errors.New("checkpoint is closed")

func (b *mmapBlob) View(off, n int64) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.done {
		return nil, fmt.Errorf("%s: %w", b.path, errClosed)
	}
	if off < 0 || n < 0 || off > int64(len(b.data)) || n > int64(len(b.data))-off {
		return nil, fmt.Errorf("%s: range [%d, %d) outside the file (%d bytes)", b.path, off, off+n, len(b.data))
	}
	return b.data[off : off+n : off+n], nil
}

func (b *mmapBlob) ReadAt(p []byte, off int64) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.done {
		return 0, fmt.Errorf("%s: %w", b.path, errClosed)
	}
	if off < 0 || off >= int64(len(b.data)) {
		return 0, io.EOF
	}
	if b.f == nil {
		n := copy(p, b.data[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return b.f.ReadAt(p, off)
}

func (b *mmapBlob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil
	}
	b.done = true
	var err error
	if b.data != nil {
		err = syscall.Munmap(b.data)
		b.data = nil
	}
	if b.f != nil {
		if cerr := b.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// fileKind names a non-regular file's type for error messages.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "mode " + m.String()
}

// blobReader reads a blob sequentially from an offset (headers are parsed through it).
type blobReader struct {
	b   blob
	off int64
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.b.ReadAt(p, r.off)
	r.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// remaining is how many bytes are left after off, or -1 when unknown (stream of unknown size).
func remaining(b blob, off int64) int64 {
	if b.Size() < 0 {
		return -1
	}
	if off > b.Size() {
		return 0
	}
	return b.Size() - off
}

// openBlob opens a plain file by mmap or a .zst file as a stream.
func openBlob(path string) (blob, error) {
	// Opening a FIFO or a device would block or read forever: only regular files are checkpoint files.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s); a checkpoint is a file or a folder", path, fileKind(st.Mode()))
	}
	if isZstd(path) {
		return openZstd(path)
	}
	return openMmap(path)
}
