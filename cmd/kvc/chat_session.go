package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"kvc/engine"
	"kvc/model"
	"kvc/model/chat"
	"kvc/session"
)

// modelID identifies a model for session files: a hash of its config (at its own context length) and its
// tensor index (names, dtypes, shapes, quantization), so a session is refused by another model, or by the
// same architecture with other weights layout, without reading any weights.
func modelID(ck *model.Checkpoint, context int) string {
	cfg := ck.Config
	cfg.Context = context
	h := sha256.New()
	b, _ := json.Marshal(cfg)
	h.Write(b)
	for _, t := range ck.Tensors {
		fmt.Fprintf(h, "\n%s %v %v %v %d", t.Name, t.DType, t.Shape, t.ScaleKind, t.Group)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// chatExtra is what a chat session file holds beside the cache: the conversation and its settings.
type chatExtra struct {
	ModelPath string               `json:"model_path"` // for the error message when the model differs
	Template  string               `json:"template"`
	System    string               `json:"system"`
	Messages  []chat.Message       `json:"messages"`
	Sampler   engine.SamplerConfig `json:"sampler"`
	N         int                  `json:"n"`
	Stops     []string             `json:"stops,omitempty"`
	Policy    string               `json:"kv_policy"`
	Budget    int                  `json:"kv_budget,omitempty"`
	Rate      float64              `json:"kv_rate,omitempty"`
}

func (c *chatState) id() string { return modelID(c.l.ck, c.l.modelContext) }

// save writes the conversation and its cache to path (through a temporary file, so a failed save leaves
// the old file whole).
func (c *chatState) save(path string) error {
	st, err := c.l.eng.SaveSequence(c.seq)
	if err != nil {
		return err
	}
	extra, err := json.Marshal(chatExtra{ModelPath: c.l.ck.Path, Template: c.tmpl.Format.String(), System: c.system,
		Messages: c.msgs, Sampler: c.sc, N: c.n, Stops: c.stops, Policy: c.ef.policy, Budget: c.ef.budget, Rate: c.ef.rate})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := session.Write(&buf, &session.File{Model: c.id(), Extra: extra, Seq: st}); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kvc-session-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// load replaces the conversation with the one in path. Every check comes before the current conversation
// is touched; if the cache cannot be restored, the current one is put back.
func (c *chatState) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sf, err := session.Read(f)
	if err != nil {
		return err
	}
	var x chatExtra
	if err := json.Unmarshal(sf.Extra, &x); err != nil {
		return fmt.Errorf("damaged conversation: %v", err)
	}
	if sf.Model != c.id() {
		return fmt.Errorf("the session is of another model (%s), not %s", x.ModelPath, c.l.ck.Path)
	}
	if err := x.Sampler.Validate(); err != nil {
		return fmt.Errorf("damaged conversation: %v", err)
	}
	if x.Template != c.tmpl.Format.String() {
		return fmt.Errorf("the session was written with the %s chat template, this model uses %s", x.Template, c.tmpl.Format)
	}
	cur, err := c.l.eng.SaveSequence(c.seq)
	if err != nil {
		return err
	}
	c.l.eng.Release(c.seq)
	seq, err := c.l.eng.RestoreSequence(sf.Seq)
	if err != nil {
		if back, rerr := c.l.eng.RestoreSequence(cur); rerr == nil {
			c.seq = back
		} else {
			c.seq = c.l.eng.NewSequence(c.sc) // cannot happen: the blocks just freed hold it
		}
		return err
	}
	c.seq, c.msgs, c.system, c.sc, c.stops = seq, x.Messages, x.System, x.Sampler, x.Stops
	if x.N > 0 {
		c.n = x.N
	}
	return nil
}
