package kvpages

import (
	"math"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	ok := Options{Policy: PolicyKVCompress, BlockSize: 16, Protect: 32, Budget: Budget{MaxCacheTokens: 128}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	bad := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"block size 0", func(o *Options) { o.BlockSize = 0 }, "block size"},
		{"block size -4", func(o *Options) { o.BlockSize = -4 }, "block size"},
		{"protect < 0", func(o *Options) { o.Protect = -1 }, "protected window"},
		{"recent > 1", func(o *Options) { o.Recent = 1.5 }, "recency share"},
		{"recent NaN", func(o *Options) { o.Recent = math.NaN() }, "recency share"},
		{"recent < 0", func(o *Options) { o.Recent = -0.1 }, "recency share"},
		{"floor > 1", func(o *Options) { o.Floor = 1.01 }, "head floor"},
		{"floor NaN", func(o *Options) { o.Floor = math.NaN() }, "head floor"},
		{"floor < 0", func(o *Options) { o.Floor = -0.2 }, "head floor"},
		{"floor with uniform", func(o *Options) { o.Floor = 0.2; o.Policy = PolicyUniform }, "head floor"},
		{"sinks < 0", func(o *Options) { o.Sinks = -1 }, "sinks"},
		{"cap < 0", func(o *Options) { o.MaxKVPerRound = -1 }, "max KVs per round"},
		{"no budget", func(o *Options) { o.Budget = Budget{} }, "needs a budget"},
		{"both budgets", func(o *Options) { o.Budget.Rate = 2 }, "not both"},
		{"rate < 1", func(o *Options) { o.Budget = Budget{Rate: 0.5} }, "rate"},
		{"rate NaN", func(o *Options) { o.Budget = Budget{Rate: math.NaN()} }, "rate"},
		{"rate Inf", func(o *Options) { o.Budget = Budget{Rate: math.Inf(1)} }, "rate"},
		{"negative tokens", func(o *Options) { o.Budget = Budget{MaxCacheTokens: -5} }, "max cache tokens"},
		// 16 tokens is one block per head; protect 32 needs two.
		{"budget below protected", func(o *Options) { o.Budget = Budget{MaxCacheTokens: 16} }, "smaller than the protected window"},
		{"budget below protected+sinks", func(o *Options) { o.Budget = Budget{MaxCacheTokens: 32}; o.Sinks = 1 }, "smaller than the protected window"},
		{"unknown policy", func(o *Options) { o.Policy = 42 }, "unknown kv policy"},
	}
	for _, c := range bad {
		o := ok
		c.mod(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
		if _, err := NewPlanner(o); err == nil {
			t.Errorf("%s: NewPlanner accepted invalid options", c.name)
		}
	}
	// A budget of 17 tokens rounds up to 2 blocks per head: enough for protect 32.
	o := ok
	o.Budget = Budget{MaxCacheTokens: 17}
	if err := o.Validate(); err != nil {
		t.Errorf("17 tokens (2 blocks of 16) rejected for protect 32: %v", err)
	}
	if err := (Options{Policy: PolicyFull, BlockSize: 16}).Validate(); err != nil {
		t.Errorf("full policy without a budget rejected: %v", err)
	}
}

func TestBudgetBlocks(t *testing.T) {
	s := NewSeq(2, 4) // 8 heads
	s.NextPos = 1000
	for hd := range s.Tables {
		s.Tables[hd] = make([]int32, 63)
		s.Ctx[hd] = 1000
	}
	o := Options{Policy: PolicyKVCompress, BlockSize: 16, Protect: 32, Budget: Budget{MaxCacheTokens: 100}}
	if got := o.BudgetBlocks(s, Budget{}); got != 7*8 { // 100 -> 112 tokens = 7 blocks per head
		t.Errorf("budget blocks %d, want 56", got)
	}
	if got := o.Excess(s, Budget{}); got != (63-7)*8 {
		t.Errorf("excess %d, want %d", got, (63-7)*8)
	}
	// Rate 4: P = 32, C_R = 32 + ceil(968/4) = 274 -> 18 blocks per head.
	if got := o.BudgetBlocks(s, Budget{Rate: 4}); got != 18*8 {
		t.Errorf("rate-4 budget blocks %d, want 144", got)
	}
	// Rate 1 keeps everything.
	if got := o.Excess(s, Budget{Rate: 1}); got != 0 {
		t.Errorf("rate-1 excess %d, want 0", got)
	}
	// Sinks count as protected: P = 36, C_R = 36 + ceil(964/3) = 358 -> 23 blocks.
	o.Sinks = 4
	if got := o.BudgetBlocks(s, Budget{Rate: 3}); got != 23*8 {
		t.Errorf("rate-3 budget blocks with sinks %d, want 184", got)
	}
	// A short sequence is all protected.
	s.NextPos = 10
	if got := o.BudgetBlocks(s, Budget{Rate: 64}); got != 1*8 {
		t.Errorf("short-sequence budget %d, want 8", got)
	}
	o.Policy = PolicyFull
	if got := o.Excess(s, Budget{}); got != 0 {
		t.Errorf("full policy excess %d", got)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{PolicyKVCompress, PolicyFull, PolicyUniform, PolicyWindow, PolicyH2O} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if got, err := ParsePolicy(" KVC "); err != nil || got != PolicyKVCompress {
		t.Errorf("ParsePolicy(KVC) = %v, %v", got, err)
	}
	if _, err := ParsePolicy("snapkv"); err == nil || !strings.Contains(err.Error(), "snapkv") {
		t.Errorf("unknown policy error: %v", err)
	}
	if m := PolicyH2O.Metric(); !m.Needed || m.Squared || m.ObservationWindow {
		t.Errorf("h2o metric %+v: want plain accumulated attention without a window", m)
	}
	if m := PolicyKVCompress.Metric(); !m.Needed || m.Squared || !m.PerQuery || m.ObservationWindow || !m.Decode {
		t.Errorf("kvcompress metric %+v", m)
	}
	if PolicyWindow.Metric().Needed || PolicyFull.Metric().Needed {
		t.Error("window and full need no metric")
	}
}

func TestParseMetric(t *testing.T) {
	for _, m := range []Metric{MetricL2Sum, MetricL1Sum, MetricL2Avg, MetricL1Avg, MetricVATP} {
		got, err := ParseMetric(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", m.String(), got, err)
		}
	}
	for s, want := range map[string]Metric{"": MetricDefault, " L2-SUM ": MetricL2Sum, "l1-sum": MetricL1Sum} {
		if got, err := ParseMetric(s); err != nil || got != want {
			t.Errorf("ParseMetric(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"l3", "avg", "default", "l1-max", "vatp-sum"} {
		if _, err := ParseMetric(s); err == nil || !strings.Contains(err.Error(), "kv metric") {
			t.Errorf("ParseMetric(%q) accepted (%v)", s, err)
		}
	}
}

// Each metric turns into the collection it names, for the policies that rank by a metric; a metric given to
// a policy that ranks by none is refused, and Validate refuses it before any work.
func TestMetricWith(t *testing.T) {
	for _, p := range []Policy{PolicyKVCompress, PolicyUniform, PolicyH2O} {
		for _, c := range []struct {
			m                            Metric
			squared, perQuery, valueNorm bool
		}{{MetricL2Sum, true, false, false}, {MetricL1Sum, false, false, false}, {MetricL2Avg, true, true, false},
			{MetricL1Avg, false, true, false}, {MetricVATP, false, true, true}} {
			src, err := p.MetricWith(c.m)
			if err != nil || !src.Needed || !src.Decode || src.Squared != c.squared || src.PerQuery != c.perQuery ||
				src.ValueNorm != c.valueNorm {
				t.Errorf("%s with %s: %+v, %v", p, c.m, src, err)
			}
			// The paper's window for the summed metrics of kvcompress and uniform; every prompt query for
			// h2o and for the per-query means, whose divisor counts every query.
			if src.ObservationWindow != (p != PolicyH2O && !c.perQuery) {
				t.Errorf("%s with %s: observation window %v", p, c.m, src.ObservationWindow)
			}
			// The per-query means skip the queries right after a KV (the metric buffer); the sums, the
			// paper's and h2o's, take every query.
			if want := map[bool]int{true: 10}[c.perQuery]; src.Buffer != want {
				t.Errorf("%s with %s: metric buffer %d, want %d", p, c.m, src.Buffer, want)
			}
		}
	}
	if m, _ := PolicyUniform.MetricWith(MetricDefault); m != PolicyKVCompress.Metric() {
		t.Errorf("uniform's default metric %+v differs from kvcompress's %+v: the baselines must rank alike", m, PolicyKVCompress.Metric())
	}
	for _, p := range []Policy{PolicyWindow, PolicyFull} {
		for _, m := range []Metric{MetricL1Avg, MetricVATP} {
			if _, err := p.MetricWith(m); err == nil || !strings.Contains(err.Error(), "means nothing") {
				t.Errorf("%s with %s: %v", p, m, err)
			}
		}
		o := Options{Policy: p, Metric: MetricL2Sum, BlockSize: 16, Budget: Budget{MaxCacheTokens: 64}}
		if err := o.Validate(); err == nil {
			t.Errorf("Validate accepted %s with metric l2", p)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"kvcompress", "full", "uniform", "window", "h2o", "kvc", "", "H2O", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		if back, err := ParsePolicy(p.String()); err != nil || back != p {
			t.Fatalf("%q -> %v does not round-trip", s, p)
		}
	})
}

func TestMetricKeyOrder(t *testing.T) {
	vals := []float32{float32(math.Inf(-1)), -3e38, -1, -1e-45, 0, float32(math.Copysign(0, -1)), 1e-45, 0.5, 1, 3e38, float32(math.Inf(1))}
	for _, x := range vals {
		for _, y := range vals {
			kx, ky := metricKey(x), metricKey(y)
			if (x < y) != (kx < ky) || (x == y) != (kx == ky) {
				t.Errorf("order of %g, %g not kept: keys %x, %x", x, y, kx, ky)
			}
		}
		if x != 0 && keyMetric(metricKey(x)) != x {
			t.Errorf("keyMetric(metricKey(%g)) = %g", x, keyMetric(metricKey(x)))
		}
	}
}

// A KV inside the metric buffer has no metric yet, so it is protected like the protected window; the
// buffer is capped so that the protected positions and the sinks fit the budget, and the summed metrics
// protect only the window and the recency share.
func TestProtectMetricBuffer(t *testing.T) {
	s := &Seq{NextPos: 200}
	for _, c := range []struct {
		m                      Metric
		budget, protect, sinks int
		recent                 float64
		want                   int
	}{
		{MetricL1Avg, 64, 8, 0, 0, 10},
		{MetricL1Avg, 64, 12, 0, 0, 12},
		{MetricL1Avg, 64, 8, 0, 0.5, 32},
		{MetricL1Avg, 16, 8, 0, 0.5, 10},
		{MetricL1Avg, 8, 4, 2, 0, 6}, // capped at the budget minus the sinks
		{MetricL2Sum, 64, 8, 0, 0, 8},
		{MetricL2Sum, 16, 8, 0, 0.5, 8},
	} {
		o := Options{Policy: PolicyKVCompress, Metric: c.m, BlockSize: 4, Budget: Budget{MaxCacheTokens: c.budget},
			Protect: c.protect, Sinks: c.sinks, Recent: c.recent}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := o.protectFor(s, Budget{}); got != c.want {
			t.Errorf("%+v: protects %d positions, want %d", c, got, c.want)
		}
	}
}
