package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/model/chat"
	"kvc/session"
)

// newTestChat loads stories260K on the CPU backend and starts a greedy chat with replies of n tokens.
func newTestChat(t *testing.T, n int, extra func(*engineFlags)) (*chatState, *bytes.Buffer, *bytes.Buffer) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	ef := engineFlags{model: "stories260K", device: "cpu", kvBlock: 16, maxRows: 256, policy: "kvcompress", budget: 32,
		protect: 16, window: 8, interval: 1, quiet: true}
	if extra != nil {
		extra(&ef)
	}
	l, err := load(&ef, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	tmpl, _ := chat.Detect("")
	var out, log bytes.Buffer
	c := newChat(l, &ef, tmpl, "You tell stories.", engine.SamplerConfig{}, n, nil, &out, &log)
	c.stats = true
	t.Cleanup(c.close)
	return c, &out, &log
}

func chatTurn(t *testing.T, c *chatState, out *bytes.Buffer, text string) string {
	out.Reset()
	if err := c.turn(text); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

var reusedRe = regexp.MustCompile(`\[(\d+) prompt tokens prefilled \((\d+) reused\)`)

// lastPrefill is the last turn's prefilled and reused token counts.
func lastPrefill(t *testing.T, log string) (int, int) {
	m := reusedRe.FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		t.Fatalf("no statistics line in %q", log)
	}
	a, _ := strconv.Atoi(m[len(m)-1][1])
	b, _ := strconv.Atoi(m[len(m)-1][2])
	return a, b
}

// A conversation saved with its compressed cache and loaded into another chat continues with the same
// greedy reply as the original, and the loaded chat prefills only the new turn.
func TestChatSessionContinuesExactly(t *testing.T) {
	c1, out1, log1 := newTestChat(t, 40, nil)
	chatTurn(t, c1, out1, "Tell me a story about a cat.")
	chatTurn(t, c1, out1, "What did the cat do next?")
	if c1.seq.KV.Ctx[0] >= c1.seq.KV.NextPos {
		t.Fatalf("the cache was not compressed (%d of %d positions kept)", c1.seq.KV.Ctx[0], c1.seq.KV.NextPos)
	}
	path := filepath.Join(t.TempDir(), "s.kvcs")
	if _, err := c1.command("/save " + path); err != nil {
		t.Fatal(err)
	}
	want := chatTurn(t, c1, out1, "And then?")
	_, reused1 := lastPrefill(t, log1.String())

	c2, out2, log2 := newTestChat(t, 7, nil) // n comes from the session
	if _, err := c2.command("/load " + path); err != nil {
		t.Fatal(err)
	}
	if got := chatTurn(t, c2, out2, "And then?"); got != want {
		t.Fatalf("after /load: %q\nwithout saving: %q", got, want)
	}
	if _, reused2 := lastPrefill(t, log2.String()); reused2 != reused1 || reused2 == 0 {
		t.Fatalf("the loaded chat reused %d cached tokens, the original %d", reused2, reused1)
	}
}

// A bad session file is refused with an error saying what is wrong, and the conversation is kept: the next
// turn gives the reply it would have given.
func TestChatSessionBadFiles(t *testing.T) {
	c, out, _ := newTestChat(t, 24, nil)
	chatTurn(t, c, out, "Tell me a story.")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.kvcs")
	if err := c.save(good); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	other := func() []byte { // the same file claiming another model
		f, err := session.Read(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		f.Model = "0123456789abcdef"
		var b bytes.Buffer
		session.Write(&b, f)
		return b.Bytes()
	}()
	newer := bytes.Clone(data)
	binary.LittleEndian.PutUint32(newer[8:], session.Version+1)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"trunc-header":  {data[:20], "truncated"},
		"trunc-payload": {data[:len(data)/3], "truncated"},
		"trunc-last":    {data[:len(data)-1], "truncated"},
		"flipped":       {flipped, "damaged"},
		"other-model":   {other, "another model"},
		"newer":         {newer, "newer kvc"},
		"not-a-session": {[]byte("hello, this is not a session file at all, just text that goes on"), "not a kvc session"},
	}
	msgs, toks := len(c.msgs), append([]int(nil), c.seq.Tokens...)
	for name, cs := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, cs.b, 0o644)
		_, err := c.command("/load " + p)
		if err == nil || !strings.Contains(err.Error(), cs.want) || !strings.Contains(err.Error(), "conversation is kept") {
			t.Errorf("%s: %v (want %q)", name, err, cs.want)
		}
		if len(c.msgs) != msgs || !hasPrefix(c.seq.Tokens, toks) || len(c.seq.Tokens) != len(toks) {
			t.Fatalf("%s: the conversation changed", name)
		}
	}
	got := chatTurn(t, c, out, "Go on.")
	c2, out2, _ := newTestChat(t, 24, nil)
	chatTurn(t, c2, out2, "Tell me a story.")
	if want := chatTurn(t, c2, out2, "Go on."); got != want {
		t.Fatalf("after refused loads: %q, want %q", got, want)
	}
}

// A chat longer than the context goes on: with compression and with the full cache, old turns are dropped
// (one dim line each time) and every message gets a reply.
func TestChatOutgrowsContext(t *testing.T) {
	for _, policy := range []string{"kvcompress", "full"} {
		c, out, log := newTestChat(t, 30, func(ef *engineFlags) {
			ef.ctxSize, ef.policy = 128, policy
			if policy == "full" {
				ef.budget = 0
			}
		})
		for i := 0; i < 8; i++ {
			if r := chatTurn(t, c, out, "Tell me more about the little dog and the big red ball."); strings.TrimSpace(r) == "" {
				t.Fatalf("%s: turn %d: empty reply", policy, i)
			}
		}
		if n := strings.Count(log.String(), "context of 128 tokens full: dropped"); n == 0 {
			t.Fatalf("%s: no turn was dropped:\n%s", policy, log.String())
		}
		if c.seq.KV.NextPos > 128 {
			t.Fatalf("%s: %d positions in a context of 128", policy, c.seq.KV.NextPos)
		}
	}
}

// /set changes sampling and eviction settings, refuses bad values, and /clear starts over.
func TestChatCommands(t *testing.T) {
	c, out, log := newTestChat(t, 10, nil)
	for _, good := range []string{"/set temperature 0.7", "/set top-k 5", "/set seed 3", "/set n 12", "/set kv-budget 48", "/set kv-rate 2", "/set kv-policy uniform"} {
		if _, err := c.command(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	if c.sc.Temp != 0.7 || c.sc.TopK != 5 || c.sc.Seed != 3 || c.n != 12 || c.ef.rate != 2 || c.ef.policy != "uniform" || c.l.planner == nil {
		t.Fatalf("settings after /set: %+v n %d ef %+v", c.sc, c.n, *c.ef)
	}
	for _, bad := range []string{"/set temperature -1", "/set top-p 2", "/set kv-rate 0.5", "/set kv-policy h2o", "/set nothing 1", "/set n x", "/frobnicate"} {
		if _, err := c.command(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	chatTurn(t, c, out, "Hi")
	c.show(log)
	if !strings.Contains(log.String(), "kept KVs per layer") || !strings.Contains(log.String(), "policy uniform") {
		t.Fatalf("/show: %s", log.String())
	}
	if done, _ := c.command("/clear"); done || len(c.msgs) != 1 || c.seq.KV.NextPos != 0 {
		t.Fatalf("/clear left %d messages, %d positions", len(c.msgs), c.seq.KV.NextPos)
	}
	if done, _ := c.command("/bye"); !done {
		t.Fatal("/bye did not end the chat")
	}
}

// """ starts a message of several lines.
func TestReadTurnMultiline(t *testing.T) {
	r := newScanLines(strings.NewReader("\"\"\"first\nsecond\n\nthird\"\"\"\n\"\"\"one line\"\"\"\nplain\n"), io.Discard)
	for _, want := range []string{"first\nsecond\n\nthird", "one line", "plain"} {
		got, err := readTurn(r)
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readTurn(r); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}
