package model

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// WriteCheckpoint writes a whole model in one of the formats Open reads, streaming one tensor at a time
// from src (values in cfg.RopeLayout):
//
//	"llama2c"     legacy run.c .bin, f32              "gguf"         GGUF, dt F32/F16/BF16/Q8_0
//	"llama2c-v1"  export.py version 1, f32            "safetensors"  one file, HF names, config in __metadata__
//	"llama2c-v2"  export.py version 2, Q8_0           "hf"           folder (path), dt F32/F16/BF16 or F8E4M3
//
// A path ending in ".zst" (not "hf") is compressed while written. llama2c-v2 uses the largest group size
// of 64, 32, 16, 8, 4, 2 that divides dim and ffn.
func WriteCheckpoint(path, format string, cfg Config, dt DType, src TensorSource) error {
	if format == "hf" {
		return WriteHF(path, cfg, HFOptions{DType: dt}, src)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var w io.Writer = f
	var pw *io.PipeWriter
	done := make(chan error, 1)
	if strings.HasSuffix(path, ".zst") {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		w = pw
		go func() { done <- CompressZstd(f, pr) }()
	}
	err = writeFormat(w, format, cfg, dt, src)
	if pw != nil {
		pw.CloseWithError(err)
		if zerr := <-done; err == nil {
			err = zerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeFormat(w io.Writer, format string, cfg Config, dt DType, src TensorSource) error {
	switch format {
	case "llama2c":
		return WriteLlama2C(w, cfg, 0, 0, src)
	case "llama2c-v1":
		return WriteLlama2C(w, cfg, 1, 0, src)
	case "llama2c-v2":
		gs := 64
		for gs > 1 && (cfg.Dim%gs != 0 || cfg.FFN%gs != 0) {
			gs /= 2
		}
		return WriteLlama2C(w, cfg, 2, gs, src)
	case "gguf":
		return WriteGGUFModel(w, cfg, GGUFModelOptions{DType: dt}, src)
	case "safetensors":
		return WriteSafetensorsModel(w, cfg, dt, src)
	}
	return fmt.Errorf("write checkpoint: format %q unknown (llama2c, llama2c-v1, llama2c-v2, gguf, safetensors, hf)", format)
}

// WriteSafetensorsModel writes one safetensors file with Hugging Face names, Q/K rows in rotate-half
// order, every tensor in dt (F32, F16 or BF16) and config.json's content in __metadata__["config"].
func WriteSafetensorsModel(w io.Writer, cfg Config, dt DType, src TensorSource) error {
	if dt != F32 && dt != F16 && dt != BF16 {
		return fmt.Errorf("safetensors model writer: dtype %s, want f32, f16 or bf16 (FP8 goes to an HF folder)", dt)
	}
	cj, err := hfConfigFile(cfg, HFOptions{Architecture: "LlamaForCausalLM", DType: dt}, ScaleNone, nil)
	if err != nil {
		return err
	}
	var ts []WriteTensor
	for _, s := range CanonicalTensors(cfg) {
		s := s
		ts = append(ts, WriteTensor{Name: hfName(s.Name), DType: dt, Shape: s.Shape, Write: func(w io.Writer) error {
			v, err := fetch(src, s.Name, s.Shape)
			if err != nil {
				return err
			}
			if v, err = toLayout(cfg, s.Name, v, s.Shape, RopeRotateHalf); err != nil {
				return err
			}
			b, err := EncodeValues(dt, v)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}})
	}
	return WriteSafetensors(w, ts, map[string]string{"config": string(cj), "format": "pt"})
}
