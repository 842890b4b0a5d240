package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// apiError is an error in OpenAI's shape, with the HTTP status it is sent with.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// writeError sends e as {"error": {...}}.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]*apiError{"error": e})
}

// textOrParts is a message content: a string, or a list of {"type": "text", "text": ...} parts.
type textOrParts string

func (t *textOrParts) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = textOrParts(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New(`a message's "content" must be a string or a list of {"type": "text", "text": ...} parts`)
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf(`"content" parts of type %q are not supported (text only)`, p.Type)
		}
		sb.WriteString(p.Text)
	}
	*t = textOrParts(sb.String())
	return nil
}

// stringList is a string or a list of strings (stop).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = []string{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New(`"stop" must be a string or a list of strings`)
	}
	*l = ss
	return nil
}

// promptInput is a completion prompt: a string, a list of one string, or a list of token ids.
type promptInput struct {
	text   *string
	tokens []int
}

func (p *promptInput) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		p.text = &s
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err == nil {
		if len(ss) != 1 {
			return fmt.Errorf(`"prompt" is a list of %d prompts: this server takes one prompt per request`, len(ss))
		}
		p.text = &ss[0]
		return nil
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil {
		p.tokens = ids
		return nil
	}
	return errors.New(`"prompt" must be a string, a list of one string, or a list of token ids`)
}

type chatMessage struct {
	Role    string      `json:"role"`
	Content textOrParts `json:"content"`
	Name    string      `json:"name,omitempty"`
}

// genParams are the generation fields both endpoints share: OpenAI's and kvc's extensions.
type genParams struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage       bool  `json:"include_usage"`
		IncludeObfuscation *bool `json:"include_obfuscation"` // accepted; kvc pads nothing
	} `json:"stream_options"`
	MaxTokens           *int        `json:"max_tokens"`
	MaxCompletionTokens *int        `json:"max_completion_tokens"`
	Temperature         *float64    `json:"temperature"`
	TopP                *float64    `json:"top_p"`
	Seed                *int64      `json:"seed"`
	Stop                *stringList `json:"stop"`
	N                   *int        `json:"n"`
	User                string      `json:"user"`
	// Accepted at their no-op values only, so that clients that always send them work.
	PresencePenalty  *float64 `json:"presence_penalty"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	Logprobs         *bool    `json:"logprobs"`

	// kvc's extensions.
	KVPolicy      *string  `json:"kv_policy"`
	KVBudget      *int     `json:"kv_budget"`
	KVRate        *float64 `json:"kv_rate"`
	TopK          *int     `json:"top_k"`
	MinP          *float64 `json:"min_p"`
	RepeatPenalty *float64 `json:"repeat_penalty"`
	Truncate      bool     `json:"truncate"` // drop the start of a prompt past the context instead of a 400
	IgnoreEOS     bool     `json:"ignore_eos"`
}

type chatRequest struct {
	genParams
	Messages []chatMessage `json:"messages"`
}

type completionRequest struct {
	genParams
	Prompt *promptInput `json:"prompt"`
	Echo   bool         `json:"echo"`
}

// decodeBody reads one JSON object into v, refusing unknown fields, wrong types, trailing data and bodies
// over limit with an error that names the field.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	body := http.MaxBytesReader(w, r.Body, limit)
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("the request body is over %d bytes", limit)}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			f := strings.TrimPrefix(typeErr.Field, "genParams.")
			return badRequest(f, "%q must be %s, got a JSON %s", f, jsonKind(typeErr.Type.String()), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return badRequest("", "the body is not valid JSON: %v (at byte %d)", err, syntaxErr.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("", "the body is not valid JSON: it ends inside a value")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badRequest(f, "unrecognized request argument supplied: %s", f)
		case errors.Is(err, io.EOF):
			return badRequest("", "the body is empty: want a JSON object")
		}
		return badRequest("", "invalid request: %v", err) // the field decoders name their field
	}
	if dec.More() {
		return badRequest("", "the body holds more than one JSON value")
	}
	return nil
}

// jsonKind names a Go type as a JSON type for an error message.
func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "an object"
}

// check refuses what the server does not do, naming the field.
func (p *genParams) check() *apiError {
	if p.N != nil && *p.N != 1 {
		return badRequest("n", "n = %d: this server returns one choice per request (n = 1)", *p.N)
	}
	if p.MaxTokens != nil && p.MaxCompletionTokens != nil && *p.MaxTokens != *p.MaxCompletionTokens {
		return badRequest("max_tokens", "give max_tokens or max_completion_tokens, not two different values")
	}
	for name, v := range map[string]*int{"max_tokens": p.MaxTokens, "max_completion_tokens": p.MaxCompletionTokens, "kv_budget": p.KVBudget, "top_k": p.TopK} {
		if v != nil && *v < 0 {
			return badRequest(name, "%s must be >= 0, got %d", name, *v)
		}
	}
	for name, v := range map[string]*float64{"temperature": p.Temperature, "top_p": p.TopP, "min_p": p.MinP, "repeat_penalty": p.RepeatPenalty, "kv_rate": p.KVRate} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return badRequest(name, "%s must be a finite number", name)
		}
	}
	if p.KVRate != nil && *p.KVRate < 1 {
		return badRequest("kv_rate", "kv_rate must be >= 1, got %v", *p.KVRate)
	}
	if p.KVRate != nil && p.KVBudget != nil {
		return badRequest("kv_rate", "give kv_budget or kv_rate, not both")
	}
	if p.PresencePenalty != nil && *p.PresencePenalty != 0 {
		return badRequest("presence_penalty", "presence_penalty is not supported (use repeat_penalty)")
	}
	if p.FrequencyPenalty != nil && *p.FrequencyPenalty != 0 {
		return badRequest("frequency_penalty", "frequency_penalty is not supported (use repeat_penalty)")
	}
	if p.Logprobs != nil && *p.Logprobs {
		return badRequest("logprobs", "logprobs are not supported")
	}
	if p.StreamOptions != nil && !p.Stream {
		return badRequest("stream_options", "stream_options needs stream: true")
	}
	return nil
}

// maxTokens is the request's limit on new tokens, or def.
func (p *genParams) maxTokens(def int) int {
	switch {
	case p.MaxCompletionTokens != nil:
		return *p.MaxCompletionTokens
	case p.MaxTokens != nil:
		return *p.MaxTokens
	}
	return def
}

// Responses.

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
	Logprobs     *struct{}    `json:"logprobs"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type completionChoice struct {
	Index        int       `json:"index"`
	Text         string    `json:"text"`
	FinishReason *string   `json:"finish_reason"`
	Logprobs     *struct{} `json:"logprobs"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}
