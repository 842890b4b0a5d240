package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"kvc/server"
)

func init() {
	// kvc bench serve (bench.go owns the mode table; this file adds its mode to it).
	benchModes["serve"] = cmdBenchServe
}

// sseResult is what a streaming client saw.
type sseResult struct {
	Text         string
	Chunks       int // chunks that carried text
	Finish       string
	Usage        *struct{ PromptTokens, CompletionTokens int }
	TTFT         time.Duration // request sent to the first chunk with text
	Done         bool          // data: [DONE] was read
	ErrorMessage string        // an error event
}

// streamRequest POSTs body to url with stream on and reads the server-sent events. onChunk, when set,
// sees each text chunk; returning false drops the connection (a client that goes away).
func streamRequest(ctx context.Context, c *http.Client, url string, body any, onChunk func(n int, text string) bool) (sseResult, int, error) {
	var res sseResult
	data, err := json.Marshal(body)
	if err != nil {
		return res, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return res, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return res, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return res, resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			res.Done = true
			break
		}
		var ev struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return res, resp.StatusCode, fmt.Errorf("event %q: %v", line, err)
		}
		if ev.Error != nil {
			res.ErrorMessage = ev.Error.Message
		}
		if ev.Usage != nil {
			res.Usage = &struct{ PromptTokens, CompletionTokens int }{ev.Usage.PromptTokens, ev.Usage.CompletionTokens}
		}
		for _, ch := range ev.Choices {
			text := ch.Text + ch.Delta.Content
			if ch.FinishReason != nil {
				res.Finish = *ch.FinishReason
			}
			if text == "" {
				continue
			}
			if res.Chunks == 0 {
				res.TTFT = time.Since(start)
			}
			res.Chunks++
			res.Text += text
			if onChunk != nil && !onChunk(res.Chunks, text) {
				return res, resp.StatusCode, nil
			}
		}
	}
	return res, resp.StatusCode, sc.Err()
}

// serveLoad is one load generator run: clients each send requests one after another.
type serveLoad struct {
	Rate         float64 `json:"kv_rate"`
	Clients      int     `json:"clients"`
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	WallS        float64 `json:"wall_s"`
	ReqPerS      float64 `json:"requests_per_s"`
	OutTokPerS   float64 `json:"output_tok_per_s"`
	TTFTMedianMS float64 `json:"ttft_median_ms"`
	TTFTP99MS    float64 `json:"ttft_p99_ms"`
	Preemptions  float64 `json:"preemptions"`
}

func runServeLoad(url string, clients, perClient int, prompts [][]int, outLen int) (serveLoad, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	var ttfts []time.Duration
	out, errs := 0, 0
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perClient; k++ {
				p := prompts[(c*perClient+k)%len(prompts)]
				body := map[string]any{"prompt": p, "max_tokens": outLen, "ignore_eos": true, "temperature": 0, "stream": true,
					"stream_options": map[string]bool{"include_usage": true}}
				r, _, err := streamRequest(context.Background(), hc, url+"/v1/completions", body, nil)
				mu.Lock()
				if err == nil && (r.Usage == nil || !r.Done) {
					err = errors.New("a stream without usage or [DONE]")
				}
				if err != nil {
					errs++
					firstErr = cmpOr(firstErr, err)
				} else {
					ttfts = append(ttfts, r.TTFT)
					out += r.Usage.CompletionTokens
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	res := serveLoad{Clients: clients, Requests: clients * perClient, Errors: errs, WallS: wall,
		ReqPerS: float64(len(ttfts)) / wall, OutTokPerS: float64(out) / wall}
	if len(ttfts) > 0 {
		sort.Slice(ttfts, func(i, j int) bool { return ttfts[i] < ttfts[j] })
		res.TTFTMedianMS = float64(ttfts[len(ttfts)/2].Microseconds()) / 1000
		res.TTFTP99MS = float64(ttfts[min(len(ttfts)-1, (len(ttfts)*99+99)/100-1)].Microseconds()) / 1000
	}
	if errs > 0 {
		return res, fmt.Errorf("%d of %d requests failed; the first: %w", errs, res.Requests, firstErr)
	}
	return res, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func cmdBenchServe(args []string) error {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	var o serveOptions
	o.register(fs)
	clientList := fs.String("clients", "1,8,32", "concurrent streaming clients to measure, comma-separated")
	rateList := fs.String("rates", "1,8", "server --kv-rate values to compare (1: --kv-policy full), each a fresh server on the same --kv-mem")
	perClient := fs.Int("requests-per-client", 4, "requests each client sends, one after another")
	inputLen := fs.Int("input-len", 128, "prompt tokens (random ids)")
	outputLen := fs.Int("output-len", 128, "output tokens per request (EOS ignored)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	clients, err := parseCounts(*clientList, "--clients")
	if err != nil {
		return err
	}
	rates, err := parseRates(*rateList)
	if err != nil {
		return err
	}
	if *perClient < 1 || *inputLen < 1 || *outputLen < 1 {
		return errors.New("--requests-per-client, --input-len and --output-len must be >= 1")
	}
	o.maxQueue = max(o.maxQueue, slicesMax(clients))
	var all []serveLoad
	for _, rate := range rates {
		ef := o.ef
		ef.policy, ef.rate = "full", 0
		if rate > 1 {
			ef.policy, ef.rate = "kvcompress", rate
		}
		ro := o
		ro.ef = ef
		loads, err := benchServeRate(&ro, rate, clients, *perClient, *inputLen, *outputLen)
		if err != nil {
			return fmt.Errorf("--kv-rate %g: %w", rate, err)
		}
		all = append(all, loads...)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	fmt.Printf("| kv-rate | clients | requests | req/s | output tok/s | TTFT median ms | TTFT p99 ms | preemptions |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range all {
		fmt.Printf("| %g | %d | %d | %.2f | %.1f | %.1f | %.1f | %.0f |\n", r.Rate, r.Clients, r.Requests, r.ReqPerS, r.OutTokPerS, r.TTFTMedianMS, r.TTFTP99MS, r.Preemptions)
	}
	return nil
}

func slicesMax(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func parseCounts(s, flagName string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%s %q: want positive integers separated by commas", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchServeRate loads one server as kvc serve does, on a loopback port, and measures each client count.
func benchServeRate(o *serveOptions, rate float64, clients []int, perClient, inputLen, outputLen int) ([]serveLoad, error) {
	l, err := load(&o.ef, os.Stderr)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	cfg := l.ck.Config
	if inputLen+outputLen > cfg.Context {
		return nil, fmt.Errorf("--input-len %d + --output-len %d is past the model's context of %d", inputLen, outputLen, cfg.Context)
	}
	srv := server.New("bench")
	sc, err := o.sf.config()
	if err != nil {
		return nil, err
	}
	scfg, _ := serveConfig(l, o, sc)
	if err := srv.Start(scfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	defer srv.Drain(time.Second)
	url := "http://" + ln.Addr().String()

	rng := rand.New(rand.NewPCG(1, 0x5e7e))
	prompts := make([][]int, 64)
	for i := range prompts {
		p := make([]int, inputLen)
		p[0] = cfg.BOS
		for j := 1; j < len(p); j++ {
			p[j] = rng.IntN(cfg.Vocab)
		}
		prompts[i] = p
	}
	// Warm up (pipelines, caches): one request, not measured.
	if _, err := runServeLoad(url, 1, 1, prompts, 8); err != nil {
		return nil, err
	}
	var out []serveLoad
	for _, c := range clients {
		before := scrapeMetric(url, "kvc_preemptions_total")
		r, err := runServeLoad(url, c, perClient, prompts, outputLen)
		if err != nil {
			return nil, err
		}
		r.Rate = rate
		r.Preemptions = scrapeMetric(url, "kvc_preemptions_total") - before
		fmt.Fprintf(os.Stderr, "kvc: rate %g, %d clients: %.2f req/s, %.1f output tok/s, TTFT median %.1f ms p99 %.1f ms\n",
			rate, c, r.ReqPerS, r.OutTokPerS, r.TTFTMedianMS, r.TTFTP99MS)
		out = append(out, r)
	}
	return out, nil
}

// scrapeMetric reads one unlabelled series from /metrics (0 when absent).
func scrapeMetric(url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return metricValue(resp.Body, name)
}

// metricValue finds the series name (with its labels, if any, written as in the exposition) in Prometheus text.
func metricValue(r io.Reader, name string) float64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			var v float64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	return 0
}
