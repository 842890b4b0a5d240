package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Any body decodes to a request or to a 400/413 error that names what is wrong; nothing panics.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"messages": [{"role": "user", "content": "hi"}], "stream": true}`,
		`{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "stop": ["x"], "n": 1}`,
		`{"prompt": [1, 2, 3], "max_tokens": 4, "kv_rate": 8, "stream_options": {"include_usage": true}}`,
		`{"prompt": ["a", "b"]}`, `{"prompt": "x", "temperature": "hot"}`, `{"prompt": "x"`, `[]`, `null`, `{"a":1}`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&chatRequest{}, &completionRequest{}} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			e := decodeBody(w, r, 1<<12, v)
			if e == nil {
				if len(body) > 1<<12 {
					t.Fatalf("a body of %d bytes passed a limit of 4096", len(body))
				}
				continue
			}
			if (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge) || e.Message == "" || e.Type == "" {
				t.Fatalf("%q: error %+v", body, e)
			}
		}
	})
}

// Parameters the server does not support are refused by name; their no-op values pass.
func TestGenParamsCheck(t *testing.T) {
	one, two, zero, neg := 1, 2, 0.0, -1
	half, fl := 0.5, false
	yes := true
	cases := []struct {
		p     genParams
		param string
	}{
		{genParams{N: &one, PresencePenalty: &zero, FrequencyPenalty: &zero, Logprobs: &fl}, ""},
		{genParams{N: &two}, "n"},
		{genParams{MaxTokens: &neg}, "max_tokens"},
		{genParams{MaxTokens: &one, MaxCompletionTokens: &two}, "max_tokens"},
		{genParams{KVRate: &half}, "kv_rate"},
		{genParams{PresencePenalty: &half}, "presence_penalty"},
		{genParams{Logprobs: &yes}, "logprobs"},
	}
	for _, c := range cases {
		e := c.p.check()
		if (e == nil) != (c.param == "") || (e != nil && e.Param != c.param) {
			t.Errorf("%+v: %v, want param %q", c.p, e, c.param)
		}
	}
}
