package main

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kvc/kvmap"
)

// The viewer is tested as a person uses it: the built binary, a real X server (Xvfb), keys through the
// X server (xdotool), and the window captured from the screen (ImageMagick's import). ./build.sh installs
// all three; KVC_REQUIRE_VULKAN=1 (CI) fails rather than skips without them.

func sharedModels(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "models"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "stories260K", "stories260K.bin")); err != nil {
		t.Fatalf("stories260K not found under %s", p)
	}
	return p
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KVC_REQUIRE_VULKAN") == "1" {
				t.Fatalf("%s is not installed: ./build.sh installs it (packages xvfb, xdotool, imagemagick)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

var viewerBin struct {
	sync.Once
	path string
	err  error
}

// buildViewer builds kvc-view once for the package's tests.
func buildViewer(t *testing.T) string {
	t.Helper()
	viewerBin.Do(func() {
		dir, err := os.MkdirTemp("", "kvc-view-test")
		if err != nil {
			viewerBin.err = err
			return
		}
		viewerBin.path = filepath.Join(dir, "kvc-view")
		if out, err := exec.Command("go", "build", "-o", viewerBin.path, ".").CombinedOutput(); err != nil {
			viewerBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if viewerBin.err != nil {
		t.Fatal(viewerBin.err)
	}
	return viewerBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if viewerBin.path != "" {
		os.RemoveAll(filepath.Dir(viewerBin.path))
	}
	os.Exit(code)
}

// viewArgs are the README's kvcompress settings.
func viewArgs(extra ...string) []string {
	return append([]string{"--model", "stories260K", "--device", "cpu", "--prompt", "Once upon a time", "--temp", "0",
		"--kv-policy", "kvcompress", "--kv-rate", "4", "--kv-protect", "8"}, extra...)
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	img, err := kvmap.ReadPNG(path)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPNGIsRunsPicture: `kvc-view --png F --steps N` draws the picture `kvc run -n N --kv-map` draws (the
// README's, which cmd/kvc's tests check against the engine's cache state).
func TestPNGIsRunsPicture(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	out := filepath.Join(t.TempDir(), "map.png")
	cmd := exec.Command(buildViewer(t), viewArgs("--png", out, "--steps", "200")...)
	cmd.Env = append(os.Environ(), "DISPLAY=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	got, want := readPNG(t, out), readPNG(t, filepath.Join("..", "..", "docs", "kvmap-kvcompress.png"))
	if n, d := kvmap.Diff(got, want, 0); n != 0 {
		t.Fatalf("kvc-view --png differs from kvc run --kv-map's picture (docs/kvmap-kvcompress.png) in %d pixels (largest difference %d); if kvc run's picture changed on purpose, regenerate it: KVC_UPDATE_GOLDEN=1 go test ./cmd/kvc -run KVMapGolden", n, d)
	}
}

func TestNoDisplay(t *testing.T) {
	bin := buildViewer(t)
	for _, display := range []string{"", ":1999"} { // unset, and a display no server answers
		cmd := exec.Command(bin, viewArgs()...)
		cmd.Env = append(os.Environ(), "DISPLAY="+display, "WAYLAND_DISPLAY=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("DISPLAY=%q: %v, want exit status 1", display, err)
		}
		if msg := strings.TrimSpace(stderr.String()); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "no display") || !strings.Contains(msg, "--png") || stdout.Len() > 0 {
			t.Fatalf("DISPLAY=%q: want one line naming --png on stderr, got %q (stdout %q)", display, msg, stdout.String())
		}
	}
}

// startXvfb starts a private X server and returns its DISPLAY.
func startXvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	x := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	x.ExtraFiles = []*os.File{w}
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { x.Process.Kill(); x.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if _, err := strconv.Atoi(n); err != nil {
			t.Fatalf("Xvfb did not report a display number (%q)", n)
		}
		return ":" + n
	case <-time.After(20 * time.Second):
		t.Fatal("Xvfb did not start in 20 s")
	}
	return ""
}

// viewer is a running kvc-view whose stdout lines the test waits on.
type viewer struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	seen  []string
}

func (v *viewer) waitFor(prefix string) string {
	v.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-v.lines:
			if !ok {
				v.t.Fatalf("kvc-view exited while waiting for %q; it printed:\n%s", prefix, strings.Join(v.seen, "\n"))
			}
			v.seen = append(v.seen, l)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			v.t.Fatalf("no %q from kvc-view in 60 s; it printed:\n%s", prefix, strings.Join(v.seen, "\n"))
		}
	}
}

func xdotool(t *testing.T, display string, args ...string) string {
	t.Helper()
	cmd := exec.Command("xdotool", args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xdotool %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// capture takes the window's pixels from the screen, cropped to size (the picture at the top left).
func capture(t *testing.T, display, win string, size image.Point) *image.RGBA {
	t.Helper()
	p := filepath.Join(t.TempDir(), "capture.png")
	cmd := exec.Command("import", "-window", win, p)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	img := readPNG(t, p)
	if b := img.Bounds(); b.Dx() < size.X || b.Dy() < size.Y {
		t.Fatalf("window is %v, smaller than the picture %v", b.Size(), size)
	}
	out := image.NewRGBA(image.Rectangle{Max: size})
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

// sameOnScreen compares the window's top left with want (after prep), capturing again for up to 2 s: the
// X server may draw a presented frame a moment after kvc-view has presented it.
func sameOnScreen(t *testing.T, display, win string, want image.Image, prep func(image.Image) *image.RGBA) (pixels, largest int) {
	t.Helper()
	for try := 0; ; try++ {
		pixels, largest = kvmap.Diff(prep(capture(t, display, win, want.Bounds().Size())), want, 0)
		if pixels == 0 || try == 10 {
			return pixels, largest
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// withoutStatus blanks the status line (running/paused and the keys), the one line the window adds.
func withoutStatus(img image.Image) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	draw.Draw(out, kvmap.StatusRect(out.Bounds().Dx()), image.Black, image.Point{}, draw.Src)
	return out
}

func TestWindowUnderXvfb(t *testing.T) {
	requireTools(t, "Xvfb", "xdotool", "import")
	t.Setenv("KVC_MODELS", sharedModels(t))
	bin := buildViewer(t)
	dir := t.TempDir()
	display := startXvfb(t)

	// The headless picture after 24 tokens, to compare with the window paused there.
	ref := filepath.Join(dir, "ref.png")
	if b, err := exec.Command(bin, viewArgs("--png", ref, "--steps", "24")...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}

	cmd := exec.Command(bin, viewArgs("-n", "40", "--steps", "24", "--save-dir", dir, "--scale", "1")...)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	v := &viewer{t: t, cmd: cmd, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			v.lines <- sc.Text()
		}
		close(v.lines)
	}()
	defer cmd.Process.Kill()

	// It renders frames while generating and pauses at --steps.
	v.waitFor("kvc-view: showing 24 tokens, paused")
	win := xdotool(t, display, "search", "--name", "^kvc-view")
	if i := strings.IndexByte(win, '\n'); i >= 0 {
		win = win[:i]
	}
	want := readPNG(t, ref)
	if n, d := sameOnScreen(t, display, win, withoutStatus(want), withoutStatus); n != 0 {
		t.Fatalf("the window paused at 24 tokens differs from kvc-view --png --steps 24 in %d pixels (largest difference %d)", n, d)
	}

	// Right arrow: one step. s: save what is shown, which is what the window shows.
	xdotool(t, display, "key", "--window", win, "Right")
	v.waitFor("kvc-view: showing 25 tokens, paused")
	xdotool(t, display, "key", "--window", win, "s")
	saved := strings.TrimPrefix(v.waitFor("kvc-view: saved "), "kvc-view: saved ")
	shot := readPNG(t, saved)
	if n, d := sameOnScreen(t, display, win, shot, func(img image.Image) *image.RGBA { return img.(*image.RGBA) }); n != 0 {
		t.Fatalf("the window differs from the PNG its s key saved in %d pixels (largest difference %d)", n, d)
	}

	// + raises the budget (rate 4 -> 3), p moves to the next policy, space runs to the end.
	xdotool(t, display, "key", "--window", win, "plus")
	v.waitFor("kvc-view: policy kvcompress, budget rate 3x")
	xdotool(t, display, "key", "--window", win, "minus")
	v.waitFor("kvc-view: policy kvcompress, budget rate 4x")
	xdotool(t, display, "key", "--window", win, "p")
	v.waitFor("kvc-view: policy uniform, budget rate 4x")
	xdotool(t, display, "key", "--window", win, "space")
	v.waitFor("kvc-view: showing 40 tokens, done (length) (uniform")

	// The window can be resized and still shows the picture (shrunk to fit).
	xdotool(t, display, "windowsize", "--sync", win, "400", "300")
	xdotool(t, display, "key", "--window", win, "q")
	done := make(chan error, 1)
	go func() {
		for l := range v.lines { // validation messages come at exit
			v.seen = append(v.seen, l)
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kvc-view: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("kvc-view did not quit on q")
	}
	if strings.Contains(strings.Join(v.seen, "\n"), "vulkan validation") {
		t.Fatalf("validation errors:\n%s", strings.Join(v.seen, "\n"))
	}
}

// TestKvcHasNoWindowSystem: GLFW (and with it X11) stays in kvc-view; kvc runs headless.
func TestKvcHasNoWindowSystem(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "kvc/cmd/kvc").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "glfw") {
			t.Fatalf("kvc depends on %s", dep)
		}
	}
	if !strings.Contains(string(out), "kvc/kvmap") {
		t.Fatal("kvc should draw its --kv-map through kvc/kvmap")
	}
}
