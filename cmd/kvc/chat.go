package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"kvc/engine"
	"kvc/model/chat"
)

func cmdChat(args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	ef := engineFlags{seqs: 1, autoInterval: 1}
	var sf samplingFlags
	ef.register(fs)
	sf.register(fs)
	system := fs.String("system", "", "system message")
	stats := fs.Bool("stats", false, "print statistics after each reply")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if ef.model == "" && fs.NArg() > 0 {
		ef.model = fs.Arg(0) // kvc chat MODEL
	}
	if fs.NArg() > 1 || fs.NArg() == 1 && ef.model != fs.Arg(0) {
		return usageError{fmt.Errorf("unexpected argument %q: kvc chat [--model] MODEL [flags]", fs.Arg(fs.NArg()-1))}
	}
	sc, err := sf.config()
	if err != nil {
		return err
	}
	l, err := load(&ef, os.Stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	tmpl, warn := chatTemplate(l)
	if warn != "" {
		fmt.Fprintln(os.Stderr, "kvc:", warn)
	}
	fmt.Fprintf(os.Stderr, "kvc: chatting with %s (%s template) on %s; /reset starts over, /exit or Ctrl-D quits\n",
		filepath.Base(l.ck.Path), tmpl.Format, l.backend.Name())
	return chatLoop(l, tmpl, *system, sc, sf.n, sf.stops, ef.interval, os.Stdin, os.Stdout, os.Stderr, *stats)
}

// chatTemplate finds the model's chat template: GGUF metadata, else tokenizer_config.json beside it.
func chatTemplate(l *loaded) (chat.Template, string) {
	if l.ck.Format == "gguf" {
		return chat.FromGGUF(l.ck.Metadata())
	}
	p := filepath.Join(l.ck.Dir(), "tokenizer_config.json")
	if fileExists(p) {
		t, warn, err := chat.FromTokenizerConfig(p)
		if err == nil {
			return t, warn
		}
		return chat.Detect("")
	}
	return chat.Detect("")
}

// chatLoop reads user turns line by line and streams the replies. The cache is kept across turns: when the
// rendered conversation starts with the tokens already cached, only the new tokens are prefilled.
func chatLoop(l *loaded, tmpl chat.Template, system string, sc engine.SamplerConfig, n int, stops []string, interval int,
	in io.Reader, out, stderr io.Writer, stats bool) error {
	e := l.eng
	var msgs []chat.Message
	if system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: system})
	}
	seq := e.NewSequence(sc)
	defer func() { e.Release(seq) }()
	sc0 := sc
	g := &generation{l: l, out: out, stderr: stderr}
	sin := bufio.NewScanner(in)
	sin.Buffer(make([]byte, 1<<20), 1<<24)
	for {
		fmt.Fprint(stderr, "> ")
		if !sin.Scan() {
			fmt.Fprintln(stderr)
			return sin.Err()
		}
		line := strings.TrimSpace(sin.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			msgs = msgs[:0]
			if system != "" {
				msgs = append(msgs, chat.Message{Role: "system", Content: system})
			}
			e.Release(seq)
			seq = e.NewSequence(sc0)
			continue
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: line})
		text, err := tmpl.Render(msgs, true)
		if err != nil {
			return err
		}
		ids := l.tok.Encode(text, tmpl.AddBOS())
		if len(ids) >= l.ck.Config.Context {
			return fmt.Errorf("the conversation is %d tokens, the model's context is %d: /reset to start over", len(ids), l.ck.Config.Context)
		}
		var newIDs []int
		if hasPrefix(ids, seq.Tokens) && len(ids) > len(seq.Tokens) {
			newIDs = ids[len(seq.Tokens):]
		} else { // the rendering changed earlier tokens: start the cache over
			e.Release(seq)
			seq = e.NewSequence(sc0)
			newIDs = ids
		}
		room := l.ck.Config.Context - len(ids)
		var reply strings.Builder
		res, err := g.continueSeq(seq, newIDs, min(n, room), append(stops, tmpl.EOS), interval)
		fmt.Fprintln(out)
		if err != nil {
			return err
		}
		// The reply's text, as the tokens decode, goes into the conversation.
		reply.WriteString(strings.TrimSpace(l.tok.Decode(res.tokens)))
		msgs = append(msgs, chat.Message{Role: "assistant", Content: reply.String()})
		if stats {
			fmt.Fprintf(stderr, "[%d prompt tokens prefilled (%d reused), %d generated, %.1f tok/s, finish %s]\n",
				len(newIDs), len(ids)-len(newIDs), res.newTokens, float64(res.newTokens)/max(res.decode.Seconds(), 1e-9), res.finish)
		}
	}
}

func hasPrefix(a, p []int) bool {
	if len(p) > len(a) {
		return false
	}
	for i := range p {
		if a[i] != p[i] {
			return false
		}
	}
	return true
}
