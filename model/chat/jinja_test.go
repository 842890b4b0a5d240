package chat

import (
	"encoding/json"
	"os"
	"testing"
)

// TestRenderMatchesJinja compares Render with real Jinja renders of the same template sources
// (testdata/jinja_renders.json, made by testdata/gen_jinja.py with transformers' Jinja settings).
func TestRenderMatchesJinja(t *testing.T) {
	data, err := os.ReadFile("testdata/jinja_renders.json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Template string    `json:"template"`
		BOS      string    `json:"bos"`
		EOS      string    `json:"eos"`
		Messages []Message `json:"messages"`
		Gen      bool      `json:"add_generation_prompt"`
		Output   *string   `json:"output"`
		Error    string    `json:"error"`
	}
	if err := json.Unmarshal(data, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) < 100 {
		t.Fatalf("only %d renders", len(recs))
	}
	for _, r := range recs {
		src, err := os.ReadFile("testdata/templates/" + r.Template + ".jinja")
		if err != nil {
			t.Fatal(err)
		}
		tmpl, warn := Detect(string(src))
		if warn != "" {
			t.Errorf("%s: %s", r.Template, warn)
		}
		tmpl.BOS, tmpl.EOS = r.BOS, r.EOS
		got, err := tmpl.Render(r.Messages, r.Gen)
		switch {
		case r.Output == nil && err == nil:
			t.Errorf("%s %v gen=%v: Jinja raised %q, Render gave %q", r.Template, r.Messages, r.Gen, r.Error, got)
		case r.Output != nil && err != nil:
			t.Errorf("%s %v gen=%v: Render: %v; Jinja gave %q", r.Template, r.Messages, r.Gen, err, *r.Output)
		case r.Output != nil && got != *r.Output:
			t.Errorf("%s %v gen=%v:\n got %q\nwant %q", r.Template, r.Messages, r.Gen, got, *r.Output)
		}
	}
}
