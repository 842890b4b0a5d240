package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"kvc/engine"
	"kvc/kvpages"
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
	sessionFile := fs.String("session", "", "session file: loaded at start if it exists, saved at exit (the conversation with its compressed cache)")
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
	c := newChat(l, &ef, tmpl, *system, sc, sf.n, sf.stops, os.Stdout, os.Stderr)
	c.stats = *stats
	defer c.close()
	if *sessionFile != "" && fileExists(*sessionFile) {
		if err := c.load(*sessionFile); err != nil {
			return fmt.Errorf("--session %s: %w", *sessionFile, err)
		}
	}
	var in lineReader
	if isTerminal(os.Stdin) && isTerminal(os.Stdout) {
		in = newTermLines(os.Stdin, os.Stdout, historyPath())
	} else {
		in = newScanLines(os.Stdin, os.Stderr)
	}
	defer in.Close()
	// Ctrl-C stops the reply, not kvc: while a line is read the terminal is raw (no signal), while a reply
	// is generated the signal sets c.interrupt.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for range sigs {
			c.interrupt.Store(true)
		}
	}()
	fmt.Fprintf(os.Stderr, "kvc: chatting with %s (%s template) on %s; /help lists the commands, Ctrl-D or /bye quits\n",
		filepath.Base(l.ck.Path), tmpl.Format, l.backend.Name())
	c.session = *sessionFile
	err = c.loop(in)
	if *sessionFile != "" && err == nil {
		if serr := c.save(*sessionFile); serr != nil {
			err = fmt.Errorf("--session %s: %w", *sessionFile, serr)
		}
	} else if *sessionFile != "" && fileExists(*sessionFile) {
		// A failed reply (a lost device, say) is not saved: the file keeps the last complete one.
		fmt.Fprintf(os.Stderr, "kvc: --session %s keeps the conversation up to the last complete reply\n", *sessionFile)
	}
	return err
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

// chatState is one conversation: its messages, the sequence caching them, and the settings /set changes.
type chatState struct {
	l        *loaded
	ef       *engineFlags
	tmpl     chat.Template
	system   string
	sc       engine.SamplerConfig
	n        int
	stops    []string
	msgs     []chat.Message
	seq      *engine.Sequence
	g        *generation
	out, log io.Writer
	stats    bool
	dim      func(string) string
	// interrupt is set by Ctrl-C; each reply clears it first.
	interrupt atomic.Bool
	// session (--session) is saved after every complete reply, so that a device failure mid-reply leaves
	// the conversation as it was after the last good one.
	session string
}

func newChat(l *loaded, ef *engineFlags, tmpl chat.Template, system string, sc engine.SamplerConfig, n int, stops []string, out, log io.Writer) *chatState {
	c := &chatState{l: l, ef: ef, tmpl: tmpl, system: system, sc: sc, n: n, stops: stops, out: out, log: log}
	c.g = &generation{l: l, out: out, stderr: log, interrupt: &c.interrupt}
	c.dim = func(s string) string { return s }
	if isTerminal(log) {
		c.dim = func(s string) string { return "\x1b[2m" + s + "\x1b[0m" }
	}
	c.clear()
	return c
}

// clear starts the conversation over (the system message stays).
func (c *chatState) clear() {
	c.msgs = c.msgs[:0]
	if c.system != "" {
		c.msgs = append(c.msgs, chat.Message{Role: "system", Content: c.system})
	}
	c.restart()
}

// restart empties the cache; the next turn prefills the whole conversation.
func (c *chatState) restart() {
	if c.seq != nil {
		c.l.eng.Release(c.seq)
	}
	c.seq = c.l.eng.NewSequence(c.sc)
}

func (c *chatState) close() {
	if c.seq != nil {
		c.l.eng.Release(c.seq)
		c.seq = nil
	}
}

func (c *chatState) note(format string, a ...any) {
	fmt.Fprintln(c.log, c.dim(fmt.Sprintf(format, a...)))
}

// loop reads turns until Ctrl-D or /bye.
func (c *chatState) loop(in lineReader) error {
	for {
		line, err := readTurn(in)
		if errors.Is(err, errInterrupted) {
			fmt.Fprintln(c.log)
			c.note("(Ctrl-D or /bye quits)")
			continue
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "/") {
			done, err := c.command(line)
			if err != nil {
				fmt.Fprintln(c.log, "kvc:", err)
			}
			if done {
				return nil
			}
			continue
		}
		if err := c.turn(line); err != nil {
			return err
		}
		if c.session != "" {
			if err := c.save(c.session); err != nil {
				return fmt.Errorf("--session %s: %w", c.session, err)
			}
		}
	}
}

const chatHelp = `commands:
  /help                 this list
  /bye, /exit           quit (so does Ctrl-D)
  /clear                start the conversation over (the system message stays)
  /set temperature T    sampling: also top-k K, top-p P, min-p P, seed S, n N (reply length)
  /set system TEXT      the system message (starts a new cache)
  /set kv-budget C      eviction: also kv-rate R, kv-policy P (among the policies with the same metric)
  /show                 model, settings and the KV cache per layer and head
  /save FILE            the conversation with its compressed cache
  /load FILE            continue a saved conversation (no prefill)
"""  ...  """           a message of several lines
Ctrl-C stops a reply and keeps the conversation.`

// command runs a /command; done is true for /bye.
func (c *chatState) command(line string) (done bool, err error) {
	f := strings.Fields(line)
	arg := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
	switch f[0] {
	case "/help", "/?":
		fmt.Fprintln(c.log, chatHelp)
	case "/bye", "/exit", "/quit":
		return true, nil
	case "/clear", "/reset":
		c.clear()
		c.note("(conversation cleared)")
	case "/set":
		return false, c.set(arg)
	case "/show":
		c.show(c.log)
	case "/save":
		if arg == "" {
			return false, errors.New("/save FILE")
		}
		if err := c.save(arg); err != nil {
			return false, err
		}
		c.note("(saved %d messages, %d cached tokens to %s)", len(c.msgs), c.seq.KV.NextPos, arg)
	case "/load":
		if arg == "" {
			return false, errors.New("/load FILE")
		}
		if err := c.load(arg); err != nil {
			return false, fmt.Errorf("%s: %w (the current conversation is kept)", arg, err)
		}
		c.note("(loaded %d messages, %d cached tokens from %s)", len(c.msgs), c.seq.KV.NextPos, arg)
	default:
		return false, fmt.Errorf("unknown command %s: /help lists them", f[0])
	}
	return false, nil
}

// set changes one setting: /set NAME VALUE.
func (c *chatState) set(arg string) error {
	name, val, _ := strings.Cut(arg, " ")
	val = strings.TrimSpace(val)
	if name == "" {
		return errors.New("/set NAME VALUE (/help lists the names)")
	}
	if name == "system" {
		c.system = val
		c.clear()
		c.note("(system message set; conversation cleared)")
		return nil
	}
	if val == "" {
		return fmt.Errorf("/set %s needs a value", name)
	}
	sc := c.sc
	num := func() (float64, error) {
		x, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return 0, fmt.Errorf("/set %s %q: want a number", name, val)
		}
		return x, nil
	}
	x, err := 0.0, error(nil)
	switch name {
	case "temperature", "temp", "top-k", "top_k", "top-p", "top_p", "min-p", "min_p", "seed", "n", "kv-budget", "kv-rate", "repeat-penalty":
		if x, err = num(); err != nil {
			return err
		}
	}
	switch name {
	case "temperature", "temp":
		sc.Temp = x
	case "top-k", "top_k":
		sc.TopK = int(x)
	case "top-p", "top_p":
		sc.TopP = x
	case "min-p", "min_p":
		sc.MinP = x
	case "repeat-penalty":
		sc.RepeatPenalty = x
	case "seed":
		sc.Seed = uint64(x)
	case "n":
		if x < 1 {
			return fmt.Errorf("/set n %v: want at least 1", x)
		}
		c.n = int(x)
		return nil
	case "kv-budget", "kv-rate", "kv-policy":
		return c.setEviction(name, val, x)
	default:
		return fmt.Errorf("/set %s: unknown setting (/help lists them)", name)
	}
	if err := sc.Validate(); err != nil {
		return fmt.Errorf("/set %s: %w", name, err)
	}
	c.sc = sc
	c.seq.Sampler = engine.NewSampler(sc) // the cache stays; the next reply samples with the new settings
	return nil
}

// setEviction changes the policy or budget the chat compresses with. The engine collects the metric its
// starting policy needs, so the policy can change only to one with the same metric.
func (c *chatState) setEviction(name, val string, x float64) error {
	o := *c.ef
	switch name {
	case "kv-budget":
		o.budget, o.rate = int(x), 0
	case "kv-rate":
		o.rate, o.budget = x, 0
	case "kv-policy":
		o.policy = val
		if p, err := kvpages.ParsePolicy(val); err == nil && p == kvpages.PolicyFull {
			o.budget, o.rate = 0, 0
		}
	}
	opts, err := o.compressionOptions()
	if err != nil {
		return fmt.Errorf("/set %s: %w", name, err)
	}
	cur, _ := c.ef.compressionOptions()
	want, _ := opts.Policy.MetricWith(opts.Metric)
	have, _ := cur.Policy.MetricWith(cur.Metric)
	if opts.Policy != kvpages.PolicyFull && want != have {
		return fmt.Errorf("/set %s %s: policy %s needs another attention metric than the chat collects (for %s); restart with --kv-policy %s",
			name, val, opts.Policy, cur.Policy, opts.Policy)
	}
	var pl *kvpages.Planner
	if opts.Policy != kvpages.PolicyFull {
		if pl, err = kvpages.NewPlanner(opts); err != nil {
			return fmt.Errorf("/set %s: %w", name, err)
		}
	}
	*c.ef, c.l.planner = o, pl
	return nil
}

func (c *chatState) show(w io.Writer) {
	l, cfg := c.l, c.l.ck.Config
	fmt.Fprintf(w, "model      %s (%s), %d layers, %d heads / %d KV heads, context %d, on %s\n",
		l.ck.Path, l.ck.Format, cfg.Layers, cfg.Heads, cfg.KVHeads, cfg.Context, l.backend.Name())
	fmt.Fprintf(w, "template   %s\n", c.tmpl.Format)
	fmt.Fprintf(w, "sampling   temperature %g, top-k %d, top-p %g, min-p %g, repeat penalty %g, seed %d, n %d\n",
		c.sc.Temp, c.sc.TopK, c.sc.TopP, c.sc.MinP, c.sc.RepeatPenalty, c.sc.Seed, c.n)
	if c.system != "" {
		fmt.Fprintf(w, "system     %q\n", c.system)
	}
	opts, _ := c.ef.compressionOptions()
	budget := "none"
	switch {
	case opts.Budget.MaxCacheTokens > 0:
		budget = fmt.Sprintf("%d tokens per head", opts.Budget.MaxCacheTokens)
	case opts.Budget.Rate > 0:
		budget = fmt.Sprintf("rate %gx", opts.Budget.Rate)
	}
	fmt.Fprintf(w, "kv cache   policy %s, budget %s, interval %d, protect %d\n", opts.Policy, budget, c.ef.interval, opts.Protect)
	s := c.seq.KV
	kept := 0
	for _, n := range s.Ctx {
		kept += n
	}
	full := s.NextPos * len(s.Ctx)
	rate := 1.0
	if kept > 0 {
		rate = float64(full) / float64(kept)
	}
	bb := c.l.eng.KV.BlockBytes()
	fmt.Fprintf(w, "           %d messages, %d positions cached; %d KVs kept of %d (%.2fx), %d blocks (%s), pool %d of %d blocks in use\n",
		len(c.msgs), s.NextPos, kept, full, rate, s.Blocks(), fmtBytes(int64(s.Blocks())*bb), c.l.eng.Pool.InUse(), c.l.eng.Pool.Blocks())
	fmt.Fprintf(w, "kept KVs per layer (rows) and KV head (columns):\n")
	for ly := 0; ly < s.Layers; ly++ {
		fmt.Fprintf(w, "  %3d ", ly)
		for h := 0; h < s.KVHeads; h++ {
			fmt.Fprintf(w, " %6d", s.Ctx[ly*s.KVHeads+h])
		}
		fmt.Fprintln(w)
	}
}

// replyRoom is the context a turn keeps free for the reply before it drops old turns.
func (c *chatState) replyRoom() int {
	return min(c.n, c.l.ck.Config.Context/4)
}

// turn adds the user's message, streams the reply and adds it to the conversation. The cache is kept
// across turns: when the rendered conversation starts with the cached tokens, only the new ones are
// prefilled. When the conversation would not leave room for a reply in the context, the oldest turns are
// dropped (llama.cpp's context shift) and the rest is prefilled again.
func (c *chatState) turn(text string) error {
	c.msgs = append(c.msgs, chat.Message{Role: "user", Content: text})
	ids, err := c.render()
	if err != nil {
		c.msgs = c.msgs[:len(c.msgs)-1]
		return err
	}
	ctx := c.l.ck.Config.Context
	if len(ids)+c.replyRoom() > ctx {
		dropped := 0
		for len(ids)+c.replyRoom() > ctx && c.dropOldestTurn() {
			dropped++
			if ids, err = c.render(); err != nil {
				return err
			}
		}
		if len(ids) >= ctx {
			c.msgs = c.msgs[:len(c.msgs)-1]
			c.note("(the message is %d tokens, the context %d: not sent)", len(ids), ctx)
			return nil
		}
		c.note("(context of %d tokens full: dropped the %d oldest turns; %d tokens of conversation go on)", ctx, dropped, len(ids))
	}
	var newIDs []int
	if hasPrefix(ids, c.seq.Tokens) && len(ids) > len(c.seq.Tokens) {
		newIDs = ids[len(c.seq.Tokens):]
	} else { // the rendering changed earlier tokens (or turns were dropped): start the cache over
		c.restart()
		newIDs = ids
	}
	c.interrupt.Store(false)
	res, err := c.g.continueSeq(c.seq, newIDs, min(c.n, ctx-len(ids)), append(c.stops, c.tmpl.EOS), c.ef.interval)
	fmt.Fprintln(c.out)
	if err != nil {
		return err
	}
	c.msgs = append(c.msgs, chat.Message{Role: "assistant", Content: strings.TrimSpace(c.l.tok.Decode(res.tokens))})
	switch res.finish {
	case "interrupted":
		c.note("(reply stopped; the conversation keeps it)")
	case "context":
		c.note("(the reply reached the context of %d tokens; the next turn drops the oldest turns)", ctx)
	}
	if c.stats {
		fmt.Fprintf(c.log, "[%d prompt tokens prefilled (%d reused), %d generated, %.1f tok/s, finish %s]\n",
			len(newIDs), len(ids)-len(newIDs), res.newTokens, float64(res.newTokens)/max(res.decode.Seconds(), 1e-9), res.finish)
	}
	return nil
}

func (c *chatState) render() ([]int, error) {
	text, err := c.tmpl.Render(c.msgs, true)
	if err != nil {
		return nil, err
	}
	return c.l.tok.Encode(text, c.tmpl.AddBOS()), nil
}

// dropOldestTurn removes the first user message after the system message and the replies up to the next
// user message; false when only the last user message is left.
func (c *chatState) dropOldestTurn() bool {
	first := 0
	if len(c.msgs) > 0 && c.msgs[0].Role == "system" {
		first = 1
	}
	end := first + 1
	for end < len(c.msgs) && c.msgs[end].Role != "user" {
		end++
	}
	if end >= len(c.msgs) {
		return false
	}
	c.msgs = append(c.msgs[:first], c.msgs[end:]...)
	return true
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
