package main

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"kvc/engine"
	"kvc/model/chat"
)

// Two turns: the second reuses the first turn's cached tokens and only prefills the new ones; /reset
// starts over with an empty cache.
func TestChatReusesCache(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	ef := engineFlags{model: "stories260K", device: "cpu", kvBlock: 16, maxRows: 256, policy: "full", protect: 32, window: 8, quiet: true}
	l, err := load(&ef, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tmpl, _ := chat.Detect("")
	var out, log bytes.Buffer
	in := strings.NewReader("Tell me a story\nAnd another one\n/reset\nHello\n")
	c := newChat(l, &ef, tmpl, "", engine.SamplerConfig{}, 20, nil, &out, &log)
	c.stats = true
	if err := c.loop(newScanLines(in, &log)); err != nil {
		t.Fatal(err)
	}
	c.close()
	re := regexp.MustCompile(`\[(\d+) prompt tokens prefilled \((\d+) reused\)`)
	m := re.FindAllStringSubmatch(log.String(), -1)
	if len(m) != 3 {
		t.Fatalf("want 3 replies, log:\n%s", log.String())
	}
	reused := func(i int) int { n, _ := strconv.Atoi(m[i][2]); return n }
	if reused(0) != 0 || reused(1) == 0 || reused(2) != 0 {
		t.Fatalf("reuse per turn: %d, %d, %d (want 0, >0, 0)\n%s", reused(0), reused(1), reused(2), log.String())
	}
	if strings.Count(out.String(), "\n") != 3 || len(strings.TrimSpace(out.String())) == 0 {
		t.Fatalf("replies: %q", out.String())
	}
	if l.eng.Pool.InUse() != 0 {
		t.Fatalf("%d blocks still in use after the chat ended", l.eng.Pool.InUse())
	}
}
