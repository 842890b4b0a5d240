package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"kvc/model/chat"
	"kvc/server"
)

// testServer is kvc serve's server on stories260K (CPU backend) behind a loopback listener.
type testServer struct {
	url string
	srv *server.Server
	l   *loaded
	ts  *httptest.Server
}

func startTestServer(t *testing.T, set func(*serveOptions)) *testServer {
	t.Helper()
	t.Setenv("KVC_MODELS", sharedModels(t))
	o := serveOptions{ef: engineFlags{model: "stories260K", device: "cpu", kvBlock: 16, maxRows: 256, policy: "full",
		protect: 32, window: 8, quiet: true, interval: -1}, maxQueue: 256, maxBody: 1 << 20}
	o.sf.register(flag.NewFlagSet("serve", flag.ContinueOnError)) // the flag defaults
	if set != nil {
		set(&o)
	}
	l, err := load(&o.ef, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := serveConfig(l, &o, o.sf.sc)
	srv := server.New("stories260K")
	if err := srv.Start(cfg); err != nil {
		l.Close()
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	s := &testServer{url: ts.URL, srv: srv, l: l, ts: ts}
	t.Cleanup(s.stop)
	return s
}

// stop drains the server and closes everything (again: no-op).
func (s *testServer) stop() {
	if s.l == nil {
		return
	}
	_ = s.srv.Drain(5 * time.Second)
	s.ts.Close()
	s.l.Close()
	s.l = nil
}

// post sends a JSON body and returns the status, the Retry-After header and the decoded body.
func post(t *testing.T, url, body string) (int, string, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: response %q is not JSON: %v", body, data, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), m
}

// The official OpenAI Go SDK talks to kvc serve, streaming and not; greedy text equals kvc run's for the
// same prompt (the chat prompt rendered with the model's template).
func TestServeOpenAISDK(t *testing.T) {
	s := startTestServer(t, nil)
	client := openai.NewClient(option.WithBaseURL(s.url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := context.Background()
	const n = 40

	prompt := "Once upon a time"
	want := generateText(t, "cpu", prompt, n, nil)
	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{Model: "stories260K",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(n), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Choices[0].Text != want || comp.Usage.CompletionTokens != n || comp.Choices[0].FinishReason != "length" {
		t.Fatalf("completion %q (%d tokens, %s), kvc run %q", comp.Choices[0].Text, comp.Usage.CompletionTokens, comp.Choices[0].FinishReason, want)
	}
	st := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "stories260K",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
		MaxTokens: openai.Int(n), Temperature: openai.Float(0)})
	var streamed strings.Builder
	for st.Next() {
		for _, c := range st.Current().Choices {
			streamed.WriteString(c.Text)
		}
	}
	if err := st.Err(); err != nil || streamed.String() != want {
		t.Fatalf("streamed completion %q (%v), kvc run %q", streamed.String(), err, want)
	}

	tmpl, _ := chatTemplate(s.l)
	rendered, err := tmpl.Render([]chat.Message{{Role: "user", Content: "Tell me a story about a cat."}}, true)
	if err != nil {
		t.Fatal(err)
	}
	wantChat := generateText(t, "cpu", rendered, n, nil)
	params := openai.ChatCompletionNewParams{Model: "stories260K",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story about a cat.")},
		MaxTokens: openai.Int(n), Temperature: openai.Float(0), Seed: openai.Int(7)}
	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Choices[0].Message.Content != wantChat || cc.Usage.CompletionTokens+cc.Usage.PromptTokens != cc.Usage.TotalTokens {
		t.Fatalf("chat %q, kvc run on the rendered prompt %q (usage %+v)", cc.Choices[0].Message.Content, wantChat, cc.Usage)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	cs := client.Chat.Completions.NewStreaming(ctx, params)
	var chatStreamed strings.Builder
	var finish string
	var completion int64
	for cs.Next() {
		ch := cs.Current()
		for _, c := range ch.Choices {
			chatStreamed.WriteString(c.Delta.Content)
			if c.FinishReason != "" {
				finish = c.FinishReason
			}
		}
		if ch.Usage.TotalTokens > 0 {
			completion = ch.Usage.CompletionTokens
		}
	}
	if err := cs.Err(); err != nil || chatStreamed.String() != wantChat || finish != "length" || completion != n {
		t.Fatalf("streamed chat %q finish %q, %d tokens (%v); want %q", chatStreamed.String(), finish, completion, err, wantChat)
	}
	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "stories260K" {
		t.Fatalf("models: %+v %v", models, err)
	}
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Fatalf("unknown model: %v", err)
	}
}

// 64 streaming clients at once on a pool too small for all of them, every fifth one disconnecting after
// three chunks: every stream that finishes equals its prompt's solo greedy text, the pool is whole again,
// no goroutine is left behind, and the metrics add up.
func TestServeConcurrentStreams(t *testing.T) {
	before := runtime.NumGoroutine()
	const clients, n = 64, 24
	s := startTestServer(t, func(o *serveOptions) { o.ef.kvMem = "225KiB"; o.ef.maxRows = 32; o.maxSeqs = 16 })
	pool := s.l.eng.Pool
	prompts := []string{"Once upon a time", "The cat", "Lily and Ben went", "One day, a big dog", "The sun was", "Tom had a red",
		"A little bird", "In the park"}
	solo := map[string]string{}
	for _, p := range prompts {
		solo[p] = generateText(t, "cpu", p, n, nil)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	type outcome struct {
		res    sseResult
		status int
		err    error
		left   bool
	}
	outs := make([]outcome, clients)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := prompts[i%len(prompts)]
			leave := i%5 == 0
			body := map[string]any{"model": "stories260K", "prompt": p, "max_tokens": n, "temperature": 0, "stream": true,
				"stream_options": map[string]bool{"include_usage": true}}
			r, status, err := streamRequest(context.Background(), hc, s.url+"/v1/completions", body, func(k int, _ string) bool {
				return !(leave && k == 3)
			})
			outs[i] = outcome{r, status, err, leave}
		}()
	}
	wg.Wait()
	hc.CloseIdleConnections()
	finished, leftEarly, genTokens := 0, 0, 0
	for i, o := range outs {
		p := prompts[i%len(prompts)]
		if o.err != nil || o.status != http.StatusOK {
			t.Fatalf("client %d: status %d, %v", i, o.status, o.err)
		}
		if !o.res.Done {
			if !o.left {
				t.Fatalf("client %d: the stream ended without [DONE] after %q", i, o.res.Text)
			}
			leftEarly++
			if !strings.HasPrefix(solo[p], o.res.Text) {
				t.Fatalf("client %d left after %q, not a prefix of the solo text %q", i, o.res.Text, solo[p])
			}
			continue
		}
		finished++
		if o.res.Text != solo[p] || o.res.Usage == nil || o.res.Usage.CompletionTokens != n || o.res.Finish != "length" {
			t.Fatalf("client %d (%q): streamed %q (finish %q, usage %+v), solo %q", i, p, o.res.Text, o.res.Finish, o.res.Usage, solo[p])
		}
		genTokens += o.res.Usage.CompletionTokens
	}
	if leftEarly == 0 {
		t.Fatalf("no client disconnected mid-stream")
	}
	// The scheduler drops the disconnected requests at its next step: wait until it has.
	metrics := func() string {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := func(text, name string) float64 { return metricValue(strings.NewReader(text), name) }
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		text = metrics()
		// (a handler counts its request when it returns, which for a client that left can come later)
		if m(text, `kvc_requests_finished_total{reason="length"}`)+m(text, `kvc_requests_finished_total{reason="cancelled"}`) == clients &&
			m(text, `kvc_http_requests_total{code="200",endpoint="completions"}`) == clients {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler did not finish every request:\n%s", text)
		}
	}
	cancelled := m(text, `kvc_requests_finished_total{reason="cancelled"}`)
	completed := m(text, `kvc_requests_finished_total{reason="length"}`)
	t.Logf("%d clients: %d finished, %d left early (%v cancelled in the scheduler), %v preemptions in a pool of %d blocks",
		clients, finished, leftEarly, cancelled, m(text, "kvc_preemptions_total"), pool.Blocks())
	switch {
	case completed < float64(finished) || cancelled > float64(leftEarly):
		t.Fatalf("metrics: %v completed, %v cancelled; clients: %d finished, %d left", completed, cancelled, finished, leftEarly)
	case m(text, `kvc_http_requests_total{code="200",endpoint="completions"}`) != clients:
		t.Fatalf("metrics count %v requests with status 200, want %d", m(text, `kvc_http_requests_total{code="200",endpoint="completions"}`), clients)
	case m(text, "kvc_generation_tokens_total") < float64(genTokens) || m(text, "kvc_generation_tokens_total") > clients*n:
		t.Fatalf("metrics count %v generated tokens; the finished streams got %d", m(text, "kvc_generation_tokens_total"), genTokens)
	case m(text, "kvc_time_to_first_token_seconds_count") != clients:
		t.Fatalf("%v first tokens timed, want %d", m(text, "kvc_time_to_first_token_seconds_count"), clients)
	case m(text, "kvc_kv_blocks_used") != 0 || m(text, "kvc_kv_blocks_free") != float64(pool.Blocks()):
		t.Fatalf("metrics: %v blocks used, %v free, the pool has %d", m(text, "kvc_kv_blocks_used"), m(text, "kvc_kv_blocks_free"), pool.Blocks())
	case m(text, "kvc_running_requests") != 0 || m(text, "kvc_queue_depth") != 0:
		t.Fatalf("metrics: %v running, %v queued after the run", m(text, "kvc_running_requests"), m(text, "kvc_queue_depth"))
	case m(text, "kvc_preemptions_total") == 0:
		t.Fatalf("the small pool caused no preemption: the test does not exercise it")
	}
	s.stop()
	if pool.InUse() != 0 {
		t.Fatalf("%d blocks still in use", pool.InUse())
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before the server, %d after it stopped:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

// Bad requests get OpenAI's error shape with the right status, and the server keeps serving.
func TestServeBadRequests(t *testing.T) {
	s := startTestServer(t, func(o *serveOptions) { o.maxBody = 4096 })
	long := strings.Repeat("Once upon a time there was a cat. ", 200)
	cases := []struct {
		path, body string
		status     int
		param, msg string
	}{
		{"/v1/completions", `{"prompt": "x"`, 400, "", "not valid JSON"},
		{"/v1/completions", `not json`, 400, "", "not valid JSON"},
		{"/v1/completions", ``, 400, "", "empty"},
		{"/v1/completions", `{"prompt": "x"} {"prompt": "y"}`, 400, "", "more than one"},
		{"/v1/completions", `{"prompt": "` + strings.Repeat("a", 5000) + `"}`, 413, "", "over 4096 bytes"},
		{"/v1/completions", `{"prompt": "x", "temperature": "hot"}`, 400, "temperature", "must be a number"},
		{"/v1/completions", `{"prompt": "x", "max_tokens": 2.5}`, 400, "max_tokens", "must be an integer"},
		{"/v1/completions", `{"prompt": "x", "stream": "yes"}`, 400, "stream", "must be a boolean"},
		{"/v1/completions", `{"prompt": {"a": 1}}`, 400, "", `"prompt" must be`},
		{"/v1/completions", `{"prompt": "x", "colour": "red"}`, 400, "colour", "unrecognized request argument"},
		{"/v1/completions", `{"max_tokens": 3}`, 400, "prompt", "required"},
		{"/v1/completions", `{"prompt": "x", "n": 2}`, 400, "n", "n = 2"},
		{"/v1/completions", `{"prompt": "x", "max_tokens": -1}`, 400, "max_tokens", ">= 0"},
		{"/v1/completions", `{"prompt": "x", "temperature": -1}`, 400, "", "temperature"},
		{"/v1/completions", `{"prompt": "x", "kv_rate": 4}`, 400, "kv_budget", "eviction policy"},
		{"/v1/completions", `{"prompt": "x", "kv_policy": "h2o"}`, 400, "kv_policy", `runs "full"`},
		{"/v1/completions", `{"prompt": [1, 99999]}`, 400, "prompt", "outside the vocabulary"},
		{"/v1/completions", `{"prompt": "x", "model": "gpt-4"}`, 404, "model", "does not exist"},
		{"/v1/chat/completions", `{"messages": [{"role": "wizard", "content": "x"}]}`, 400, "messages[0].role", "wizard"},
		{"/v1/chat/completions", `{"messages": "hi"}`, 400, "messages", "must be a list"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": 5}]}`, 400, "", `"content" must be`},
		{"/v1/chat/completions", `{"prompt": "x"}`, 400, "prompt", "unrecognized"},
		{"/v1/nothing", `{}`, 404, "", "no route"},
	}
	for _, c := range cases {
		status, _, body := post(t, s.url+c.path, c.body)
		e, _ := body["error"].(map[string]any)
		msg, _ := e["message"].(string)
		param, _ := e["param"].(string)
		if status != c.status || e == nil || e["type"] == nil || param != c.param || !strings.Contains(msg, c.msg) {
			b := c.body
			if len(b) > 80 {
				b = b[:80] + "..."
			}
			t.Errorf("%s %s: status %d, %v; want %d, param %q, message with %q", c.path, b, status, body, c.status, c.param, c.msg)
		}
	}
	// A prompt past the context (the body limit raised for it) is refused, or truncated when asked.
	s2 := startTestServer(t, nil)
	body, _ := json.Marshal(map[string]any{"prompt": long, "max_tokens": 4})
	status, _, m := post(t, s2.url+"/v1/completions", string(body))
	if e, _ := m["error"].(map[string]any); status != 400 || e["code"] != "context_length_exceeded" {
		t.Errorf("prompt past the context: %d %v", status, m)
	}
	body, _ = json.Marshal(map[string]any{"prompt": long, "max_tokens": 4, "truncate": true})
	if status, _, m := post(t, s2.url+"/v1/completions", string(body)); status != 200 {
		t.Errorf("truncated prompt: %d %v", status, m)
	}
	// Still serving.
	status, _, m = post(t, s.url+"/v1/completions", `{"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}`)
	if status != 200 || len(m["choices"].([]any)) != 1 {
		t.Fatalf("after the bad requests: %d %v", status, m)
	}
}

// A full queue answers 429 with Retry-After; a draining server answers 503 and finishes the streams in
// flight; kvc serve exits cleanly after SIGTERM.
func TestServeQueueAndDrain(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	sigs := make(chan os.Signal, 1)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	var log bytes.Buffer
	go func() {
		done <- runServe([]string{"--model", "stories260K", "--device", "cpu", "--port", "0", "--max-seqs", "1", "--max-queue", "1",
			"--drain-timeout", "20s", "--quiet"}, &lockedWriter{w: &log}, sigs, func(a string) { addr <- a })
	}()
	url := "http://" + <-addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("/health while loading: %d", resp.StatusCode)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never healthy: %v", err)
		}
	}
	// One running (it waits for us after its first chunk), one queued, the third refused.
	hold := make(chan struct{})
	running := make(chan struct{})
	type res struct {
		r   sseResult
		err error
	}
	first, second := make(chan res, 1), make(chan res, 1)
	long := map[string]any{"prompt": "Once", "max_tokens": 450, "ignore_eos": true, "temperature": 0, "stream": true}
	go func() {
		r, _, err := streamRequest(context.Background(), http.DefaultClient, url+"/v1/completions", long, func(k int, _ string) bool {
			if k == 1 {
				close(running)
				<-hold
			}
			return true
		})
		first <- res{r, err}
	}()
	<-running
	go func() {
		r, _, err := streamRequest(context.Background(), http.DefaultClient, url+"/v1/completions", long, nil)
		second <- res{r, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); scrapeMetric(url, "kvc_queue_depth") != 1; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second request was never queued")
		}
	}
	status, retry, m := post(t, url+"/v1/completions", `{"prompt": "x", "max_tokens": 2}`)
	if e, _ := m["error"].(map[string]any); status != http.StatusTooManyRequests || retry == "" || e["type"] != "rate_limit_error" {
		t.Fatalf("a full queue answered %d, Retry-After %q: %v", status, retry, m)
	}
	sigs <- os.Interrupt
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, retry, m := post(t, url+"/v1/completions", `{"prompt": "x", "max_tokens": 2}`)
		if st == http.StatusServiceUnavailable {
			if retry == "" || m["error"] == nil {
				t.Fatalf("503 while draining without Retry-After or error body: %v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a draining server answered %d", st)
		}
	}
	close(hold)
	for _, ch := range []chan res{first, second} {
		r := <-ch
		if r.err != nil || !r.r.Done || r.r.Finish != "length" {
			t.Fatalf("a stream in flight during the drain: %+v %v", r.r, r.err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kvc serve after the drain: %v\n%s", err, log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("kvc serve did not exit after draining")
	}
}

// A drain that times out cancels what is left: the stream gets an error event, kvc serve still exits 0.
func TestServeDrainTimeout(t *testing.T) {
	t.Setenv("KVC_MODELS", sharedModels(t))
	sigs := make(chan os.Signal, 1)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe([]string{"--model", "stories260K", "--device", "cpu", "--port", "0", "--drain-timeout", "1ms", "--quiet"},
			io.Discard, sigs, func(a string) { addr <- a })
	}()
	url := "http://" + <-addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never healthy")
		}
	}
	hold := make(chan struct{})
	got := make(chan sseResult, 1)
	go func() {
		body := map[string]any{"prompt": "Once", "max_tokens": 500, "ignore_eos": true, "temperature": 0, "stream": true}
		r, _, _ := streamRequest(context.Background(), http.DefaultClient, url+"/v1/completions", body, func(k int, _ string) bool {
			if k == 1 {
				hold <- struct{}{}
			}
			return true
		})
		got <- r
	}()
	<-hold
	sigs <- os.Interrupt
	r := <-got
	if r.Done && r.ErrorMessage == "" || !strings.Contains(r.ErrorMessage, "cancelled") {
		t.Fatalf("a stream cut by the drain timeout: %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
