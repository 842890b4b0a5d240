package engine

import "fmt"

// ChooseKVType decides how the paged cache stores K and V on b for heads of headDim: the one place this is
// decided. requested is what the user asked for: "f16", "f32", or "" for the default.
//
// f16 halves the cache, so twice the sequences fit. The device shaders store f16 K and V as packed half
// pairs in 32-bit words (packHalf2x16/unpackHalf2x16, core SPIR-V), so a device needs no 16-bit storage or
// float16 feature for them, only an even head dim; the host backend stores halves at any head dim. The
// default is f16 on a device (DeviceMemory) whenever it can store it; on the host it is what the backend
// says (HostKVDefault: f16 on the fast CPU backend, as llama.cpp's CPU backend keeps its cache, and f32 on
// the plain reference, the exact oracle the shaders are checked against), else f32.
func ChooseKVType(b Backend, headDim int, requested string) (KVType, error) {
	_, device := b.(DeviceMemory)
	halfOK := !device || headDim%2 == 0
	switch requested {
	case "f32":
		return KVF32, nil
	case "f16":
		if !halfOK {
			return 0, fmt.Errorf("KV type f16: %s stores f16 K and V as half pairs, which needs an even head dim (this model's is %d): use f32", b.Name(), headDim)
		}
		return KVF16, nil
	case "":
		if device && halfOK {
			return KVF16, nil
		}
		if d, ok := b.(HostKVDefault); ok && !device {
			return d.DefaultKVType(), nil
		}
		return KVF32, nil
	}
	return 0, fmt.Errorf("KV type %q: want f16 or f32", requested)
}

// HostKVDefault is a host backend that names its default KV storage.
type HostKVDefault interface {
	DefaultKVType() KVType
}
