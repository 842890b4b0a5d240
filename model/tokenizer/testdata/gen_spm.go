//go:build ignore

// gen_spm writes spm_tok512.json: SentencePiece's own encoding (spm_encode from Debian's sentencepiece
// package) of a set of sentences with stories260K's tok512.model, the ground truth that
// TestLlama2CMatchesSentencePiece checks the llama2.c encoder against. CI has no sentencepiece: the
// committed output is what the test reads. Regenerate with:
//
//	cd model/tokenizer/testdata && go run gen_spm.go /work/shared/models/stories260K/tok512.model
//
// spm_encode reads one sentence per line, so no sentence here contains a newline; the test checks
// newlines against run.c's rule (byte fallback <0x0A>) separately.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

var sentences = []string{
	"Once upon a time, there was a little girl named Lily.",
	"She loved to play outside in the park.",
	"Hello world",
	"hello",
	"a",
	"The cat sat on the mat. The dog didn't!",
	"Tim said, \"Can I have it?\" Mom said: no.",
	"What's that? It's a big, red ball!!!",
	"I'M HAPPY; you're sad... (maybe)",
	"1 2 3 4 5 6 7 8 9 10",
	"In 2023 there were 1234567 apples and 3.14159 pies.",
	"Call 555-0199 at 10:30am, ok?",
	"$100 + 20% = $120 #math @home",
	"café naïve résumé déjà vu",
	"Crème brûlée à la française",
	"Ångström Øresund Ærø",
	"Zürich Straße über",
	"ñandú, pingüino",
	"Привет, мир!",
	"Γειά σου κόσμε",
	"日本語のテキスト",
	"你好，世界。",
	"한국어 문장",
	"emoji 😀 and 🎉🎉 party",
	"👍🏽 thumbs",
	"mixed: Lily 😊 日本 café 123",
	"tab\tseparated\tvalues",
	"under_score and hyphen-ated words",
	"<s> and </s> are just text here",
	"[INST] hi [/INST]",
	"a  b",
	"two  spaces  between",
	"   leading spaces",
	"trailing spaces   ",
	" one leading space",
	"one trailing space ",
	"many      inner      spaces",
	"  both sides  ",
	"!!!???...,,,",
	"x",
	"supercalifragilisticexpialidocious",
	"Lily and Ben went to the big park to play with the ball.",
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run gen_spm.go path/to/tok512.model")
		os.Exit(2)
	}
	var in bytes.Buffer
	for _, s := range sentences {
		if strings.ContainsAny(s, "\r\n") {
			panic("spm_encode reads one sentence per line: " + strconv.Quote(s))
		}
		in.WriteString(s + "\n")
	}
	cmd := exec.Command("spm_encode", "--model="+os.Args[1], "--output_format=id")
	cmd.Stdin = &in
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "spm_encode:", err)
		os.Exit(1)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(sentences) {
		fmt.Fprintf(os.Stderr, "spm_encode gave %d lines for %d sentences\n", len(lines), len(sentences))
		os.Exit(1)
	}
	type item struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	}
	items := make([]item, len(sentences))
	for i, s := range sentences {
		items[i] = item{Text: s, IDs: []int{}}
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.Atoi(f)
			if err != nil {
				panic(err)
			}
			items[i].IDs = append(items[i].IDs, id)
		}
	}
	var buf bytes.Buffer
	buf.WriteString("[\n")
	for i, it := range items {
		b, _ := json.Marshal(it)
		buf.Write(b)
		if i+1 < len(items) {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("]\n")
	if err := os.WriteFile("spm_tok512.json", buf.Bytes(), 0o644); err != nil {
		panic(err)
	}
	fmt.Printf("wrote spm_tok512.json: %d sentences\n", len(items))
}
