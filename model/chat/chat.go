// Package chat renders a conversation into the prompt text a chat model was trained on. It does not run
// Jinja: Detect recognizes the common Hugging Face chat templates by their markers, and Render writes
// exactly what that Jinja template renders (checked against hand-derived outputs in the tests).
//
// BOS: Render writes the BOS text wherever the template writes bos_token (Llama-2 before every [INST],
// Llama-3 and Mistral once at the start), so such a prompt must be encoded without adding another BOS
// and with special tokens matched in the text (package tokenizer does both for HF and GGUF vocabs).
// Template.AddBOS says which: encode with tok.Encode(prompt, tmpl.AddBOS()). Templates that do not
// write BOS (ChatML, Zephyr, the plain default) get it from the tokenizer, once, at the start.
package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Message is one turn of a conversation. Role is "system", "user" or "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Format is a chat template family.
type Format int

const (
	Plain   Format = iota // default for unknown templates: "User: ...\n\nAssistant: ..."
	Llama3                // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
	Llama31               // Llama-3.1/3.2: Llama3 plus a system block with the knowledge cutoff and date
	Llama2                // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>
	Mistral               // <s>[INST] ... [/INST]...</s>, no system role
	ChatML                // <|im_start|>role\n...<|im_end|>\n
	Zephyr                // <|role|>\n...</s>\n
)

func (f Format) String() string {
	return [...]string{"plain", "llama3", "llama3.1", "llama2", "mistral", "chatml", "zephyr"}[f]
}

// Template is a recognized chat template and the special-token texts it writes.
type Template struct {
	Format Format
	BOS    string // text written for bos_token
	EOS    string // text written for eos_token
	// DefaultSystem is the system message a ChatML template (Qwen) adds when the conversation has none.
	DefaultSystem string
	// Date is Llama-3.1's "Today Date"; empty means the template's default: "26 Jul 2024", or today
	// (like HF's strftime_now("%d %b %Y")) when Today is set.
	Date  string
	Today bool
	// EOSSpace: Mistral-7B-Instruct-v0.1 writes a space after each assistant turn's EOS; v0.2 does not.
	EOSSpace bool
}

// Detect recognizes a Jinja chat template by its markers. An empty or unrecognized template gets the
// Plain format and one warning saying so; a recognized one gets an empty warning.
func Detect(template string) (Template, string) {
	has := func(s string) bool { return strings.Contains(template, s) }
	switch {
	case has("<|start_header_id|>") && has("<|end_header_id|>"):
		if has("Cutting Knowledge Date") {
			return Template{Format: Llama31, BOS: "<|begin_of_text|>", EOS: "<|eot_id|>", Today: has("strftime_now")}, ""
		}
		return Template{Format: Llama3, BOS: "<|begin_of_text|>", EOS: "<|eot_id|>"}, ""
	case has("<|im_start|>"):
		return Template{Format: ChatML, EOS: "<|im_end|>", DefaultSystem: chatMLDefaultSystem(template)}, ""
	case has("[INST]") && has("<<SYS>>"):
		return Template{Format: Llama2, BOS: "<s>", EOS: "</s>"}, ""
	case has("[INST]"):
		return Template{Format: Mistral, BOS: "<s>", EOS: "</s>", EOSSpace: has("eos_token + ' '")}, ""
	case has("<|user|>") && has("<|assistant|>"):
		return Template{Format: Zephyr, BOS: "<s>", EOS: "</s>"}, ""
	case strings.TrimSpace(template) == "":
		return Template{Format: Plain}, "chat: the model has no chat template; using the plain \"User: ... Assistant:\" format"
	}
	return Template{Format: Plain}, "chat: unrecognized chat template (no Llama-3, Llama-2/Mistral, ChatML or Zephyr markers); using the plain \"User: ... Assistant:\" format"
}

// chatMLDefaultSystem finds a fixed system turn the template writes, e.g. Qwen's
// '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'.
func chatMLDefaultSystem(template string) string {
	const open = "<|im_start|>system"
	for rest := template; ; {
		i := strings.Index(rest, open)
		if i < 0 {
			return ""
		}
		rest = rest[i+len(open):]
		var body string
		switch {
		case strings.HasPrefix(rest, `\n`): // the Jinja string escape
			body = rest[2:]
		case strings.HasPrefix(rest, "\n"):
			body = rest[1:]
		default:
			continue
		}
		end := strings.Index(body, "<|im_end|>")
		if end <= 0 {
			continue
		}
		text := body[:end]
		if strings.ContainsAny(text, "'\"{}+") { // an expression, not a fixed message
			continue
		}
		return strings.ReplaceAll(text, `\n`, "\n")
	}
}

// AddBOS says whether the tokenizer should add BOS when encoding Render's output: false when the
// template writes the BOS text itself.
func (t Template) AddBOS() bool {
	switch t.Format {
	case Llama3, Llama31, Llama2, Mistral:
		return false
	}
	return true
}

// Render writes the prompt for msgs, ending with the assistant header when addGenerationPrompt is set
// (Llama-2 and Mistral templates ignore it: their prompt ends with [/INST] anyway). It fails where the
// HF template raises: Llama-2 and Mistral need user and assistant turns to alternate, starting with
// the user (Llama-2 may lead with one system message; Mistral has no system role), and Llama-2 and
// Llama-3.1 fail on an empty conversation.
func (t Template) Render(msgs []Message, addGenerationPrompt bool) (string, error) {
	if len(msgs) == 0 && (t.Format == Llama2 || t.Format == Llama31) {
		return "", errors.New("chat: the template reads messages[0]: the conversation is empty")
	}
	var b strings.Builder
	switch t.Format {
	case Llama3:
		for i, m := range msgs {
			if i == 0 {
				b.WriteString(t.BOS)
			}
			writeLlama3Turn(&b, m.Role, pyStrip(m.Content))
		}
		if addGenerationPrompt {
			b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
		}
	case Llama31:
		system := ""
		if len(msgs) > 0 && msgs[0].Role == "system" {
			system, msgs = pyStrip(msgs[0].Content), msgs[1:]
		}
		date := t.Date
		if date == "" {
			date = "26 Jul 2024"
			if t.Today {
				date = time.Now().Format("02 Jan 2006")
			}
		}
		b.WriteString(t.BOS)
		writeLlama3Turn(&b, "system", "Cutting Knowledge Date: December 2023\nToday Date: "+date+"\n\n"+system)
		for _, m := range msgs {
			writeLlama3Turn(&b, m.Role, pyStrip(m.Content))
		}
		if addGenerationPrompt {
			b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
		}
	case Llama2:
		system, hasSystem := "", false
		if len(msgs) > 0 && msgs[0].Role == "system" {
			system, hasSystem, msgs = msgs[0].Content, true, msgs[1:]
		}
		if err := alternate(msgs); err != nil {
			return "", err
		}
		for i, m := range msgs {
			content := m.Content
			if i == 0 && hasSystem {
				content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
			}
			switch m.Role {
			case "user":
				b.WriteString(t.BOS + "[INST] " + pyStrip(content) + " [/INST]")
			case "assistant":
				b.WriteString(" " + pyStrip(content) + " " + t.EOS)
			}
		}
	case Mistral:
		if err := alternate(msgs); err != nil {
			return "", err
		}
		b.WriteString(t.BOS)
		for _, m := range msgs {
			switch m.Role {
			case "user":
				b.WriteString("[INST] " + m.Content + " [/INST]")
			case "assistant":
				b.WriteString(m.Content + t.EOS)
				if t.EOSSpace {
					b.WriteString(" ")
				}
			default:
				return "", fmt.Errorf("chat: the Mistral template supports only user and assistant roles, got %q", m.Role)
			}
		}
	case ChatML:
		// Qwen writes it inside the loop (loop.first), so not for an empty conversation.
		if t.DefaultSystem != "" && len(msgs) > 0 && msgs[0].Role != "system" {
			b.WriteString("<|im_start|>system\n" + t.DefaultSystem + "<|im_end|>\n")
		}
		for _, m := range msgs {
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		}
		if addGenerationPrompt {
			b.WriteString("<|im_start|>assistant\n")
		}
	case Zephyr:
		for i, m := range msgs {
			switch m.Role {
			case "user", "system", "assistant":
				b.WriteString("<|" + m.Role + "|>\n" + m.Content + t.EOS + "\n")
			}
			if i == len(msgs)-1 && addGenerationPrompt {
				b.WriteString("<|assistant|>\n")
			}
		}
	default: // Plain
		for _, m := range msgs {
			b.WriteString(plainRole(m.Role) + ": " + m.Content + "\n\n")
		}
		if addGenerationPrompt {
			b.WriteString("Assistant:")
		}
	}
	return b.String(), nil
}

func writeLlama3Turn(b *strings.Builder, role, content string) {
	b.WriteString("<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>")
}

func plainRole(role string) string {
	if role == "" {
		return "User"
	}
	return strings.ToUpper(role[:1]) + role[1:]
}

// alternate is the Llama-2/Mistral check: turn i must be the user's exactly when i is even.
func alternate(msgs []Message) error {
	for i, m := range msgs {
		if (m.Role == "user") != (i%2 == 0) {
			return errors.New("chat: conversation roles must alternate user/assistant/user/assistant/... (template raises)")
		}
	}
	return nil
}

// pyStrip is Python's str.strip() (and Jinja's trim): Unicode whitespace plus the ASCII separators
// \x1c-\x1f that Python also counts as whitespace.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}
