package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/term"
)

// Line editing and history come from golang.org/x/term (already in the module graph through the progress
// bar, and maintained with Go itself): its Terminal has cursor movement, Ctrl-A/E/K/U/W, word moves,
// up/down history and bracketed paste, which is what chat needs; a readline clone would add a dependency
// for completion and vi modes chat does not use.

// errInterrupted is Ctrl-C at the prompt: the line is dropped, the chat goes on.
var errInterrupted = errors.New("interrupted")

// lineReader reads the user's lines: io.EOF at the end (Ctrl-D), errInterrupted for Ctrl-C.
type lineReader interface {
	ReadLine(prompt string) (string, error)
	Close() error
}

// scanLines reads lines from a pipe or file (no editing), writing the prompt to w.
type scanLines struct {
	s *bufio.Scanner
	w io.Writer
}

func newScanLines(r io.Reader, w io.Writer) *scanLines {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	return &scanLines{s: s, w: w}
}

func (r *scanLines) ReadLine(prompt string) (string, error) {
	fmt.Fprint(r.w, prompt)
	if !r.s.Scan() {
		fmt.Fprintln(r.w)
		if err := r.s.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}
	return r.s.Text(), nil
}

func (r *scanLines) Close() error { return nil }

// termLines edits lines on a terminal. The terminal is raw only while a line is read, so that Ctrl-C
// during a reply is a signal (which stops the reply) and the reply's text is printed as usual.
type termLines struct {
	fd       int
	t        *term.Terminal
	sawCtrlC atomic.Bool
}

// ctrlCWatch passes the terminal's bytes through and notes a Ctrl-C, which x/term reports as io.EOF
// just like Ctrl-D.
type ctrlCWatch struct {
	r io.Reader
	w io.Writer
	l *termLines
}

func (c ctrlCWatch) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		if b == 3 {
			c.l.sawCtrlC.Store(true)
		}
	}
	return n, err
}

func (c ctrlCWatch) Write(p []byte) (int, error) { return c.w.Write(p) }

func newTermLines(in *os.File, out io.Writer, histFile string) *termLines {
	l := &termLines{fd: int(in.Fd())}
	l.t = term.NewTerminal(ctrlCWatch{r: in, w: out, l: l}, "")
	l.t.History = loadHistory(histFile)
	return l
}

func (l *termLines) ReadLine(prompt string) (string, error) {
	old, err := term.MakeRaw(l.fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(l.fd, old)
	if w, h, err := term.GetSize(l.fd); err == nil && w > 0 && h > 0 {
		l.t.SetSize(w, h)
	}
	l.t.SetPrompt(prompt)
	l.sawCtrlC.Store(false)
	line, err := l.t.ReadLine()
	if err == io.EOF && l.sawCtrlC.Load() {
		return "", errInterrupted
	}
	if err == term.ErrPasteIndicator { // a pasted line is still a line
		err = nil
	}
	return line, err
}

func (l *termLines) Close() error { return nil }

// fileHistory is x/term's History kept in a file, one line per entry, newest last (as ollama keeps
// ~/.ollama/history). Writing it is best effort: chat works without it.
type fileHistory struct {
	path  string
	lines []string
}

const historyMax = 1000

func loadHistory(path string) *fileHistory {
	h := &fileHistory{path: path}
	if b, err := os.ReadFile(path); err == nil {
		for _, s := range strings.Split(string(b), "\n") {
			if s != "" {
				h.lines = append(h.lines, s)
			}
		}
		if len(h.lines) > historyMax {
			h.lines = h.lines[len(h.lines)-historyMax:]
		}
	}
	return h
}

func (h *fileHistory) Add(s string) {
	if s == "" || len(h.lines) > 0 && h.lines[len(h.lines)-1] == s {
		return
	}
	h.lines = append(h.lines, s)
	if len(h.lines) > historyMax {
		h.lines = h.lines[1:]
	}
	if h.path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(h.path), 0o755); err == nil {
		if f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			fmt.Fprintln(f, strings.ReplaceAll(s, "\n", " "))
			f.Close()
		}
	}
}

func (h *fileHistory) Len() int { return len(h.lines) }

// At is the idx-th most recent entry (0: the last).
func (h *fileHistory) At(idx int) string { return h.lines[len(h.lines)-1-idx] }

// historyPath is where chat keeps its history: $KVC_HISTORY, else beside the model cache.
func historyPath() string {
	if v, ok := os.LookupEnv("KVC_HISTORY"); ok {
		return v
	}
	return filepath.Join(filepath.Dir(cacheDir()), "history")
}

// readTurn reads one user turn: a line, or with """ a block of lines up to the next """.
func readTurn(r lineReader) (string, error) {
	line, err := r.ReadLine(">>> ")
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, `"""`) {
		return t, nil
	}
	rest := strings.TrimPrefix(t, `"""`)
	if strings.HasSuffix(rest, `"""`) && len(rest) >= 3 { // """one line"""
		return strings.TrimSpace(strings.TrimSuffix(rest, `"""`)), nil
	}
	var b strings.Builder
	b.WriteString(rest)
	for {
		line, err := r.ReadLine("... ")
		if err != nil {
			return "", err
		}
		if i := strings.Index(line, `"""`); i >= 0 {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(line[:i])
			return strings.TrimSpace(b.String()), nil
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
}
