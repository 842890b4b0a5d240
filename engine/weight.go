package engine

import (
	"fmt"
	"math"

	"kvc/model"
)

// FP8BlockSize is the side of the square blocks of model.ScaleBlock scales.
const FP8BlockSize = 128

// ScaleCount is how many f32 scales a weight carries: fp8 by ScaleKind (ScaleNone: none, meaning 1),
// q8_0 one per Group inputs of each row, none for the float dtypes.
func ScaleCount(info WeightInfo) int {
	switch info.DType {
	case model.F8E4M3:
		switch info.ScaleKind {
		case model.ScaleTensor:
			return 1
		case model.ScaleChannel:
			return info.Rows
		case model.ScaleBlock:
			return ((info.Rows + FP8BlockSize - 1) / FP8BlockSize) * ((info.Cols + FP8BlockSize - 1) / FP8BlockSize)
		}
	case model.Q8_0:
		if info.Group > 0 {
			return info.Rows * (info.Cols / info.Group)
		}
	}
	return 0
}

// WeightData reads a tensor's stored bytes and scales for upload (the bytes may be a file mapping: a backend
// copies them) and checks them with CheckWeight.
func WeightData(t *model.Tensor) (data []byte, scales []float32, info WeightInfo, err error) {
	if data, err = t.Bytes(); err != nil {
		return nil, nil, info, fmt.Errorf("upload weight %s: %w", t.Name, err)
	}
	if scales, err = t.Scales(); err != nil {
		return nil, nil, info, fmt.Errorf("upload weight %s: scales: %w", t.Name, err)
	}
	info, err = CheckWeight(t, len(data), len(scales))
	return data, scales, info, err
}

// CheckWeight validates a tensor before upload (shape, dtype, scale layout, byte and scale counts) and
// returns its WeightInfo; every error names the tensor and its file. Backends share it so they accept
// exactly the same tensors.
func CheckWeight(t *model.Tensor, dataLen, scaleLen int) (WeightInfo, error) {
	where := func(format string, a ...any) error {
		name := t.Name
		if t.SourceName != "" && t.SourceName != t.Name {
			name += " (" + t.SourceName + ")"
		}
		if t.File != "" {
			name += " in " + t.File
		}
		return fmt.Errorf("upload weight %s: %s", name, fmt.Sprintf(format, a...))
	}
	if len(t.Shape) < 1 || len(t.Shape) > 2 {
		return WeightInfo{}, where("shape %v: want a vector or a matrix", t.Shape)
	}
	for _, d := range t.Shape {
		if d <= 0 || d > math.MaxInt32 {
			return WeightInfo{}, where("shape %v: every dimension must be in [1, 2^31)", t.Shape)
		}
	}
	if t.Elems() > 1<<46 {
		return WeightInfo{}, where("shape %v: %d elements is more than a weight can have", t.Shape, t.Elems())
	}
	info := WeightInfo{Name: t.Name, DType: t.DType, Rows: t.Rows(), Cols: t.Cols()}
	switch t.DType {
	case model.F32, model.F16, model.BF16:
	case model.F8E4M3:
		if t.ScaleKind < model.ScaleNone || t.ScaleKind > model.ScaleBlock {
			return WeightInfo{}, where("unknown fp8 scale kind %d", int(t.ScaleKind))
		}
		info.ScaleKind = t.ScaleKind
	case model.Q8_0:
		if t.Group <= 0 || info.Cols%t.Group != 0 {
			return WeightInfo{}, where("q8_0 group %d must be positive and divide the %d columns", t.Group, info.Cols)
		}
		info.Group = t.Group
	default:
		return WeightInfo{}, where("dtype %v is not a weight dtype (want f32, f16, bf16, fp8-e4m3 or q8_0)", t.DType)
	}
	if want := t.DataBytes(); int64(dataLen) != want {
		return WeightInfo{}, where("%d data bytes, want %d (%v %v)", dataLen, want, t.DType, t.Shape)
	}
	if want := ScaleCount(info); scaleLen != want {
		return WeightInfo{}, where("%d scales, want %d (%v, %v)", scaleLen, want, t.DType, scaleDesc(info))
	}
	return info, nil
}

func scaleDesc(info WeightInfo) string {
	if info.DType == model.Q8_0 {
		return fmt.Sprintf("group %d", info.Group)
	}
	return info.ScaleKind.String()
}
