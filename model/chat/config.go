package chat

import (
	"encoding/json"
	"fmt"
	"os"
)

// FromTokenizerConfig reads a Hugging Face tokenizer_config.json: its chat_template (a string, or a
// list of {name, template} where the one named "default" is used, else the first) and its bos_token
// and eos_token, which replace the family defaults in the Template. The warning is Detect's.
func FromTokenizerConfig(path string) (Template, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Template{}, "", fmt.Errorf("chat: %w", err)
	}
	t, warn, err := ParseTokenizerConfig(data)
	if err != nil {
		return Template{}, "", fmt.Errorf("chat: %s: %w", path, err)
	}
	return t, warn, nil
}

// ParseTokenizerConfig is FromTokenizerConfig on the file's bytes.
func ParseTokenizerConfig(data []byte) (Template, string, error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return Template{}, "", fmt.Errorf("tokenizer_config.json: %w", err)
	}
	src, err := chatTemplateSource(cfg.ChatTemplate)
	if err != nil {
		return Template{}, "", err
	}
	t, warn := Detect(src)
	bos, err := tokenText("bos_token", cfg.BOS)
	if err != nil {
		return Template{}, "", err
	}
	eos, err := tokenText("eos_token", cfg.EOS)
	if err != nil {
		return Template{}, "", err
	}
	if bos != nil {
		t.BOS = *bos
	}
	if eos != nil {
		t.EOS = *eos
	}
	return t, warn, nil
}

func chatTemplateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("tokenizer_config.json: chat_template: want a string or a list of {name, template}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	if len(named) > 0 {
		return named[0].Template, nil
	}
	return "", nil
}

// tokenText reads a special token given as a string, as {"content": ...} (AddedToken) or as null
// (nil: not given).
func tokenText(key string, raw json.RawMessage) (*string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return &s, nil
	}
	var o struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &o); err != nil || o.Content == nil {
		return nil, fmt.Errorf("tokenizer_config.json: %s: want a string, {\"content\": ...} or null", key)
	}
	return o.Content, nil
}

// FromGGUF detects the template stored in GGUF metadata (tokenizer.chat_template) and takes the BOS
// and EOS texts from the vocab (tokenizer.ggml.tokens at bos_token_id / eos_token_id) when they are
// there. A file without a template gets the Plain format and Detect's warning.
func FromGGUF(meta map[string]any) (Template, string) {
	src, _ := meta["tokenizer.chat_template"].(string)
	t, warn := Detect(src)
	tokens, _ := meta["tokenizer.ggml.tokens"].([]string)
	if s, ok := tokenAt(tokens, meta["tokenizer.ggml.bos_token_id"]); ok {
		t.BOS = s
	}
	if s, ok := tokenAt(tokens, meta["tokenizer.ggml.eos_token_id"]); ok {
		t.EOS = s
	}
	return t, warn
}

func tokenAt(tokens []string, id any) (string, bool) {
	var i int64 = -1
	switch x := id.(type) {
	case uint32:
		i = int64(x)
	case int32:
		i = int64(x)
	case uint64:
		if x < 1<<31 {
			i = int64(x)
		}
	case int64:
		i = x
	case int:
		i = int64(x)
	}
	if i < 0 || i >= int64(len(tokens)) {
		return "", false
	}
	return tokens[i], true
}
