package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The reference benchmark's rule, max(128, ((Lc/cr) - 1) // 16 * 16), on the paper's settings.
func TestBudgetForRate(t *testing.T) {
	for _, c := range []struct {
		rate            float64
		inputLen, floor int
		protect, want   int
	}{
		{64, 6000, 128, 32, 128}, // 92.75 -> 80 -> the floor
		{32, 6000, 128, 32, 176},
		{2, 500, 128, 32, 240},
		{4, 500, 128, 32, 128}, // 124 -> 112 -> the floor
		{4, 96, 0, 32, 32},     // below the protected window: the window
		{100, 50, 0, 0, 16},    // never below one block
	} {
		if got := budgetForRate(c.rate, c.inputLen, 16, c.floor, c.protect); got != c.want {
			t.Errorf("rate %g, input %d, floor %d, protect %d: budget %d, want %d", c.rate, c.inputLen, c.floor, c.protect, got, c.want)
		}
	}
}

func TestParseRates(t *testing.T) {
	r, err := parseRates("2, 4,2")
	if err != nil || fmt.Sprint(r) != "[1 2 4]" {
		t.Errorf("2,4,2: %v %v, want [1 2 4]", r, err)
	}
	for _, bad := range []string{"0.5", "x", "1,inf", "NaN"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// On stories260K (CPU) with a KV pool that holds about three uncompressed sequences, compression lets
// more sequences decode at once; every request of every rate completes.
func TestBenchThroughputStories(t *testing.T) {
	var out bytes.Buffer
	err := runBenchThroughput([]string{"--model", genStoriesDir(t), "--device", "cpu", "--quiet", "--json", "--prompts", "12",
		"--input-len", "96", "--output-len", "16", "--kv-mem", "480KiB", "--max-rows", "64", "--kv-rate", "4",
		"--cache-floor", "16"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var res throughputBench
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Rates) != 2 || res.Rates[0].Rate != 1 || res.Rates[1].Rate != 4 {
		t.Fatalf("rates %+v, want 1 then 4", res.Rates)
	}
	full, comp := res.Rates[0], res.Rates[1]
	for _, r := range res.Rates {
		if r.Completed != 12 || r.Errors != 0 || r.TotalTokS <= 0 || r.OutputTokS*(96+16) > r.TotalTokS*16*1.0001 {
			t.Errorf("rate %g: %+v", r.Rate, r)
		}
	}
	if full.Ratio != 1 || full.Policy != "full" || full.Rounds != 0 || full.BudgetTokens != 0 {
		t.Errorf("rate 1: %+v", full)
	}
	if comp.BudgetTokens != 32 || comp.Rounds == 0 || comp.EvictedKVs == 0 || comp.Policy != "kvcompress" {
		t.Errorf("rate 4: %+v", comp)
	}
	if comp.PeakBatch <= full.PeakBatch {
		t.Errorf("compression did not raise the decode batch: %d at rate 4, %d at rate 1", comp.PeakBatch, full.PeakBatch)
	}
	t.Logf("rate 1: %.0f tok/s, batch %d; rate 4: %.0f tok/s (%.2fx), batch %d", full.TotalTokS, full.PeakBatch,
		comp.TotalTokS, comp.Ratio, comp.PeakBatch)

	var table bytes.Buffer
	printThroughput(&table, res)
	if !strings.Contains(table.String(), "ratio") || strings.Count(table.String(), "\n") != 6 {
		t.Errorf("table:\n%s", table.String())
	}
}
