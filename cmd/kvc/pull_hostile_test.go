package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// plainHub serves one ORG/REPO whose files have no published sha256 (not LFS), each with an ETag, as a
// hostile or changing mirror might.
type plainHub struct {
	repo    string
	files   map[string][]byte // listed path -> content
	etag    map[string]string
	onServe func(name string) // called before a file's body is sent
	gets    atomic.Int32
	ranges  atomic.Int32
}

func (h *plainHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/models/"+h.repo+"/tree/main") {
		var out []hfFile
		for name, b := range h.files {
			out = append(out, hfFile{Type: "file", Path: name, Size: int64(len(b))})
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/"+h.repo+"/resolve/main/")
	b, found := h.files[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	h.gets.Add(1)
	if r.Header.Get("Range") != "" {
		h.ranges.Add(1)
	}
	if h.onServe != nil {
		h.onServe(name)
	}
	if t := h.etag[name]; t != "" {
		w.Header().Set("ETag", t)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b)) // honours Range and If-Range
}

// A listing naming ../x or sub/../../x, and model names with .., write nothing outside the model's folder.
func TestPullRefusesPathsOutsideTheCache(t *testing.T) {
	root := t.TempDir()
	cache := filepath.Join(root, "cache", "models")
	for _, bad := range []string{"../x.json", "sub/../../y.json", "/abs.json", `..\win.json`, "./config2.json", "a//b.json"} {
		h := &plainHub{repo: "evil/x", files: map[string][]byte{"config.json": []byte("{}"), bad: []byte("pwned")}}
		srv := httptest.NewServer(h)
		t.Setenv("KVC_HF_ENDPOINT", srv.URL)
		t.Setenv("KVC_CACHE", cache)
		t.Setenv("KVC_MODELS", "")
		_, err := pullModel("evil/x", "", io.Discard, true)
		if err == nil || !strings.Contains(err.Error(), "not a plain path") {
			t.Errorf("listing with %q: err %v, want a refusal", bad, err)
		}
		// --model ORG/REPO pulls automatically: the same refusal.
		if _, err := resolveModel("evil/x", true, io.Discard); err == nil {
			t.Errorf("resolveModel pulled a listing with %q", bad)
		}
		srv.Close()
	}
	for _, name := range []string{"evil/..", "../evil", "a/../../etc", "evil/x/../../..", "x/./y"} {
		if _, err := resolveModel(name, true, io.Discard); err == nil {
			t.Errorf("model name %q accepted", name)
		}
		if _, err := pullModel(name, "", io.Discard, true); err == nil {
			t.Errorf("pull %q accepted", name)
		}
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file written: %s", p)
		}
		return nil
	})
}

// A .part of a file without a published sha256 is resumed only if the upstream file is the same version
// (its ETag); a changed file, or a .part of unknown version, is downloaded again from the start.
func TestPullPartWithoutChecksumChecksUpstream(t *testing.T) {
	v1, v2 := randBytes(40000, 11), randBytes(40000, 12)
	h := &plainHub{repo: "org/m", files: map[string][]byte{"model.gguf": v2}, etag: map[string]string{"model.gguf": `"v2"`}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("KVC_HF_ENDPOINT", srv.URL)
	t.Setenv("KVC_CACHE", t.TempDir())
	t.Setenv("KVC_MODELS", "")
	dst := filepath.Join(cacheDir(), "org", "m", "model.gguf")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	for _, c := range []struct {
		name, tag string
		part      []byte
		ranged    bool
	}{
		{"changed upstream", `"v1"`, v1[:15000], true}, // If-Range fails: the whole new file comes back
		{"no recorded version", "", v1[:15000], false}, // cannot be checked: start again
		{"same version", `"v2"`, v2[:15000], true},     // resumed
	} {
		os.Remove(dst)
		os.WriteFile(dst+".part", c.part, 0o644)
		os.Remove(dst + ".part.etag")
		if c.tag != "" {
			os.WriteFile(dst+".part.etag", []byte(c.tag), 0o644)
		}
		h.ranges.Store(0)
		if _, err := pullModel("org/m", "", io.Discard, true); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, v2) {
			t.Errorf("%s: the file differs from the upstream version", c.name)
		}
		if (h.ranges.Load() > 0) != c.ranged {
			t.Errorf("%s: %d range requests", c.name, h.ranges.Load())
		}
		if _, err := os.Stat(dst + ".part.etag"); err == nil {
			t.Errorf("%s: the version file was left behind", c.name)
		}
	}
}

// The .part vanishing during the download is an error, not a nil dereference.
func TestPullPartRemovedMidDownload(t *testing.T) {
	h := &plainHub{repo: "org/m", files: map[string][]byte{"model.gguf": randBytes(5000, 13)}}
	h.onServe = func(string) { os.Remove(filepath.Join(cacheDir(), "org", "m", "model.gguf.part")) }
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("KVC_HF_ENDPOINT", srv.URL)
	t.Setenv("KVC_CACHE", t.TempDir())
	t.Setenv("KVC_MODELS", "")
	_, err := pullModel("org/m", "", io.Discard, true)
	if err == nil || !strings.Contains(err.Error(), "model.gguf") {
		t.Fatalf("err %v, want one naming the file", err)
	}
}
