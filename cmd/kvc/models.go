package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Where models are looked up by name: $KVC_MODELS (a list like $PATH), then the cache.
func modelDirs() []string {
	var dirs []string
	if v := os.Getenv("KVC_MODELS"); v != "" {
		dirs = append(dirs, filepath.SplitList(v)...)
	}
	return append(dirs, cacheDir())
}

func cacheDir() string {
	if v := os.Getenv("KVC_CACHE"); v != "" {
		return v
	}
	if v := os.Getenv("XDG_CACHE_HOME"); v != "" {
		return filepath.Join(v, "kvc", "models")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kvc", "models")
	}
	return filepath.Join(home, ".cache", "kvc", "models")
}

// knownModels are names kvc can pull without an ORG/REPO: repository, folder in it, files.
var knownModels = map[string]struct {
	Repo, Dir string
	Files     []string
}{
	"stories260K": {"karpathy/tinyllamas", "stories260K", []string{"stories260K.bin", "tok512.bin", "tok512.model"}},
	"stories15M":  {"karpathy/tinyllamas", "", []string{"stories15M.bin"}},
	"stories42M":  {"karpathy/tinyllamas", "", []string{"stories42M.bin"}},
	"stories110M": {"karpathy/tinyllamas", "", []string{"stories110M.bin"}},
}

// resolveModel turns --model into a path: an existing file or folder, else a name under a model dir,
// else (when pull is set) a download into the cache.
func resolveModel(name string, pull bool, stderr io.Writer) (string, error) {
	if name == "" {
		return "", errors.New("no model given: use --model PATH or a name (e.g. --model stories260K)")
	}
	if _, err := os.Stat(name); err == nil {
		return modelInDir(name), nil
	}
	if !filepath.IsAbs(name) && !strings.HasPrefix(name, ".") {
		if !localName(name) {
			return "", fmt.Errorf("model %q: a model name may not contain \"..\" or empty parts (give a path to a file outside the model folders)", name)
		}
		for _, d := range modelDirs() {
			p := filepath.Join(d, filepath.FromSlash(name))
			if _, err := os.Stat(p); err == nil {
				return modelInDir(p), nil
			}
		}
	}
	if !pull {
		return "", fmt.Errorf("model %q not found as a path, nor under %s; `kvc pull %s` downloads it",
			name, strings.Join(modelDirs(), ", "), name)
	}
	fmt.Fprintf(stderr, "kvc: model %q not found locally; pulling it into %s\n", name, cacheDir())
	return pullModel(name, "", stderr, false)
}

// modelInDir picks the checkpoint in a folder that is not a Hugging Face folder (no config.json): the file
// named after the folder (stories260K/stories260K.bin), else its only .gguf or .bin file.
func modelInDir(p string) string {
	st, err := os.Stat(p)
	if err != nil || !st.IsDir() {
		return p
	}
	if _, err := os.Stat(filepath.Join(p, "config.json")); err == nil {
		return p
	}
	base := filepath.Base(p)
	for _, ext := range []string{".bin", ".gguf", ".bin.zst", ".gguf.zst"} {
		if f := filepath.Join(p, base+ext); fileExists(f) {
			return f
		}
	}
	var cands []string
	ents, _ := os.ReadDir(p)
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".gguf") || (strings.HasSuffix(n, ".bin") && !strings.HasPrefix(n, "tok")) {
			cands = append(cands, filepath.Join(p, n))
		}
	}
	if len(cands) == 1 {
		return cands[0]
	}
	return p
}

// localName reports whether a slash-separated name stays inside the folder it is joined to: relative, no
// "." or ".." parts, no empty parts, no backslashes (a separator on Windows).
func localName(name string) bool {
	if name == "" || strings.Contains(name, "\\") || path.IsAbs(name) {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(name))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func hfEndpoint() string {
	if v := os.Getenv("KVC_HF_ENDPOINT"); v != "" {
		return strings.TrimRight(v, "/")
	}
	if v := os.Getenv("HF_ENDPOINT"); v != "" {
		return strings.TrimRight(v, "/")
	}
	return "https://huggingface.co"
}

// hfFile is one entry of the Hub's tree listing.
type hfFile struct {
	Type string `json:"type"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	LFS  *struct {
		Oid  string `json:"oid"` // sha256 of the content
		Size int64  `json:"size"`
	} `json:"lfs"`
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// pullModel downloads a known name or an ORG/REPO into the cache and returns the local folder.
// include (a glob on file names) narrows an ORG/REPO download; without it, weights, configs and tokenizers.
func pullModel(name, include string, stderr io.Writer, quiet bool) (string, error) {
	var repo, dir string
	var files []string
	if k, ok := knownModels[name]; ok {
		repo, dir, files = k.Repo, k.Dir, k.Files
	} else if repoName.MatchString(name) && localName(name) {
		repo = name
	} else {
		known := make([]string, 0, len(knownModels))
		for k := range knownModels {
			known = append(known, k)
		}
		return "", fmt.Errorf("cannot pull %q: not a known model name (%s) nor ORG/REPO", name, strings.Join(known, ", "))
	}
	listing, err := hfTree(repo, dir)
	if err != nil {
		return "", err
	}
	byPath := map[string]hfFile{}
	for _, f := range listing {
		byPath[f.Path] = f
	}
	var todo []hfFile
	if files != nil {
		for _, f := range files {
			p := path.Join(dir, f)
			e, ok := byPath[p]
			if !ok {
				return "", fmt.Errorf("pull %s: %s is not in the repository %s", name, p, repo)
			}
			todo = append(todo, e)
		}
	} else {
		for _, f := range listing {
			if f.Type != "file" || !wantFile(f.Path, include) {
				continue
			}
			todo = append(todo, f)
		}
		if len(todo) == 0 {
			return "", fmt.Errorf("pull %s: no model files in the repository listing", name)
		}
	}
	// The listing comes from the network: a name like ../x must not write outside the model's folder, and
	// every name is checked before anything is written.
	rels := make([]string, len(todo))
	for i, f := range todo {
		rel, ok := strings.CutPrefix(f.Path, dir+"/")
		if dir == "" {
			rel, ok = f.Path, true
		}
		if !ok || !localName(rel) {
			return "", fmt.Errorf("pull %s: the repository listing names file %q, which is not a plain path inside %s; refusing the pull", name, f.Path, path.Join(repo, dir))
		}
		rels[i] = rel
	}
	local := filepath.Join(cacheDir(), filepath.FromSlash(name))
	for i, f := range todo {
		if err := download(repo, f, filepath.Join(local, filepath.FromSlash(rels[i])), stderr, quiet); err != nil {
			return "", err
		}
	}
	return local, nil
}

func wantFile(p, include string) bool {
	base := path.Base(p)
	if include != "" {
		ok, _ := path.Match(include, base)
		return ok
	}
	for _, suf := range []string{".safetensors", ".json", ".gguf", ".bin", ".model", ".jinja"} {
		if strings.HasSuffix(base, suf) {
			return true
		}
	}
	return false
}

var httpClient = &http.Client{Timeout: 0}

func hfTree(repo, dir string) ([]hfFile, error) {
	u := fmt.Sprintf("%s/api/models/%s/tree/main", hfEndpoint(), repo)
	if dir != "" {
		u += "/" + dir
	}
	u += "?recursive=1"
	resp, err := httpClient.Get(u)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", repo, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing %s: %s (%s)", repo, resp.Status, u)
	}
	var out []hfFile
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("listing %s: bad JSON from %s: %w", repo, u, err)
	}
	return out, nil
}

// download fetches one file, resuming a .part left by an earlier attempt, and checks its sha256 where the
// Hub publishes one (LFS files).
func download(repo string, f hfFile, dst string, stderr io.Writer, quiet bool) error {
	want := ""
	size := f.Size
	if f.LFS != nil {
		want, size = f.LFS.Oid, f.LFS.Size
	}
	if st, err := os.Stat(dst); err == nil && st.Size() == size {
		if want == "" || fileSHA256(dst) == want {
			return nil // already complete
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	part := dst + ".part"
	tagFile := part + ".etag" // the upstream version the .part holds the start of
	out, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	tag := ""
	if b, err := os.ReadFile(tagFile); err == nil {
		tag = string(b)
	}
	// Resume only what can be checked: against the published sha256 at the end, or the upstream ETag now.
	if have > size || have > 0 && want == "" && tag == "" {
		if err := out.Truncate(0); err != nil {
			return err
		}
		have, _ = out.Seek(0, io.SeekStart)
	}
	u := fmt.Sprintf("%s/%s/resolve/main/%s", hfEndpoint(), repo, f.Path)
	for attempt := 0; have < size; attempt++ {
		r, err := fetchRange(u, have, tag, out, size, f.Path, stderr, quiet)
		if r.etag != "" && r.etag != tag {
			tag = r.etag
			if err := os.WriteFile(tagFile, []byte(tag), 0o644); err != nil {
				return err
			}
		}
		if r.restarted {
			fmt.Fprintf(stderr, "kvc: %s changed upstream since the partial download; downloading it again\n", f.Path)
			have = 0
		}
		have += r.n
		if err == nil {
			break
		}
		if attempt >= 4 || r.n == 0 && attempt >= 1 {
			return fmt.Errorf("downloading %s: %w (%d of %d bytes kept in %s; run the command again to resume)", f.Path, err, have, size, part)
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err := out.Close(); err != nil {
		return err
	}
	st, err := os.Stat(part)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", f.Path, err)
	}
	if st.Size() != size {
		return fmt.Errorf("downloading %s: got %d bytes, expected %d", f.Path, st.Size(), size)
	}
	if want != "" {
		if got := fileSHA256(part); got != want {
			os.Remove(part)
			os.Remove(tagFile)
			return fmt.Errorf("downloading %s: sha256 %s does not match the published %s; the partial file was removed", f.Path, got, want)
		}
	}
	os.Remove(tagFile)
	return os.Rename(part, dst)
}

// fetched is what one fetchRange call did.
type fetched struct {
	n         int64  // bytes written
	etag      string // the upstream version's ETag, when the server sends one
	restarted bool   // the upstream file changed (If-Range failed): out was truncated and n counts from 0
}

// fetchRange appends the file at u from byte from to out. With ifRange (an ETag), the server sends the rest
// only if the file is still that version, else the whole new file, which replaces what out held.
func fetchRange(u string, from int64, ifRange string, out *os.File, size int64, label string, stderr io.Writer, quiet bool) (fetched, error) {
	var r fetched
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return r, err
	}
	if from > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", from))
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	r.etag = resp.Header.Get("ETag")
	if strings.HasPrefix(r.etag, "W/") {
		r.etag = "" // a weak tag cannot validate a byte range
	}
	switch {
	case from > 0 && resp.StatusCode == http.StatusPartialContent:
		var a, b, total int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); err == nil && (a != from || total != size) {
			return r, fmt.Errorf("the server sent bytes %d-%d of %d, asked for %d- of %d: the upstream file changed; remove %s and pull again",
				a, b, total, from, size, out.Name())
		}
	case from == 0 && resp.StatusCode == http.StatusOK:
	case from > 0 && resp.StatusCode == http.StatusOK && ifRange != "":
		if err := out.Truncate(0); err != nil {
			return r, err
		}
		if _, err := out.Seek(0, io.SeekStart); err != nil {
			return r, err
		}
		r.restarted, from = true, 0
	case from > 0 && resp.StatusCode == http.StatusOK:
		return r, fmt.Errorf("server ignored the resume request (HTTP 200 for a range)")
	default:
		return r, fmt.Errorf("%s", resp.Status)
	}
	var w io.Writer = out
	if !quiet && isTerminal(stderr) {
		bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(stderr), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(label), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowCount(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
		_ = bar.Set64(from)
		w = io.MultiWriter(out, bar)
	}
	r.n, err = io.Copy(w, resp.Body)
	return r, err
}

func fileSHA256(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// isTerminal reports whether w is a character device (a terminal), for progress bars.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
