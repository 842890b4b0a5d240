package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHub serves a Hub-like tree listing and files with Range support. cut > 0 makes the first
// full-file response stop after cut bytes, as a dropped connection would.
type fakeHub struct {
	files map[string][]byte // repo path -> content
	sha   map[string]string // override the published sha256
	cut   int64
	cuts  atomic.Int32
	gets  atomic.Int32
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/models/karpathy/tinyllamas/tree/main") {
		dir := strings.TrimPrefix(strings.TrimPrefix(p, "/api/models/karpathy/tinyllamas/tree/main"), "/")
		var out []hfFile
		for name, b := range h.files {
			if dir != "" && !strings.HasPrefix(name, dir+"/") {
				continue
			}
			sum := sha256.Sum256(b)
			f := hfFile{Type: "file", Path: name, Size: int64(len(b))}
			f.LFS = &struct {
				Oid  string `json:"oid"`
				Size int64  `json:"size"`
			}{hex.EncodeToString(sum[:]), int64(len(b))}
			if s, ok := h.sha[name]; ok {
				f.LFS.Oid = s
			}
			out = append(out, f)
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	name := strings.TrimPrefix(p, "/karpathy/tinyllamas/resolve/main/")
	b, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.gets.Add(1)
	if h.cut > 0 && r.Header.Get("Range") == "" && h.cuts.Add(1) == 1 {
		w.Header().Set("Content-Length", "99999999")
		w.WriteHeader(http.StatusOK)
		w.Write(b[:h.cut])
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newHub(t *testing.T, h *fakeHub) {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("KVC_HF_ENDPOINT", srv.URL)
	t.Setenv("KVC_CACHE", t.TempDir())
	t.Setenv("KVC_MODELS", "")
}

func TestPullKnownModel(t *testing.T) {
	h := &fakeHub{files: map[string][]byte{
		"stories260K/stories260K.bin": randBytes(100000, 1),
		"stories260K/tok512.bin":      randBytes(6000, 2),
		"stories260K/tok512.model":    randBytes(7000, 3),
		"stories15M.bin":              randBytes(10, 4),
	}}
	newHub(t, h)
	dir, err := pullModel("stories260K", "", io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"stories260K.bin", "tok512.bin", "tok512.model"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(got, h.files["stories260K/"+f]) {
			t.Fatalf("%s: content differs (err %v)", f, err)
		}
	}
	// A second pull finds everything complete and downloads nothing.
	before := h.gets.Load()
	if _, err := pullModel("stories260K", "", io.Discard, true); err != nil {
		t.Fatal(err)
	}
	if h.gets.Load() != before {
		t.Fatalf("re-pull downloaded again")
	}
	// resolveModel finds it by name in the cache.
	p, err := resolveModel("stories260K", false, io.Discard)
	if want := filepath.Join(dir, "stories260K.bin"); err != nil || p != want {
		t.Fatalf("resolveModel = %q, %v; want %q", p, err, want)
	}
}

func TestPullResumesAfterDroppedConnection(t *testing.T) {
	content := randBytes(300000, 5)
	h := &fakeHub{files: map[string][]byte{
		"stories260K/stories260K.bin": content,
		"stories260K/tok512.bin":      randBytes(600, 6),
		"stories260K/tok512.model":    randBytes(700, 7),
	}, cut: 123457}
	newHub(t, h)
	dir, err := pullModel("stories260K", "", io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "stories260K.bin"))
	if !bytes.Equal(got, content) {
		t.Fatalf("resumed download differs from the original")
	}
	if h.cuts.Load() == 0 {
		t.Fatalf("the connection was never dropped: test did not exercise resume")
	}
}

func TestPullResumesPartFile(t *testing.T) {
	content := randBytes(50000, 8)
	h := &fakeHub{files: map[string][]byte{"stories15M.bin": content}}
	newHub(t, h)
	dst := filepath.Join(cacheDir(), "stories15M", "stories15M.bin")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	os.WriteFile(dst+".part", content[:20000], 0o644)
	if _, err := pullModel("stories15M", "", io.Discard, true); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, content) {
		t.Fatalf("download resumed from .part differs")
	}
}

func TestPullRejectsBadChecksum(t *testing.T) {
	h := &fakeHub{files: map[string][]byte{"stories15M.bin": randBytes(1000, 9)},
		sha: map[string]string{"stories15M.bin": strings.Repeat("ab", 32)}}
	newHub(t, h)
	_, err := pullModel("stories15M", "", io.Discard, true)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("want a sha256 mismatch error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(cacheDir(), "stories15M", "stories15M.bin")); err == nil {
		t.Fatalf("a file with a bad checksum was kept")
	}
}

func TestResolveModelErrors(t *testing.T) {
	t.Setenv("KVC_CACHE", t.TempDir())
	t.Setenv("KVC_MODELS", t.TempDir())
	if _, err := resolveModel("no-such-model", false, io.Discard); err == nil || !strings.Contains(err.Error(), "kvc pull") {
		t.Fatalf("want a not-found error naming kvc pull, got %v", err)
	}
	if _, err := pullModel("not a name", "", io.Discard, true); err == nil {
		t.Fatalf("want an error for a bad name")
	}
}
