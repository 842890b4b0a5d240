package model

// Tensor is one weight of a checkpoint under its canonical name, in its stored dtype.
// Readers fill it from headers alone; data is read only by Bytes and Scales.
type Tensor struct {
	Name       string // canonical name (see types.go)
	SourceName string // name in the file, for error messages
	File       string // file it lives in
	DType      DType
	Shape      []int     // row-major, [out, in] for matrices, [n] for vectors
	ScaleKind  ScaleKind // F8E4M3 only
	Group      int       // Q8_0 only: inputs per scale (32 for GGUF, the header's GS for llama2.c v2)
	InputScale float32   // F8E4M3 static activation scale if the checkpoint has one (reported, not used)

	// set by readers
	read   func() ([]byte, error)
	scales func() ([]float32, error)
}

// Rows and Cols view the tensor as a matrix (a vector is one row).
func (t *Tensor) Rows() int {
	if len(t.Shape) < 2 {
		return 1
	}
	return t.Shape[0]
}
func (t *Tensor) Cols() int { return t.Shape[len(t.Shape)-1] }

// Elems is the number of weight elements.
func (t *Tensor) Elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// DataBytes is len(Bytes()): Elems * ElemBytes (scales are separate).
func (t *Tensor) DataBytes() int64 { return t.Elems() * int64(t.DType.ElemBytes()) }

// Bytes returns the element bytes, little-endian, row-major. For Q8_0 only the int8 values (scales come
// from Scales). For mmap'd files it is a view into the mapping: do not modify it.
func (t *Tensor) Bytes() ([]byte, error) { return t.read() }

// Scales returns the f32 scales: F8E4M3 by ScaleKind (1, Rows, or ceil(Rows/128)*ceil(Cols/128) values),
// Q8_0 one per Group inputs of each row (Rows*Cols/Group values). Nil for other dtypes.
func (t *Tensor) Scales() ([]float32, error) {
	if t.scales == nil {
		return nil, nil
	}
	return t.scales()
}
