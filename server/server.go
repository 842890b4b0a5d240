// Package server is kvc's OpenAI-compatible HTTP API on the batch scheduler: every request of every
// client goes through one engine.Scheduler and one KV pool, so the compression that lets more sequences
// fit the pool serves more clients at once.
package server

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kvc/engine"
	"kvc/kvpages"
	"kvc/model/chat"
	"kvc/model/tokenizer"
)

// Config is a loaded model and how to serve it.
type Config struct {
	Model     engine.Model
	Scheduler engine.SchedulerConfig // Planner, Interval, MaxSeqs, EOS; the server sets the rest
	Tokenizer tokenizer.Tokenizer
	Template  chat.Template
	// ChatStops are stop strings added to every chat request (a template's end of turn that is not one
	// token; one that is a token belongs in Scheduler.EOS).
	ChatStops []string
	Policy    string // the --kv-policy the engine was loaded with
	Defaults  Defaults
	MaxQueue  int   // most requests waiting for admission; more get 429
	MaxBody   int64 // request body limit in bytes
}

// Defaults fill what a request leaves out.
type Defaults struct {
	MaxTokens int
	Sampler   engine.SamplerConfig // Seed 0: a random seed per request
	Stop      []string
}

// Server answers the OpenAI API. It serves /health and /metrics from New on; the API answers 503 until
// Start has a model.
type Server struct {
	name     string
	created  int64
	mux      *http.ServeMux
	metrics  *metrics
	core     atomic.Pointer[core]
	draining atomic.Bool
}

// core is the running model: the scheduler, its goroutine and the requests in flight.
type core struct {
	cfg       Config
	metrics   *metrics
	sch       *engine.Scheduler
	ctx       context.Context // cancelled when a drain times out: every request is then cancelled
	cancelAll context.CancelFunc
	done      chan struct{} // closed when Run returns
	runErr    error

	mu   sync.Mutex // admission and live
	live map[string]*stream
}

// New makes a server for the model called name.
func New(name string) *Server {
	s := &Server{name: name, created: time.Now().Unix(), mux: http.NewServeMux(), metrics: newMetrics()}
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) })
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) })
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /v1/models/{id...}", s.models)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("no route %s %s (this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models, /health, /metrics)", r.Method, r.URL.Path)})
	})
	return s
}

// Handler is the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.mux }

// Start runs the scheduler on its own goroutine and opens the API.
func (s *Server) Start(cfg Config) error {
	if cfg.MaxQueue < 0 {
		return fmt.Errorf("max queue %d must be >= 0", cfg.MaxQueue)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 8 << 20
	}
	c := &core{cfg: cfg, metrics: s.metrics, done: make(chan struct{}), live: map[string]*stream{}}
	c.ctx, c.cancelAll = context.WithCancel(context.Background())
	sc := cfg.Scheduler
	sc.Wait = true
	sc.NewDecoder = func() engine.TextDecoder { return cfg.Tokenizer.NewDecoder() }
	sc.OnResult = c.result
	pool := cfg.Model.KVPool()
	sc.OnStep = func() {
		st := c.sch.Stats()
		s.metrics.step(c.sch.Running(), pool.InUse(), pool.Free(), st)
	}
	sch, err := engine.NewScheduler(cfg.Model, sc)
	if err != nil {
		return err
	}
	c.sch = sch
	s.metrics.step(0, pool.InUse(), pool.Free(), engine.SchedulerStats{})
	s.metrics.setQueue(sch.Pending)
	go func() {
		defer close(c.done)
		c.runErr = sch.Run()
		c.cancelAll()
		// A failed model ends every request still waiting for its result.
		c.mu.Lock()
		for id, st := range c.live {
			st.finish(engine.Result{ID: id, FinishReason: engine.FinishError, Err: fmt.Errorf("the engine stopped: %v", c.runErr)})
			delete(c.live, id)
		}
		c.mu.Unlock()
	}()
	s.core.Store(c)
	return nil
}

// Done is closed when the scheduler has stopped (after Drain, or when the model failed); Err says why.
func (s *Server) Done() <-chan struct{} { return s.core.Load().done }

// Err is the scheduler's error once Done is closed (nil after a drain).
func (s *Server) Err() error { return s.core.Load().runErr }

// Drain stops admitting requests (they get 503), lets the ones in flight finish for up to timeout, then
// cancels the rest; it returns when the scheduler has stopped.
func (s *Server) Drain(timeout time.Duration) error {
	s.draining.Store(true)
	c := s.core.Load()
	if c == nil {
		return nil
	}
	c.mu.Lock() // no submission is half done
	c.sch.Close()
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cancelAll()
		<-c.done
	}
	if c.runErr != nil && !errors.Is(c.runErr, context.Canceled) {
		return c.runErr
	}
	return nil
}

func retryAfter(w http.ResponseWriter, status int, msg string) *apiError {
	w.Header().Set("Retry-After", "1")
	typ := "server_error"
	if status == http.StatusTooManyRequests {
		typ = "rate_limit_error"
	}
	return &apiError{Status: status, Type: typ, Message: msg}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	c := s.core.Load()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case c == nil:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"status":"loading"}`)
	case s.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"status":"draining"}`)
	default:
		select {
		case <-c.done:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"failed"}`)
		default:
			fmt.Fprintln(w, `{"status":"ok"}`)
		}
	}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	m := modelEntry{ID: s.name, Object: "model", Created: s.created, OwnedBy: "kvc"}
	w.Header().Set("Content-Type", "application/json")
	if id := r.PathValue("id"); id != "" {
		if id != s.name {
			writeError(w, s.unknownModel(id))
			return
		}
		writeJSON(w, m)
		return
	}
	writeJSON(w, map[string]any{"object": "list", "data": []modelEntry{m}})
}

func (s *Server) unknownModel(name string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist: this server serves %q", name, s.name)}
}

// stream carries one request's tokens and result from the scheduler goroutine to its handler.
type stream struct {
	mu      sync.Mutex
	texts   []string // released text not yet sent
	tokens  int
	res     *engine.Result
	notify  chan struct{}
	arrived time.Time
	last    time.Time // the previous token (scheduler goroutine only)
}

func (st *stream) signal() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *stream) finish(r engine.Result) {
	st.mu.Lock()
	st.res = &r
	st.mu.Unlock()
	st.signal()
}

// take returns the text released since the last take and the result once there is one.
func (st *stream) take() (string, *engine.Result) {
	st.mu.Lock()
	defer st.mu.Unlock()
	text := strings.Join(st.texts, "")
	st.texts = st.texts[:0]
	return text, st.res
}

// result receives every finished request on the scheduler goroutine.
func (c *core) result(r engine.Result) {
	c.mu.Lock()
	st := c.live[r.ID]
	delete(c.live, r.ID)
	c.mu.Unlock()
	c.metrics.finished(r)
	if st != nil {
		st.finish(r)
	}
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// job is a parsed request ready for the scheduler.
type job struct {
	id      string
	prompt  []int
	params  *genParams
	stops   []string
	chat    bool
	echo    string // completions with echo: the prompt text first
	arrived time.Time
}

// generate serves both generation endpoints.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, isChat bool) {
	arrived := time.Now()
	endpoint := "completions"
	if isChat {
		endpoint = "chat_completions"
	}
	status := http.StatusOK
	defer func() { s.metrics.request(endpoint, status) }()
	fail := func(e *apiError) {
		status = e.Status
		writeError(w, e)
	}
	c := s.core.Load()
	if c == nil {
		fail(retryAfter(w, http.StatusServiceUnavailable, "the model is still loading"))
		return
	}
	if s.draining.Load() {
		fail(retryAfter(w, http.StatusServiceUnavailable, "the server is shutting down"))
		return
	}
	j, aerr := s.parse(w, r, c, isChat)
	if aerr != nil {
		fail(aerr)
		return
	}
	j.arrived = arrived
	req, aerr := s.request(c, j)
	if aerr != nil {
		fail(aerr)
		return
	}
	// The request lives as long as its client and no longer than the server's drain allows.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stopAfter := context.AfterFunc(c.ctx, cancel)
	defer stopAfter()
	req.Ctx = ctx
	st := &stream{notify: make(chan struct{}, 1), arrived: arrived}
	req.OnToken = func(_ int, text string) {
		now := time.Now()
		st.mu.Lock()
		st.tokens++
		first := st.tokens == 1
		if text != "" {
			st.texts = append(st.texts, text)
		}
		st.mu.Unlock()
		if first {
			s.metrics.ttft.Observe(now.Sub(st.arrived).Seconds())
		} else {
			s.metrics.tpot.Observe(now.Sub(st.last).Seconds())
		}
		st.last = now
		st.signal()
	}

	c.mu.Lock()
	if s.draining.Load() {
		c.mu.Unlock()
		fail(retryAfter(w, http.StatusServiceUnavailable, "the server is shutting down"))
		return
	}
	if n := c.sch.Pending(); n >= c.cfg.MaxQueue {
		c.mu.Unlock()
		fail(retryAfter(w, http.StatusTooManyRequests, fmt.Sprintf("the queue is full (%d requests waiting, --max-queue %d): retry later", n, c.cfg.MaxQueue)))
		return
	}
	c.live[j.id] = st
	c.sch.Submit(req)
	c.mu.Unlock()
	s.metrics.submitted(len(req.Prompt))

	if j.params.Stream {
		s.streamOut(w, r, st, j)
		return
	}
	var res *engine.Result
	for res == nil {
		select {
		case <-st.notify:
			_, res = st.take()
		case <-r.Context().Done():
			status = 499 // the client went away; the scheduler drops the request
			return
		}
	}
	if e := resultError(res); e != nil {
		fail(e)
		return
	}
	u := &usage{PromptTokens: res.PromptTokens, CompletionTokens: len(res.Tokens), TotalTokens: res.PromptTokens + len(res.Tokens)}
	reason := finishReason(res.FinishReason)
	if isChat {
		writeJSON(w, chatResponse{ID: j.id, Object: "chat.completion", Created: arrived.Unix(), Model: s.name, Usage: u,
			Choices: []chatChoice{{Message: &chatMessage{Role: "assistant", Content: textOrParts(res.Text)}, FinishReason: &reason}}})
		return
	}
	writeJSON(w, completionResponse{ID: j.id, Object: "text_completion", Created: arrived.Unix(), Model: s.name, Usage: u,
		Choices: []completionChoice{{Text: j.echo + res.Text, FinishReason: &reason}}})
}

// resultError maps a failed or cancelled result to the error the client gets.
func resultError(res *engine.Result) *apiError {
	switch res.FinishReason {
	case engine.FinishError:
		if strings.HasPrefix(res.Err.Error(), "the engine stopped") {
			return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: res.Err.Error()}
		}
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: res.Err.Error()}
	case engine.FinishCancelled:
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: "the request was cancelled: the server is shutting down"}
	}
	return nil
}

func finishReason(r string) string {
	if r == engine.FinishContext {
		return "length" // the context is full: OpenAI says length
	}
	return r
}

// parse reads and checks a request body and tokenizes its prompt.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, c *core, isChat bool) (*job, *apiError) {
	j := &job{chat: isChat}
	tok := c.cfg.Tokenizer
	if isChat {
		var req chatRequest
		if e := decodeBody(w, r, c.cfg.MaxBody, &req); e != nil {
			return nil, e
		}
		if req.Messages == nil {
			return nil, badRequest("messages", `"messages" is required: a list of {"role": ..., "content": ...}`)
		}
		msgs := make([]chat.Message, len(req.Messages))
		for i, m := range req.Messages {
			switch m.Role {
			case "system", "user", "assistant", "developer":
			default:
				return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q: want system, user or assistant", i, m.Role)
			}
			role := m.Role
			if role == "developer" { // OpenAI's newer name for the system role
				role = "system"
			}
			msgs[i] = chat.Message{Role: role, Content: string(m.Content)}
		}
		text, err := c.cfg.Template.Render(msgs, true)
		if err != nil {
			return nil, badRequest("messages", "%v", err)
		}
		j.params = &req.genParams
		j.prompt = tok.Encode(text, c.cfg.Template.AddBOS())
		j.stops = c.cfg.ChatStops
		j.id = newID("chatcmpl-")
	} else {
		var req completionRequest
		if e := decodeBody(w, r, c.cfg.MaxBody, &req); e != nil {
			return nil, e
		}
		if req.Prompt == nil {
			return nil, badRequest("prompt", `"prompt" is required`)
		}
		j.params = &req.genParams
		if req.Prompt.text != nil {
			j.prompt = tok.Encode(*req.Prompt.text, true)
		} else {
			for i, id := range req.Prompt.tokens {
				if id < 0 || id >= tok.Vocab() {
					return nil, badRequest("prompt", "prompt token %d at %d is outside the vocabulary of %d", id, i, tok.Vocab())
				}
			}
			j.prompt = req.Prompt.tokens
		}
		if req.Echo {
			j.echo = tok.Decode(j.prompt)
		}
		j.id = newID("cmpl-")
	}
	p := j.params
	if p.Model != "" && p.Model != s.name {
		return nil, s.unknownModel(p.Model)
	}
	if e := p.check(); e != nil {
		return nil, e
	}
	if p.KVPolicy != nil && !strings.EqualFold(*p.KVPolicy, c.cfg.Policy) {
		return nil, badRequest("kv_policy", "kv_policy %q: this server runs %q for every request (set at start with --kv-policy)", *p.KVPolicy, c.cfg.Policy)
	}
	if (p.KVBudget != nil || p.KVRate != nil) && c.cfg.Scheduler.Planner == nil {
		return nil, badRequest("kv_budget", "kv_budget and kv_rate need a server started with an eviction policy (--kv-policy kvcompress)")
	}
	ctxLen := c.cfg.Model.Info().Context
	if len(j.prompt) == 0 {
		return nil, badRequest("prompt", "the prompt is empty")
	}
	if len(j.prompt) >= ctxLen {
		if !p.Truncate {
			return nil, &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "messages", Code: "context_length_exceeded",
				Message: fmt.Sprintf("the prompt is %d tokens, the model's context is %d: shorten it, or send \"truncate\": true to keep its end", len(j.prompt), ctxLen)}
		}
		j.prompt = TruncatePrompt(j.prompt, ctxLen)
	}
	return j, nil
}

// TruncatePrompt keeps the first token (BOS) and the last ctx/2-1 tokens of a prompt that does not leave
// room in the context, so half the context is left to generate.
func TruncatePrompt(ids []int, ctx int) []int {
	keep := ctx / 2
	return append([]int{ids[0]}, ids[len(ids)-keep+1:]...)
}

// request builds the scheduler request from a parsed job.
func (s *Server) request(c *core, j *job) (engine.Request, *apiError) {
	p := j.params
	d := c.cfg.Defaults
	sc := d.Sampler
	if p.Temperature != nil {
		sc.Temp = *p.Temperature
	}
	if p.TopP != nil {
		sc.TopP = *p.TopP
	}
	if p.TopK != nil {
		sc.TopK = *p.TopK
	}
	if p.MinP != nil {
		sc.MinP = *p.MinP
	}
	if p.RepeatPenalty != nil {
		sc.RepeatPenalty = *p.RepeatPenalty
	}
	switch {
	case p.Seed != nil:
		sc.Seed = uint64(*p.Seed)
	case sc.Seed == 0:
		sc.Seed = rand.Uint64()
	}
	if err := sc.Validate(); err != nil {
		return engine.Request{}, badRequest("", "%v", err)
	}
	stops := d.Stop
	if p.Stop != nil {
		stops = *p.Stop
	}
	stops = append(append([]string(nil), stops...), j.stops...)
	r := engine.Request{ID: j.id, Prompt: j.prompt, MaxTokens: p.maxTokens(d.MaxTokens), Sampler: sc, Stop: stops, IgnoreEOS: p.IgnoreEOS}
	if p.KVBudget != nil {
		r.Budget = kvpages.Budget{MaxCacheTokens: *p.KVBudget}
	} else if p.KVRate != nil {
		r.Budget = kvpages.Budget{Rate: *p.KVRate}
	}
	if r.Budget != (kvpages.Budget{}) {
		o := c.cfg.Scheduler.Planner.Options()
		o.Budget = r.Budget
		if err := o.Validate(); err != nil {
			return r, badRequest("kv_budget", "%v", err)
		}
	}
	return r, nil
}

// streamOut writes the request's tokens as server-sent events as they come.
func (s *Server) streamOut(w http.ResponseWriter, r *http.Request, st *stream, j *job) {
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	created := j.arrived.Unix()
	send := func(v any) bool {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", mustJSON(v)); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	chunk := func(text string, finish *string) any {
		if j.chat {
			d := &chatDelta{}
			if text != "" || finish == nil {
				d.Content = &text
			}
			return chatResponse{ID: j.id, Object: "chat.completion.chunk", Created: created, Model: s.name,
				Choices: []chatChoice{{Delta: d, FinishReason: finish}}}
		}
		return completionResponse{ID: j.id, Object: "text_completion", Created: created, Model: s.name,
			Choices: []completionChoice{{Text: text, FinishReason: finish}}}
	}
	if j.chat {
		empty := ""
		if !send(chatResponse{ID: j.id, Object: "chat.completion.chunk", Created: created, Model: s.name,
			Choices: []chatChoice{{Delta: &chatDelta{Role: "assistant", Content: &empty}}}}) {
			return
		}
	} else if j.echo != "" && !send(chunk(j.echo, nil)) {
		return
	}
	sent := 0
	for {
		select {
		case <-st.notify:
		case <-r.Context().Done():
			return // the client went away: the request's context is cancelled on return
		}
		text, res := st.take()
		if text != "" {
			sent += len(text)
			if !send(chunk(text, nil)) {
				return
			}
		}
		if res == nil {
			continue
		}
		if e := resultError(res); e != nil {
			send(map[string]*apiError{"error": e})
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		if tail := res.Text[min(sent, len(res.Text)):]; tail != "" && !send(chunk(tail, nil)) {
			return
		}
		reason := finishReason(res.FinishReason)
		if !send(chunk("", &reason)) {
			return
		}
		if j.params.StreamOptions != nil && j.params.StreamOptions.IncludeUsage {
			u := &usage{PromptTokens: res.PromptTokens, CompletionTokens: len(res.Tokens), TotalTokens: res.PromptTokens + len(res.Tokens)}
			var v any = completionResponse{ID: j.id, Object: "text_completion", Created: created, Model: s.name, Choices: []completionChoice{}, Usage: u}
			if j.chat {
				v = chatResponse{ID: j.id, Object: "chat.completion.chunk", Created: created, Model: s.name, Choices: []chatChoice{}, Usage: u}
			}
			if !send(v) {
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		if flusher != nil {
			flusher.Flush()
		}
		return
	}
}
