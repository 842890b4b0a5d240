package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"kvc/engine"
	"kvc/server"
)

const serveUsage = "OpenAI-compatible HTTP server: kvc serve MODEL [--host 127.0.0.1] [--port 8080] [--max-queue N] [--kv-policy P --kv-rate R] ..."

type serveOptions struct {
	ef           engineFlags
	sf           samplingFlags
	host         string
	port         int
	maxQueue     int
	maxSeqs      int
	maxBody      int64
	drainTimeout time.Duration
	name         string
}

func (o *serveOptions) register(fs *flag.FlagSet) {
	// A budget given is a budget kept, as in kvc generate: compress after each prompt and whenever a
	// sequence is over it (--kv-interval 1).
	o.ef.autoInterval = 1
	o.ef.register(fs)
	o.sf.register(fs)
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
	fs.IntVar(&o.port, "port", 8080, "TCP port (0: any free port, printed at start)")
	fs.IntVar(&o.maxQueue, "max-queue", 256, "most requests waiting for admission; more are refused with 429 and Retry-After")
	fs.IntVar(&o.maxSeqs, "max-seqs", 0, "most sequences decoding at once (0: --max-rows)")
	fs.Int64Var(&o.maxBody, "max-body", 8<<20, "largest request body in bytes (more: 413)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight may take to finish before they are cancelled")
	fs.StringVar(&o.name, "served-model-name", "", "the model id clients send and /v1/models lists (default: the --model name without its extension)")
}

func cmdServe(args []string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	return runServe(args, os.Stderr, sigs, nil)
}

// runServe is kvc serve: it listens at once (/health says "loading"), loads the model, serves until a
// signal, then drains. listening, when set, gets the address once the port is open.
func runServe(args []string, stderr io.Writer, sigs <-chan os.Signal, listening func(addr string)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o serveOptions
	o.register(fs)
	if err := parseArgsTo(fs, args, os.Stdout, stderr); err != nil {
		return err
	}
	if o.ef.model == "" && fs.NArg() > 0 {
		o.ef.model = fs.Arg(0) // kvc serve MODEL
	}
	if fs.NArg() > 1 || fs.NArg() == 1 && o.ef.model != fs.Arg(0) {
		return fmt.Errorf("unexpected argument %q: kvc serve [--model] MODEL [flags]", fs.Arg(fs.NArg()-1))
	}
	if o.ef.model == "" {
		return errors.New("kvc serve needs a model: kvc serve MODEL (or --model MODEL)")
	}
	if o.maxQueue < 1 || o.maxSeqs < 0 || o.maxBody <= 0 || o.drainTimeout < 0 {
		return fmt.Errorf("--max-queue %d, --max-body %d: want >= 1; --max-seqs %d, --drain-timeout %v: want >= 0", o.maxQueue, o.maxBody, o.maxSeqs, o.drainTimeout)
	}
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("--port %d: want 0..65535", o.port)
	}
	sc, err := o.sf.config()
	if err != nil {
		return err
	}
	if o.sf.sc.Seed == 0 {
		sc.Seed = 0 // a random seed per request, not one clock seed for all
	}
	if o.name == "" {
		o.name = strings.TrimSuffix(filepath.Base(o.ef.model), filepath.Ext(o.ef.model))
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, fmt.Sprint(o.port)))
	if err != nil {
		return err
	}
	srv := server.New(o.name)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer hs.Close()
	fmt.Fprintf(stderr, "kvc: listening on http://%s (loading %s)\n", ln.Addr(), o.ef.model)
	if listening != nil {
		listening(ln.Addr().String())
	}

	o.ef.maxSeqs = o.maxSeqs
	l, err := load(&o.ef, stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	cfg, warn := serveConfig(l, &o, sc)
	if warn != "" {
		fmt.Fprintln(stderr, "kvc:", warn)
	}
	if err := srv.Start(cfg); err != nil {
		return err
	}
	pool := l.eng.Pool
	fmt.Fprintf(stderr, "kvc: serving %s as %q on %s: %d KV blocks of %d slots, policy %s, queue %d\n",
		l.ck.Path, o.name, l.backend.Name(), pool.Blocks(), pool.BlockSize(), cfg.Policy, o.maxQueue)

	select {
	case err := <-served:
		return err
	case <-srv.Done():
		return fmt.Errorf("the engine stopped: %w", srv.Err())
	case s := <-sigs:
		fmt.Fprintf(stderr, "kvc: %v: draining (new requests get 503; in-flight ones have %v)\n", s, o.drainTimeout)
	}
	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- srv.Drain(o.drainTimeout) }()
	var derr error
	select {
	case derr = <-drained:
	case <-sigs: // a second signal: stop now
		fmt.Fprintln(stderr, "kvc: second signal: exiting without draining")
		return nil
	}
	// The handlers write their last events, then the listener closes.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	fmt.Fprintf(stderr, "kvc: drained in %.1f s\n", time.Since(start).Seconds())
	return derr
}

// serveConfig is the server's view of a loaded model. The chat template's end-of-turn token ends
// generation; one that is not a single token becomes a stop string of chat requests.
func serveConfig(l *loaded, o *serveOptions, sc engine.SamplerConfig) (server.Config, string) {
	tmpl, warn := chatTemplate(l)
	var chatStops []string
	if tmpl.EOS != "" {
		if id, ok := l.tok.TokenID(tmpl.EOS); ok {
			l.eos[id] = true
		} else {
			chatStops = []string{tmpl.EOS}
		}
	}
	policy := "full"
	if l.planner != nil {
		policy = l.planner.Options().Policy.String()
	}
	return server.Config{
		Model:     l.eng.BatchModel(),
		Scheduler: engine.SchedulerConfig{Planner: l.planner, Interval: o.ef.interval, MaxSeqs: o.maxSeqs, EOS: l.eos},
		Tokenizer: l.tok, Template: tmpl, ChatStops: chatStops, Policy: policy,
		Defaults: server.Defaults{MaxTokens: o.sf.n, Sampler: sc, Stop: o.sf.stops},
		MaxQueue: o.maxQueue, MaxBody: o.maxBody,
	}, warn
}
