package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Chat templates as published in tokenizer_config.json (after JSON decoding), one file each in
// testdata/templates; testdata/gen_jinja.py renders the same files with real Jinja.
var (
	llama3Src    = readTemplate("llama3")
	llama31Src   = readTemplate("llama31")
	llama2Src    = readTemplate("llama2")
	mistral01Src = readTemplate("mistral01")
	mistral02Src = readTemplate("mistral02")
	chatMLSrc    = readTemplate("chatml")
	qwen2Src     = readTemplate("qwen2")
	zephyrSrc    = readTemplate("zephyr")
)

func readTemplate(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
	if err != nil {
		panic(err)
	}
	return string(b)
}

var (
	system = Message{"system", "You are a helpful assistant."}
	user1  = Message{"user", "Hello!"}
	asst1  = Message{"assistant", "Hi! How can I help?"}
	user2  = Message{"user", "Tell me a story."}
	conv   = []Message{system, user1, asst1, user2}
)

// The expected texts are what each HF Jinja template renders for conv with add_generation_prompt
// (worked out by hand from the template sources above; Jinja runs with trim_blocks and lstrip_blocks
// as in transformers).
func TestRenderConversation(t *testing.T) {
	cases := []struct {
		name, src string
		format    Format
		msgs      []Message
		want      string
	}{
		{"llama3", llama3Src, Llama3, conv,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama3.1", llama31Src, Llama31, conv,
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>" +
				"<|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|>" +
				"<|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama2", llama2Src, Llama2, conv,
			"<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi! How can I help? </s><s>[INST] Tell me a story. [/INST]"},
		{"mistral v0.1", mistral01Src, Mistral, conv[1:],
			"<s>[INST] Hello! [/INST]Hi! How can I help?</s> [INST] Tell me a story. [/INST]"},
		{"mistral v0.2", mistral02Src, Mistral, conv[1:],
			"<s>[INST] Hello! [/INST]Hi! How can I help?</s>[INST] Tell me a story. [/INST]"},
		{"chatml", chatMLSrc, ChatML, conv,
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n" +
				"<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\nTell me a story.<|im_end|>\n" +
				"<|im_start|>assistant\n"},
		{"qwen2 default system", qwen2Src, ChatML, conv[1:],
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n" +
				"<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\nTell me a story.<|im_end|>\n" +
				"<|im_start|>assistant\n"},
		{"zephyr", zephyrSrc, Zephyr, conv,
			"<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\nHi! How can I help?</s>\n" +
				"<|user|>\nTell me a story.</s>\n<|assistant|>\n"},
		{"unknown", "{{ messages | tojson }}", Plain, conv,
			"System: You are a helpful assistant.\n\nUser: Hello!\n\nAssistant: Hi! How can I help?\n\nUser: Tell me a story.\n\nAssistant:"},
	}
	for _, c := range cases {
		tmpl, warn := Detect(c.src)
		if tmpl.Format != c.format {
			t.Errorf("%s: detected %v, want %v", c.name, tmpl.Format, c.format)
			continue
		}
		if (warn != "") != (c.format == Plain) {
			t.Errorf("%s: warning %q", c.name, warn)
		}
		got, err := tmpl.Render(c.msgs, true)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestRenderDetails(t *testing.T) {
	l3, _ := Detect(llama3Src)
	// Llama-3 trims each message; without the generation prompt the text ends at the last <|eot_id|>.
	got, _ := l3.Render([]Message{{"user", "  Hi \n"}}, false)
	if want := "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"; got != want {
		t.Errorf("llama3 trim: got %q, want %q", got, want)
	}
	// No messages: no BOS (the template writes it with the first message), only the header.
	if got, _ := l3.Render(nil, true); got != "<|start_header_id|>assistant<|end_header_id|>\n\n" {
		t.Errorf("llama3 empty: %q", got)
	}
	if l3.AddBOS() {
		t.Error("llama3 writes BOS itself: AddBOS must be false")
	}

	// Llama-3.1 always writes the system block; Today uses the current date like strftime_now.
	l31, _ := Detect(llama31Src)
	got, _ = l31.Render([]Message{user1}, false)
	if want := "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"; got != want {
		t.Errorf("llama3.1 no system: got %q, want %q", got, want)
	}
	l32, _ := Detect(strings.Replace(llama31Src, `"26 Jul 2024"`, `strftime_now("%d %b %Y")`, 1))
	got, _ = l32.Render([]Message{user1}, false)
	if !l32.Today || !strings.Contains(got, "Today Date: "+time.Now().Format("02 Jan 2006")+"\n\n") {
		t.Errorf("llama3.2 date: %q", got)
	}

	// Llama-2 without a system message; content is stripped; the generation prompt flag changes nothing.
	l2, _ := Detect(llama2Src)
	a, _ := l2.Render([]Message{{"user", " Hi "}, {"assistant", "Yo "}, {"user", "Bye"}}, true)
	b, _ := l2.Render([]Message{{"user", " Hi "}, {"assistant", "Yo "}, {"user", "Bye"}}, false)
	if want := "<s>[INST] Hi [/INST] Yo </s><s>[INST] Bye [/INST]"; a != want || b != want {
		t.Errorf("llama2: got %q / %q, want %q", a, b, want)
	}
	// Zephyr writes no BOS; the generation prompt follows the last message only.
	z, _ := Detect(zephyrSrc)
	if !z.AddBOS() {
		t.Error("zephyr: AddBOS must be true")
	}
	if got, _ := z.Render([]Message{user1}, false); got != "<|user|>\nHello!</s>\n" {
		t.Errorf("zephyr no prompt: %q", got)
	}
	if got, _ := z.Render(nil, true); got != "" {
		t.Errorf("zephyr empty: %q", got)
	}
	// Qwen's default system turn is written only when the conversation has none.
	q, _ := Detect(qwen2Src)
	if q.DefaultSystem != "You are a helpful assistant." {
		t.Errorf("qwen2 default system %q", q.DefaultSystem)
	}
	if got, _ := q.Render(conv[:1], false); strings.Count(got, "<|im_start|>system") != 1 {
		t.Errorf("qwen2 with a system message: %q", got)
	}
	if c, _ := Detect(chatMLSrc); c.DefaultSystem != "" {
		t.Errorf("plain ChatML has no default system, got %q", c.DefaultSystem)
	}
}

func TestRenderErrors(t *testing.T) {
	l2, _ := Detect(llama2Src)
	m, _ := Detect(mistral02Src)
	for name, c := range map[string]struct {
		tmpl Template
		msgs []Message
	}{
		"llama2 two users":    {l2, []Message{user1, user2}},
		"llama2 assistant":    {l2, []Message{system, asst1}},
		"mistral system":      {m, conv},
		"mistral other role":  {m, []Message{user1, {"tool", "x"}}},
		"mistral starts asst": {m, []Message{asst1}},
	} {
		if _, err := c.tmpl.Render(c.msgs, true); err == nil {
			t.Errorf("%s: want an error (the template raises)", name)
		}
	}
}

func TestDetectWarnings(t *testing.T) {
	for _, src := range []string{"", "   ", "{{ messages }}"} {
		tmpl, warn := Detect(src)
		if tmpl.Format != Plain || warn == "" || strings.Count(warn, "\n") != 0 {
			t.Errorf("Detect(%q) = %v, %q: want Plain and one warning line", src, tmpl.Format, warn)
		}
	}
}

func TestFromTokenizerConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A string template, tokens as AddedToken objects.
	p := write("a.json", `{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": {"content": "</s>"},
		"chat_template": "{{ bos_token }}{% for message in messages %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}"}`)
	tmpl, warn, err := FromTokenizerConfig(p)
	if err != nil || warn != "" || tmpl.Format != Mistral || tmpl.BOS != "<s>" || tmpl.EOS != "</s>" {
		t.Errorf("a.json: %+v %q %v", tmpl, warn, err)
	}
	// A list of named templates: "default" wins; plain string tokens; a custom EOS is used by Render.
	p = write("b.json", `{"bos_token": "<|begin_of_text|>", "eos_token": "<|end|>", "chat_template": [
		{"name": "tool_use", "template": "{{ '<|im_start|>' }}"},
		{"name": "default", "template": "{{ '<|user|>' }}{{ '<|assistant|>' }}"}]}`)
	tmpl, _, err = FromTokenizerConfig(p)
	if err != nil || tmpl.Format != Zephyr || tmpl.EOS != "<|end|>" {
		t.Fatalf("b.json: %+v %v", tmpl, err)
	}
	if got, _ := tmpl.Render([]Message{user1}, false); got != "<|user|>\nHello!<|end|>\n" {
		t.Errorf("b.json render: %q", got)
	}
	// No template: Plain with a warning; null tokens keep the family defaults.
	p = write("c.json", `{"bos_token": null, "eos_token": "<|endoftext|>"}`)
	tmpl, warn, err = FromTokenizerConfig(p)
	if err != nil || tmpl.Format != Plain || warn == "" {
		t.Errorf("c.json: %+v %q %v", tmpl, warn, err)
	}
	for name, body := range map[string]string{
		"bad.json":    `{"chat_template": 5}`,
		"badtok.json": `{"eos_token": 5}`,
		"broken.json": `{`,
	} {
		if _, _, err := FromTokenizerConfig(write(name, body)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming the file", name, err)
		}
	}
	if _, _, err := FromTokenizerConfig(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

func FuzzParseTokenizerConfig(f *testing.F) {
	f.Add([]byte(`{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "chat_template": "[INST]"}`))
	f.Add([]byte(`{"chat_template": [{"name": "default", "template": "<|im_start|>system\nHi<|im_end|>"}]}`))
	f.Add([]byte(`{"chat_template": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, _, err := ParseTokenizerConfig(data)
		if err != nil {
			return
		}
		if _, err := tmpl.Render(conv, true); err != nil && tmpl.Format != Mistral {
			t.Fatalf("%v template failed on a valid conversation: %v", tmpl.Format, err)
		}
	})
}

func TestFromGGUF(t *testing.T) {
	meta := map[string]any{
		"tokenizer.chat_template":     llama2Src,
		"tokenizer.ggml.tokens":       []string{"<unk>", "<s>", "</s>", "a"},
		"tokenizer.ggml.bos_token_id": uint32(1),
		"tokenizer.ggml.eos_token_id": uint32(2),
	}
	tmpl, warn := FromGGUF(meta)
	if tmpl.Format != Llama2 || warn != "" || tmpl.BOS != "<s>" || tmpl.EOS != "</s>" {
		t.Errorf("llama2 GGUF: %+v %q", tmpl, warn)
	}
	meta["tokenizer.ggml.eos_token_id"] = uint32(99) // out of range: the family default stays
	delete(meta, "tokenizer.chat_template")
	tmpl, warn = FromGGUF(meta)
	if tmpl.Format != Plain || warn == "" || tmpl.EOS != "" {
		t.Errorf("no template: %+v %q", tmpl, warn)
	}
}
