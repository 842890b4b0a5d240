//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair: the master (the test's side) and the slave (the child's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// ptyChat is kvc chat running on a pseudo-terminal.
type ptyChat struct {
	t      *testing.T
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan error
}

func startPTYChat(t *testing.T, args ...string) *ptyChat {
	m, s := openPTY(t)
	c := kvcChild(t, append([]string{"chat", "stories260K", "--device", "cpu", "--temp", "0", "--quiet"}, args...)...)
	c.Env = append(c.Env, "KVC_HISTORY="+filepath.Join(t.TempDir(), "history"), "KVC_TEST_TOKEN_DELAY=15ms", "TERM=dumb")
	c.Stdin, c.Stdout, c.Stderr = s, s, s
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p := &ptyChat{t: t, master: m, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { p.done <- c.Wait() }()
	t.Cleanup(func() {
		c.Process.Kill()
		m.Close()
	})
	return p
}

var ansiRe = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]|\r")

// text is everything the terminal showed so far, without escape sequences and carriage returns.
func (p *ptyChat) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ansiRe.ReplaceAllString(p.out.String(), "")
}

// waitFor waits until the screen holds want count times.
func (p *ptyChat) waitFor(want string, count int) {
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(p.text(), want) < count {
		if time.Now().After(deadline) {
			p.t.Fatalf("waited for %q (x%d); the terminal shows:\n%s", want, count, p.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *ptyChat) send(s string) {
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *ptyChat) exit(how string) {
	p.send(how)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("kvc chat ended with %v after %q:\n%s", err, how, p.text())
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("kvc chat did not end after %q:\n%s", how, p.text())
	}
}

// replyAfter is the text between the echo of the line sent and the next prompt.
func replyAfter(screen, line string) string {
	i := strings.LastIndex(screen, line+"\n")
	if i < 0 {
		return ""
	}
	rest := screen[i+len(line)+1:]
	if j := strings.Index(rest, ">>> "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// Chat on a terminal: line editing history (up arrow), a """ block, Ctrl-C in the middle of a reply stops
// it and keeps the conversation, /save then /load in a new process continues byte-identically, and both
// /bye and Ctrl-D exit with status 0.
func TestChatTerminal(t *testing.T) {
	sess := filepath.Join(t.TempDir(), "chat.kvcs")
	a := startPTYChat(t, "-n", "60", "--kv-policy", "kvcompress", "--kv-budget", "32")
	a.waitFor(">>> ", 1)
	a.send("Tell me a story about a dog.\r")
	a.waitFor(">>> ", 2)
	a.send("\x1b[A\r") // up arrow: the same line again
	a.waitFor(">>> ", 3)
	if n := strings.Count(a.text(), "Tell me a story about a dog.\n"); n != 2 {
		t.Fatalf("the up arrow did not recall the line (%d echoes):\n%s", n, a.text())
	}
	a.send("\"\"\"The dog\rwas happy\"\"\"\r")
	a.waitFor("... ", 1)
	a.waitFor(">>> ", 4)
	a.send("Tell me a long story about a cat.\r")
	a.waitFor("Tell me a long story about a cat.\n", 1)
	time.Sleep(300 * time.Millisecond) // some tokens in (15 ms each)
	a.send("\x03")
	a.waitFor("reply stopped", 1)
	a.waitFor(">>> ", 5)
	if r := replyAfter(a.text(), "Tell me a long story about a cat."); len(strings.Fields(r)) < 3 {
		t.Fatalf("no partial reply before Ctrl-C:\n%s", a.text())
	}
	a.send("/save " + sess + "\r")
	a.waitFor("saved", 1)
	a.send("What happened next?\r")
	a.waitFor(">>> ", 7)
	want := replyAfter(a.text(), "What happened next?")
	a.exit("/bye\r")

	b := startPTYChat(t, "-n", "60", "--kv-policy", "kvcompress", "--kv-budget", "32")
	b.waitFor(">>> ", 1)
	b.send("/load " + sess + "\r")
	b.waitFor("loaded", 1)
	b.send("What happened next?\r")
	b.waitFor(">>> ", 3)
	got := replyAfter(b.text(), "What happened next?")
	if strings.TrimSpace(want) == "" || got != want {
		t.Fatalf("after /load in a new process:\n%q\nthe first process went on with\n%q", got, want)
	}
	b.exit("\x04") // Ctrl-D
}
