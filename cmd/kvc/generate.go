package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"kvc/engine"
	"kvc/kvpages"
	"kvc/model/chat"
)

const generateUsage = "batch generation from a JSONL file: kvc generate --model M --input prompts.jsonl --output out.jsonl [--kv-policy P --kv-rate R] ..."

// cmdGenerate is `kvc generate`. Exit status: 0 when every input line was written (error lines
// included), 1 on a failure, 130 after SIGINT/SIGTERM/SIGHUP (the lines written so far are complete; run the same
// command again to do the rest).
func cmdGenerate(args []string) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, genStopSignals...)
	defer signal.Stop(sigs)
	interrupted, err := runGenerate(args, os.Stderr, sigs)
	if err != nil {
		return err
	}
	if interrupted {
		os.Exit(130)
	}
	return nil
}

// genStopSignals stop a run in order: the lines in flight are finished (a second one drops them). SIGHUP is
// among them so that a closed terminal or ssh session leaves the output as clean as Ctrl-C does.
var genStopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// genInput is one parsed input line.
type genInput struct {
	line     int
	id       json.RawMessage // as written (compact), echoed in the output
	key      string          // the id's compact JSON: "1" and 1 are different ids
	prompt   *string
	messages []chat.Message

	temperature, topP, minP, repeatPenalty *float64
	topK, maxTokens, kvBudget              *int
	seed                                   *uint64
	stop                                   []string
	hasStop                                bool
	kvRate                                 *float64
}

var genKnownFields = map[string]bool{"id": true, "prompt": true, "messages": true, "temperature": true, "top_k": true,
	"top_p": true, "min_p": true, "repeat_penalty": true, "seed": true, "max_tokens": true, "stop": true,
	"kv_budget": true, "kv_rate": true}

// parseGenLine reads one JSONL input line. It returns the fields it does not know (ignored) beside the
// parsed line, or an error naming the field and what was expected.
func parseGenLine(data []byte, line int) (genInput, []string, error) {
	in := genInput{line: line}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return in, nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if m == nil {
		return in, nil, errors.New("not a JSON object: null")
	}
	var unknown []string
	for k := range m {
		if !genKnownFields[k] {
			unknown = append(unknown, k)
		}
	}
	raw, ok := m["id"]
	if !ok {
		return in, unknown, errors.New(`missing "id" (a string or a number)`)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return in, unknown, fmt.Errorf(`"id": %v`, err)
	}
	if c := buf.Bytes(); len(c) == 0 || (c[0] != '"' && c[0] != '-' && (c[0] < '0' || c[0] > '9')) {
		return in, unknown, fmt.Errorf(`"id" must be a string or a number, got %s`, c)
	}
	in.id, in.key = json.RawMessage(buf.Bytes()), buf.String()

	field := func(name string, dst any, want string) error {
		r, ok := m[name]
		if !ok || string(r) == "null" {
			return nil
		}
		if err := json.Unmarshal(r, dst); err != nil {
			return fmt.Errorf("%q must be %s, got %s", name, want, r)
		}
		return nil
	}
	if _, ok := m["prompt"]; ok {
		var p string
		if err := field("prompt", &p, "a string"); err != nil {
			return in, unknown, err
		}
		in.prompt = &p
	}
	if _, ok := m["messages"]; ok {
		var msgs []chat.Message
		if err := field("messages", &msgs, `a list of {"role": ..., "content": ...}`); err != nil {
			return in, unknown, err
		}
		for i, mm := range msgs {
			if mm.Role == "" {
				return in, unknown, fmt.Errorf(`"messages"[%d] has no "role"`, i)
			}
		}
		if msgs == nil {
			msgs = []chat.Message{}
		}
		in.messages = msgs
	}
	if (in.prompt == nil) == (in.messages == nil) {
		return in, unknown, errors.New(`give exactly one of "prompt" (a string) and "messages" (a list)`)
	}
	floats := []struct {
		name string
		dst  **float64
	}{{"temperature", &in.temperature}, {"top_p", &in.topP}, {"min_p", &in.minP}, {"repeat_penalty", &in.repeatPenalty}, {"kv_rate", &in.kvRate}}
	for _, f := range floats {
		var v float64
		if _, ok := m[f.name]; !ok {
			continue
		}
		if err := field(f.name, &v, "a number"); err != nil {
			return in, unknown, err
		}
		*f.dst = &v
	}
	ints := []struct {
		name string
		dst  **int
	}{{"top_k", &in.topK}, {"max_tokens", &in.maxTokens}, {"kv_budget", &in.kvBudget}}
	for _, f := range ints {
		var v int
		if _, ok := m[f.name]; !ok {
			continue
		}
		if err := field(f.name, &v, "an integer"); err != nil {
			return in, unknown, err
		}
		if v < 0 {
			return in, unknown, fmt.Errorf("%q must be >= 0, got %d", f.name, v)
		}
		*f.dst = &v
	}
	if _, ok := m["seed"]; ok {
		var v uint64
		if err := field("seed", &v, "an unsigned integer"); err != nil {
			return in, unknown, err
		}
		in.seed = &v
	}
	if r, ok := m["stop"]; ok {
		in.hasStop = true
		var one string
		if json.Unmarshal(r, &one) == nil {
			in.stop = []string{one}
		} else if err := field("stop", &in.stop, "a string or a list of strings"); err != nil {
			return in, unknown, err
		}
	}
	if in.kvRate != nil && (*in.kvRate < 1 || math.IsNaN(*in.kvRate) || math.IsInf(*in.kvRate, 0)) {
		return in, unknown, fmt.Errorf(`"kv_rate" must be a number >= 1, got %v`, *in.kvRate)
	}
	if in.kvRate != nil && in.kvBudget != nil {
		return in, unknown, errors.New(`give "kv_budget" or "kv_rate", not both`)
	}
	sc := engine.SamplerConfig{}
	in.applySampling(&sc)
	if err := sc.Validate(); err != nil {
		return in, unknown, err
	}
	return in, unknown, nil
}

// applySampling sets the sampling fields the line gives (the seed is handled by the caller).
func (in genInput) applySampling(sc *engine.SamplerConfig) {
	if in.temperature != nil {
		sc.Temp = *in.temperature
	}
	if in.topK != nil {
		sc.TopK = *in.topK
	}
	if in.topP != nil {
		sc.TopP = *in.topP
	}
	if in.minP != nil {
		sc.MinP = *in.minP
	}
	if in.repeatPenalty != nil {
		sc.RepeatPenalty = *in.repeatPenalty
	}
}

// genOutput is one output line. Lines are written in completion order.
type genOutput struct {
	ID           json.RawMessage `json:"id"`
	Text         string          `json:"text"`
	Tokens       int             `json:"tokens"` // generated tokens
	FinishReason string          `json:"finish_reason"`
	PromptTokens int             `json:"prompt_tokens"`
	KVKept       int             `json:"kv_kept"` // KVs held at the end, all layers and KV heads
	KVFull       int             `json:"kv_full"` // KVs a full cache would hold
	TimeS        float64         `json:"time_s"`  // first admission to finish
	Error        string          `json:"error,omitempty"`
}

// readGenInput parses the input file; malformed lines and duplicate ids are reported to stderr and
// skipped, or stop the run when strict.
func readGenInput(path string, strict bool, stderr io.Writer) ([]genInput, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out []genInput
	seen := map[string]int{}
	warned := map[string]bool{}
	for line := 1; ; line++ {
		data, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(data)) > 0 {
			in, unknown, perr := parseGenLine(data, line)
			for _, u := range unknown {
				if !warned[u] {
					warned[u] = true
					fmt.Fprintf(stderr, "kvc: %s:%d: unknown field %q ignored (on every line)\n", path, line, u)
				}
			}
			switch {
			case perr != nil && strict:
				return nil, fmt.Errorf("%s:%d: %v", path, line, perr)
			case perr != nil:
				fmt.Fprintf(stderr, "kvc: %s:%d: %v; line skipped\n", path, line, perr)
			case seen[in.key] != 0 && strict:
				return nil, fmt.Errorf("%s:%d: id %s already used on line %d", path, line, in.key, seen[in.key])
			case seen[in.key] != 0:
				fmt.Fprintf(stderr, "kvc: %s:%d: id %s already used on line %d; line skipped\n", path, line, in.key, seen[in.key])
			default:
				seen[in.key] = line
				out = append(out, in)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
}

// scanGenOutput reads the ids already written to an output file. A last line without its newline (a
// crash mid-write) is cut off the file; any other line that is not an output record is an error.
func scanGenOutput(path string, stderr io.Writer) (map[string]bool, error) {
	done := map[string]bool{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	good := 0
	for line := 1; good < len(data); line++ {
		nl := bytes.IndexByte(data[good:], '\n')
		if nl < 0 {
			fmt.Fprintf(stderr, "kvc: %s:%d: incomplete last line (%d bytes, an interrupted write) discarded\n", path, line, len(data)-good)
			if err := os.Truncate(path, int64(good)); err != nil {
				return nil, err
			}
			break
		}
		rec := data[good : good+nl]
		var o struct {
			ID json.RawMessage `json:"id"`
		}
		if len(bytes.TrimSpace(rec)) > 0 {
			if err := json.Unmarshal(rec, &o); err != nil || o.ID == nil {
				return nil, fmt.Errorf("%s:%d: not an output line of kvc generate (%v); use another --output or --resume=false", path, line, err)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, o.ID); err != nil {
				return nil, fmt.Errorf("%s:%d: id: %v", path, line, err)
			}
			done[buf.String()] = true
		}
		good += nl + 1
	}
	return done, nil
}

// openGenOutput opens the output for appending, locked against a second run on the same file, and returns
// the ids it already holds (resume) or truncates it. Only a regular file is scanned, locked or truncated: a
// device (/dev/null, /dev/full), pipe or socket is written to as it is, since reading it back would never
// end (/dev/zero) or would read the run's own output (/dev/stdout into a pipe).
func openGenOutput(path, input string, resume bool, stderr io.Writer) (*os.File, map[string]bool, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() { // a terminal may well be both
		if ist, err := os.Stat(input); err == nil && os.SameFile(st, ist) {
			return nil, nil, fmt.Errorf("--output %s is the --input file", path)
		}
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	st, err := out.Stat()
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	done := map[string]bool{}
	if !st.Mode().IsRegular() {
		return out, done, nil
	}
	if err := lockFile(out); err != nil {
		out.Close()
		if errors.Is(err, errLocked) {
			return nil, nil, fmt.Errorf("%s is being written by another kvc generate (locked); wait for it to finish or use another --output", path)
		}
		return nil, nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if resume {
		done, err = scanGenOutput(path, stderr)
	} else {
		err = out.Truncate(0)
	}
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	return out, done, nil
}

type generateOptions struct {
	ef       engineFlags
	sf       samplingFlags
	input    string
	output   string
	resume   bool
	strict   bool
	maxSeqs  int
	progress bool
}

// runGenerate does the work of kvc generate; it reports whether a signal cut the run short.
func runGenerate(args []string, stderr io.Writer, sigs <-chan os.Signal) (bool, error) {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o generateOptions
	o.ef.register(fs)
	o.sf.register(fs)
	fs.StringVar(&o.input, "input", "", `input JSONL: {"id": ..., "prompt": "..."} or {"id": ..., "messages": [{"role": ..., "content": ...}]} per line, with optional temperature, top_k, top_p, min_p, repeat_penalty, seed, max_tokens, stop, kv_budget, kv_rate`)
	fs.StringVar(&o.output, "output", "", "output JSONL, appended one finished request per line (completion order); - for stdout")
	fs.BoolVar(&o.resume, "resume", true, "skip ids already in --output (false: truncate it)")
	fs.BoolVar(&o.strict, "strict", false, "stop at the first malformed input line or duplicate id instead of skipping it")
	fs.IntVar(&o.maxSeqs, "max-seqs", 0, "most sequences decoding at once (0: --max-rows)")
	shardFlag := fs.String("shard", "", "i/n: run only the ids whose stable hash falls in part i of n, writing OUTPUT-0000i-of-0000n (default: from JOB_COMPLETION_INDEX/JOB_COMPLETIONS or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, else all)")
	if err := parseArgs(fs, args); err != nil {
		return false, err
	}
	sh, err := parseShard(*shardFlag, os.Getenv)
	if err != nil {
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// "-": standard input and output (not regular files, so generate neither scans nor truncates them).
	if o.input == "-" {
		o.input = "/dev/stdin"
	}
	if o.output == "-" {
		o.output = "/dev/stdout"
	}
	if o.input == "" || o.output == "" {
		return false, errors.New("kvc generate needs --input FILE and --output FILE")
	}
	if o.maxSeqs < 0 {
		return false, fmt.Errorf("--max-seqs %d: want >= 0", o.maxSeqs)
	}
	o.ef.maxSeqs = o.maxSeqs
	// A budget given is a budget kept: compress after each prompt and whenever a sequence is over it.
	o.ef.autoInterval = 1
	base, err := o.sf.config()
	if err != nil {
		return false, err
	}
	inputs, err := readGenInput(o.input, o.strict, stderr)
	if err != nil {
		return false, err
	}
	if len(inputs) == 0 {
		return false, fmt.Errorf("%s: no requests (want one JSON object per line)", o.input)
	}
	inputs = sh.keep(inputs, stderr)
	o.output = sh.output(o.output)
	out, done, err := openGenOutput(o.output, o.input, o.resume, stderr)
	if err != nil {
		return false, err
	}
	defer out.Close()
	var todo []genInput
	for _, in := range inputs {
		if !done[in.key] {
			todo = append(todo, in)
		}
	}
	if len(done) > 0 {
		fmt.Fprintf(stderr, "kvc: %s: %d ids already done, %d to go\n", o.output, len(inputs)-len(todo), len(todo))
	}
	if len(todo) == 0 {
		return false, nil
	}

	l, err := load(&o.ef, stderr)
	if err != nil {
		return false, err
	}
	defer l.Close()
	reqs, failed, err := genRequests(l, todo, base, &o, stderr)
	if err != nil {
		return false, err
	}
	return genRun(l, reqs, failed, todo, &o, out, stderr, sigs)
}

// genRequests tokenizes the inputs (rendering chat messages with the model's template) and applies the
// flag defaults to what a line does not set.
func genRequests(l *loaded, todo []genInput, base engine.SamplerConfig, o *generateOptions, stderr io.Writer) ([]engine.Request, map[string]error, error) {
	failed := map[string]error{}
	var tmpl *chat.Template
	reqs := make([]engine.Request, len(todo))
	for i, in := range todo {
		r := engine.Request{ID: in.key, MaxTokens: o.sf.n, Stop: o.sf.stops, Sampler: base}
		if in.prompt != nil {
			r.Prompt = l.tok.Encode(*in.prompt, true)
		} else {
			if tmpl == nil {
				t, warn := chatTemplate(l)
				if warn != "" {
					fmt.Fprintln(stderr, "kvc:", warn)
				}
				tmpl = &t
				if id, ok := l.tok.TokenID(t.EOS); ok && t.EOS != "" {
					l.eos[id] = true // e.g. <|eot_id|> ends an assistant turn
				}
			}
			text, err := tmpl.Render(in.messages, true)
			if err != nil {
				failed[in.key] = fmt.Errorf("line %d: %w", in.line, err) // written as an error line
			}
			r.Prompt = l.tok.Encode(text, tmpl.AddBOS())
		}
		sc := &r.Sampler
		if in.seed != nil {
			sc.Seed = *in.seed
		} else {
			h := fnv.New64a()
			h.Write([]byte(in.key))
			sc.Seed = base.Seed ^ h.Sum64() // distinct streams per request, reproducible for a given --seed
		}
		in.applySampling(sc)
		if in.maxTokens != nil {
			r.MaxTokens = *in.maxTokens
		}
		if in.hasStop {
			r.Stop = in.stop
		}
		if in.kvBudget != nil {
			r.Budget = kvpages.Budget{MaxCacheTokens: *in.kvBudget}
		} else if in.kvRate != nil {
			r.Budget = kvpages.Budget{Rate: *in.kvRate}
		}
		reqs[i] = r
	}
	return reqs, failed, nil
}

// genRun schedules the requests and appends each result to out as it finishes.
func genRun(l *loaded, reqs []engine.Request, failedReqs map[string]error, todo []genInput, o *generateOptions, out *os.File, stderr io.Writer,
	sigs <-chan os.Signal) (bool, error) {
	ids := make(map[string]json.RawMessage, len(todo))
	for _, in := range todo {
		ids[in.key] = in.id
	}
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var bar *progressbar.ProgressBar
	if !o.ef.quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions(len(reqs), progressbar.OptionSetWriter(stderr), progressbar.OptionShowCount(),
			progressbar.OptionSetDescription("generating"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	start := time.Now()
	var genTokens, written, failed int
	var keptKVs, fullKVs int64 // at each request's end: the achieved compression rate
	var writeErr error
	var sch *engine.Scheduler
	cfg := engine.SchedulerConfig{Planner: l.planner, Interval: o.ef.interval, MaxSeqs: o.maxSeqs, EOS: l.eos,
		NewDecoder: func() engine.TextDecoder { return l.tok.NewDecoder() },
		OnResult: func(r engine.Result) {
			if writeErr != nil {
				return
			}
			rec := genOutput{ID: ids[r.ID], Text: r.Text, Tokens: len(r.Tokens), FinishReason: r.FinishReason,
				PromptTokens: r.PromptTokens, KVKept: r.KVKept, KVFull: r.FullKVs, TimeS: math.Round(r.Time.Seconds()*1000) / 1000}
			if r.Err != nil {
				rec.Error = r.Err.Error()
				failed++
			}
			keptKVs += int64(r.KVKept)
			fullKVs += int64(r.FullKVs)
			if writeErr = enc.Encode(rec); writeErr == nil {
				writeErr = w.Flush() // the whole line reaches the file before the next result
			}
			if writeErr != nil {
				writeErr = fmt.Errorf("writing %s: %w", o.output, writeErr)
				sch.Abort()
				return
			}
			written++
			genTokens += len(r.Tokens)
			if bar != nil {
				bar.Describe(fmt.Sprintf("%.0f tok/s", float64(genTokens)/time.Since(start).Seconds()))
				_ = bar.Add(1)
			}
		}}
	sch, err := engine.NewScheduler(l.eng.BatchModel(), cfg)
	if err != nil {
		return false, err
	}
	for _, r := range reqs {
		if err := failedReqs[r.ID]; err != nil {
			cfg.OnResult(engine.Result{ID: r.ID, FinishReason: engine.FinishError, PromptTokens: len(r.Prompt), Err: err})
			continue
		}
		sch.Submit(r)
	}
	var interrupted atomic.Bool
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		n := 0
		for {
			select {
			case <-stopWatch:
				return
			case s := <-sigs:
				n++
				interrupted.Store(true)
				if n == 1 {
					fmt.Fprintf(stderr, "\nkvc: %v: finishing the requests in flight (again to drop them); run the same command later to do the rest\n", s)
					sch.StopAdmitting()
				} else {
					sch.Abort()
				}
			}
		}
	}()
	runErr := sch.Run()
	if bar != nil {
		_ = bar.Finish()
	}
	if writeErr != nil {
		return false, writeErr
	}
	if runErr != nil && !errors.Is(runErr, engine.ErrAborted) {
		return false, runErr
	}
	st := sch.Stats()
	wall := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "kvc: %d of %d requests written to %s (%d errors), %d tokens generated in %.2f s: %.1f tok/s; decode batch peak %d mean %.1f, %d preemptions",
		written, len(reqs), o.output, failed, genTokens, wall, float64(genTokens)/wall, st.PeakDecodeBatch, st.MeanDecodeBatch(), st.Preemptions)
	if l.planner != nil {
		fmt.Fprintf(stderr, ", %d compression rounds (%.2f s, %d KVs evicted)", st.CompressRounds, st.Compress.Time.Seconds(), st.Compress.EvictedKVs)
		if keptKVs > 0 {
			fmt.Fprintf(stderr, ", achieved rate %.2fx (%d of %d KVs kept at the requests' ends)", float64(fullKVs)/float64(keptKVs), keptKVs, fullKVs)
		}
	}
	fmt.Fprintln(stderr)
	if interrupted.Load() || errors.Is(runErr, engine.ErrAborted) {
		left := len(reqs) - written
		fmt.Fprintf(stderr, "kvc: interrupted: %d requests not written; the same command resumes them\n", left)
		return true, nil
	}
	return false, nil
}
