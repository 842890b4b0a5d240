package tokenizer

import (
	"strings"
	"testing"
)

// Encoding speed per kind, reported as input MB/s (b.SetBytes).
func BenchmarkEncode(b *testing.B) {
	text := strings.Repeat(trainCorpus, 8)
	gguf, err := FromGGUF(ggufLlamaMeta(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []struct {
		name string
		tk   Tokenizer
	}{
		{"llama2c-512", loadTok512(b)},
		{"hf-bytelevel", byteLevelHF(b)},
		{"hf-sentencepiece", spmHF(b, false)},
		{"gguf-llama", gguf},
	} {
		b.Run(k.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			n := 0
			for i := 0; i < b.N; i++ {
				n = len(k.tk.Encode(text, true))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
