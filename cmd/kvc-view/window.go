package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"

	"kvc/engine/vk"
	"kvc/kvmap"
	"kvc/kvpages"
)

func init() { runtime.LockOSThread() } // GLFW's event loop must run on the main thread

// command is a key press for the generating goroutine.
type command int

const (
	cmdPause command = iota
	cmdStep
	cmdMore // budget up
	cmdLess // budget down
	cmdPolicy
	cmdQuit
)

// shown is one state of the session for the window to draw.
type shown struct {
	frame  kvmap.Frame
	tokens int
	state  string // "running", "paused", "done (length)", ...
}

const keyHelp = "space pause/resume, right: one step, +/- budget, p policy, s save PNG, q quit"

// errNoDisplay is the one line a machine without a display gets.
var errNoDisplay = errors.New("no display: cannot open a window (DISPLAY is unset or unreachable); use --png FILE [--steps N] to write the picture without one")

func runWindow(o *options) error {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errNoDisplay
	}
	if err := initGLFW(); err != nil {
		return fmt.Errorf("%w (%v)", errNoDisplay, err)
	}
	defer glfw.Terminate()
	scale := o.scale
	if scale == 0 {
		scale = 1
		if m := glfw.GetPrimaryMonitor(); m != nil {
			scale = pictureScale(m.GetContentScale())
		}
	}

	s, err := openSession(o)
	if err != nil {
		return err
	}
	defer s.Close()
	first, err := s.frame(status("paused", 0))
	if err != nil {
		return err
	}
	w, h := windowSize(first.View, s, scale)
	if m := glfw.GetPrimaryMonitor(); m != nil { // no larger than the screen
		if vm := m.GetVideoMode(); vm != nil {
			w, h = min(w, vm.Width), min(h, vm.Height)
		}
	}
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI)
	glfw.WindowHint(glfw.ScaleToMonitor, glfw.False)
	win, err := glfw.CreateWindow(w, h, "kvc-view: "+s.name, nil, nil)
	if err != nil {
		return fmt.Errorf("%w (%v)", errNoDisplay, err)
	}
	defer win.Destroy()
	pr, err := vk.NewXlibPresenter(unsafe.Pointer(glfw.GetX11Display()), uint64(win.GetX11Window()), os.Getenv("KVC_VALIDATION") == "1")
	if err != nil {
		return err
	}
	defer func() {
		pr.Close()
		for _, m := range pr.Messages() { // KVC_VALIDATION=1: what the layer found, for the tests
			fmt.Println("kvc-view:", m)
		}
	}()

	cmds := make(chan command, 16)
	frames := make(chan shown, 1)
	done := make(chan error, 1)
	go func() { done <- generate(s, o, cmds, frames) }()

	send := func(c command) {
		select {
		case cmds <- c:
		default: // the generator is busy with a backlog: drop the key
		}
	}
	cur := shown{frame: first, state: "running"}
	dirty, quitting := true, false
	save := func() {
		name := fmt.Sprintf("kvc-view-%s-%s-%d.png", s.name, cur.frame.View.Policy, cur.tokens)
		p := filepath.Join(o.saveDir, name)
		if err := kvmap.WritePNG(p, cur.frame); err != nil {
			fmt.Fprintln(os.Stderr, "kvc-view: save:", err)
			return
		}
		fmt.Printf("kvc-view: saved %s\n", p)
	}
	win.SetKeyCallback(func(_ *glfw.Window, k glfw.Key, _ int, a glfw.Action, mods glfw.ModifierKey) {
		if a == glfw.Release {
			return
		}
		switch k {
		case glfw.KeySpace:
			if a == glfw.Press {
				send(cmdPause)
			}
		case glfw.KeyRight:
			send(cmdStep)
		case glfw.KeyKPAdd:
			send(cmdMore)
		case glfw.KeyKPSubtract:
			send(cmdLess)
		case glfw.KeyP:
			if a == glfw.Press {
				send(cmdPolicy)
			}
		case glfw.KeyS:
			if a == glfw.Press {
				save()
			}
		case glfw.KeyQ, glfw.KeyEscape:
			win.SetShouldClose(true)
		}
	})
	win.SetCharCallback(func(_ *glfw.Window, r rune) { // + and - as typed, whatever the layout
		switch r {
		case '+', '=':
			send(cmdMore)
		case '-', '_':
			send(cmdLess)
		}
	})
	win.SetFramebufferSizeCallback(func(*glfw.Window, int, int) { dirty = true })
	win.SetContentScaleCallback(func(_ *glfw.Window, x, y float32) { // moved to a monitor of another density
		if o.scale == 0 {
			scale, dirty = pictureScale(x, y), true
		}
	})
	win.SetRefreshCallback(func(*glfw.Window) { dirty = true })

	announced := ""
	for {
		if win.ShouldClose() && !quitting {
			quitting = true
			send(cmdQuit)
		}
		select {
		case sh := <-frames:
			cur, dirty = sh, true
		case err := <-done:
			if err != nil {
				return err
			}
			return nil
		default:
		}
		if dirty {
			if err := present(pr, win, cur.frame, scale); err != nil {
				return err
			}
			dirty = false
			// Tests wait for this line before capturing the window.
			v := cur.frame.View
			msg := fmt.Sprintf("kvc-view: showing %d tokens, %s (%s, budget %s)", cur.tokens, cur.state, v.Policy, v.BudgetString())
			if cur.state != "running" && msg != announced {
				fmt.Println(msg)
				announced = msg
			}
		}
		glfw.WaitEventsTimeout(0.05)
	}
}

// initGLFW starts GLFW. go-gl's Init logs a platform error (such as an X display that cannot be opened)
// through package log and returns nil, so the log is caught here and turned into the error.
func initGLFW() error {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	err := glfw.Init()
	log.SetOutput(os.Stderr)
	if err == nil && logged.Len() > 0 {
		glfw.Terminate()
		msg := strings.TrimSpace(logged.String())
		if i := strings.LastIndex(msg, "PlatformError: "); i >= 0 {
			msg = msg[i+len("PlatformError: "):]
		}
		return errors.New(strings.ReplaceAll(msg, "\n", "; "))
	}
	return err
}

// pictureScale is the whole number of pixels per picture pixel for a monitor's content scale.
func pictureScale(x, _ float32) int {
	return max(1, int(x+0.5))
}

func status(state string, tokens int) string {
	return fmt.Sprintf("%s at %d new tokens  |  %s", state, tokens, keyHelp)
}

// generate runs the session in its own goroutine: it steps until --steps, then waits for keys.
func generate(s *session, o *options, cmds <-chan command, frames chan shown) error {
	paused := false
	publish := func() error {
		state := "running"
		switch {
		case s.finish != "":
			state = "done (" + s.finish + ")"
		case paused:
			state = "paused"
		}
		f, err := s.frame(status(state, s.tokens))
		if err != nil {
			return err
		}
		select { // keep only the newest picture
		case <-frames:
		default:
		}
		frames <- shown{frame: f, tokens: s.tokens, state: state}
		glfw.PostEmptyEvent()
		return nil
	}
	handle := func(c command) (quit bool, err error) {
		switch c {
		case cmdQuit:
			return true, nil
		case cmdPause:
			paused = !paused
		case cmdStep:
			paused = true
			err = s.step()
		case cmdMore, cmdLess:
			err = s.setEviction(adjustBudget(s.opts, c == cmdMore))
			if err == nil {
				fmt.Printf("kvc-view: policy %s, budget %s\n", s.opts.Policy, budgetText(s.opts))
				err = s.compress()
			}
		case cmdPolicy:
			err = s.setEviction(nextPolicy(s.opts))
			if err == nil {
				fmt.Printf("kvc-view: policy %s, budget %s\n", s.opts.Policy, budgetText(s.opts))
				err = s.compress()
			}
		}
		if err != nil {
			return false, err
		}
		return false, publish()
	}
	if err := publish(); err != nil {
		return err
	}
	for {
		if s.finish != "" || paused {
			if quit, err := handle(<-cmds); quit || err != nil {
				return err
			}
			continue
		}
		select {
		case c := <-cmds:
			if quit, err := handle(c); quit || err != nil {
				return err
			}
			continue
		default:
		}
		if err := s.step(); err != nil {
			return err
		}
		if s.tokens == o.steps {
			paused = true
		}
		if err := publish(); err != nil {
			return err
		}
	}
}

func budgetText(o kvpages.Options) string {
	v := kvpages.CacheView{Policy: o.Policy, Budget: o.Budget}
	return v.BudgetString()
}

// adjustBudget moves the budget one notch: a block per head for --kv-budget, one for --kv-rate (a bigger
// budget is a lower rate).
func adjustBudget(o kvpages.Options, more bool) kvpages.Options {
	switch {
	case o.Policy == kvpages.PolicyFull:
	case o.Budget.MaxCacheTokens != 0:
		least := max(o.BlockSize, (o.Protect+o.Sinks+o.BlockSize-1)/o.BlockSize*o.BlockSize)
		if more {
			o.Budget.MaxCacheTokens += o.BlockSize
		} else {
			o.Budget.MaxCacheTokens = max(o.Budget.MaxCacheTokens-o.BlockSize, least)
		}
	case more:
		o.Budget.Rate = max(o.Budget.Rate-1, 1)
	default:
		o.Budget.Rate++
	}
	return o
}

// nextPolicy cycles kvcompress -> uniform -> window -> h2o -> full -> kvcompress, giving a policy that
// needs a budget rate 4 when there was none.
func nextPolicy(o kvpages.Options) kvpages.Options {
	order := []kvpages.Policy{kvpages.PolicyKVCompress, kvpages.PolicyUniform, kvpages.PolicyWindow, kvpages.PolicyH2O, kvpages.PolicyFull}
	for i, p := range order {
		if p == o.Policy {
			o.Policy = order[(i+1)%len(order)]
			break
		}
	}
	if o.Policy != kvpages.PolicyFull && o.Budget == (kvpages.Budget{}) {
		o.Budget.Rate = 4
	}
	if _, err := o.Policy.MetricWith(o.Metric); err != nil {
		o.Metric = kvpages.MetricDefault // window and full rank by no metric
	}
	return o
}

// windowSize fits the largest picture the session can draw (its positions grow to the prompt plus -n).
func windowSize(v *kvpages.CacheView, s *session, scale int) (int, int) {
	w, h := 0, 0
	last := min(v.NextPos+s.n, s.ck.Config.Context)
	for _, n := range []int{v.NextPos, min(last, 170), last} { // cells narrow from 6 px as positions grow
		probe := *v
		probe.NextPos = n
		l := kvmap.Plan(&probe)
		w, h = max(w, l.Width), max(h, l.Height)
	}
	return w * scale, h * scale
}

// present draws the frame into the window: the picture at the top left, shrunk to fit a smaller window.
func present(pr *vk.Presenter, win *glfw.Window, f kvmap.Frame, scale int) error {
	fw, fh := win.GetFramebufferSize()
	buf, w, h, bgra, err := pr.Frame(fw, fh)
	if err != nil || w == 0 {
		return err
	}
	// A window smaller than the picture first gets it at a lower scale (sharp text), and only then shrunk.
	l := kvmap.Plan(f.View)
	for scale > 1 && (l.Width*scale > w || l.Height*scale > h) {
		scale--
	}
	img, _ := kvmap.Render(f, scale)
	compose(buf, w, h, img, bgra)
	return pr.Present()
}

// compose fills a w x h framebuffer with the background and img (nearest-neighbour shrunk to fit).
func compose(buf []byte, w, h int, img *image.RGBA, bgra bool) {
	bg := kvmap.Background
	for i := 0; i < len(buf); i += 4 {
		buf[i], buf[i+1], buf[i+2], buf[i+3] = bg.R, bg.G, bg.B, 255
	}
	iw, ih := img.Bounds().Dx(), img.Bounds().Dy()
	num, den := 1, 1 // shrink factor num/den
	if iw > w || ih > h {
		if w*ih < h*iw {
			num, den = w, iw
		} else {
			num, den = h, ih
		}
	}
	ow, oh := min(iw*num/den, w), min(ih*num/den, h)
	for y := range oh {
		sy := y * den / num
		for x := range ow {
			sx := x * den / num
			src := img.Pix[sy*img.Stride+4*sx:]
			dst := buf[(y*w+x)*4:]
			copy(dst[:4], src[:4])
		}
	}
	if bgra {
		for i := 0; i < len(buf); i += 4 {
			buf[i], buf[i+2] = buf[i+2], buf[i]
		}
	}
}
