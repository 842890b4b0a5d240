package gpu

import (
	"encoding/binary"
	"fmt"
	"sort"

	"kvc/engine/vk"
	"kvc/shaders"
)

// shaderInterface is what Kernel checks a SPIR-V module against: its specialization constant ids, its
// storage-buffer bindings (set, binding) and which of them the shader never writes, and the layout of its
// push-constant block.
type shaderInterface struct {
	Capabilities []uint32
	SpecIDs      []uint32
	Bindings     map[[2]uint32]bool // (set, binding) -> read-only
	Push         []pushMember       // the push-constant block's members in order (nil: no block)
	PushBytes    int                // the block's size: the end of its last member
}

// pushMember is one member of a push-constant block: its byte offset and scalar or vector type.
type pushMember struct {
	Offset int
	Kind   string // "uint", "int" or "float", with the bit width and, for vectors, the count: "float32x4"
	Bytes  int
}

const (
	spvMagic            = 0x07230203
	opCapability        = 17
	opTypeInt           = 21
	opTypeFloat         = 22
	opTypeVector        = 23
	opTypeStruct        = 30
	opTypePointer       = 32
	opTypeArray         = 28
	opTypeRuntimeArray  = 29
	opVariable          = 59
	opDecorate          = 71
	opMemberDecorate    = 72
	decSpecID           = 1
	decBlock            = 2
	decBufferBlock      = 3
	decNonWritable      = 24
	decBinding          = 33
	decDescriptorSet    = 34
	decOffset           = 35
	storageUniform      = 2
	storageStorageBuf   = 12
	storagePushConstant = 9
)

// parseSPIRV reads the decorations and variables of a SPIR-V module. It never panics on bad input.
func parseSPIRV(code []byte) (*shaderInterface, error) {
	if len(code) < 20 || len(code)%4 != 0 {
		return nil, fmt.Errorf("spirv: %d bytes is not a SPIR-V module (need a 5-word header and whole words)", len(code))
	}
	words := make([]uint32, len(code)/4)
	for i := range words {
		words[i] = binary.LittleEndian.Uint32(code[4*i:])
	}
	if words[0] != spvMagic {
		return nil, fmt.Errorf("spirv: bad magic 0x%08x (want 0x%08x)", words[0], spvMagic)
	}
	specIDs := map[uint32]bool{}
	var caps []uint32
	binding := map[uint32]uint32{} // variable id -> binding
	set := map[uint32]uint32{}     // variable id -> set
	nonWritableVar := map[uint32]bool{}
	blockStruct := map[uint32]bool{}
	memberCount := map[uint32]int{}           // struct id -> members
	nonWritableMember := map[[2]uint32]bool{} // (struct, member)
	pointee := map[uint32]uint32{}            // pointer type id -> pointee type
	elem := map[uint32]uint32{}               // array type id -> element type
	vars := map[uint32][2]uint32{}            // variable id -> (pointer type, storage class)
	scalar := map[uint32]pushMember{}         // scalar and vector type id -> kind and size
	members := map[uint32][]uint32{}          // struct id -> member type ids
	offset := map[[2]uint32]int{}             // (struct, member) -> byte offset
	for i := 5; i < len(words); {
		n := int(words[i] >> 16)
		op := words[i] & 0xffff
		if n == 0 || i+n > len(words) {
			return nil, fmt.Errorf("spirv: instruction at word %d has bad length %d", i, n)
		}
		a := words[i+1 : i+n]
		switch op {
		case opCapability:
			if len(a) >= 1 {
				caps = append(caps, a[0])
			}
		case opDecorate:
			if len(a) >= 2 {
				switch a[1] {
				case decSpecID:
					if len(a) >= 3 {
						specIDs[a[2]] = true
					}
				case decBinding:
					if len(a) >= 3 {
						binding[a[0]] = a[2]
					}
				case decDescriptorSet:
					if len(a) >= 3 {
						set[a[0]] = a[2]
					}
				case decNonWritable:
					nonWritableVar[a[0]] = true
				case decBlock, decBufferBlock:
					blockStruct[a[0]] = true
				}
			}
		case opMemberDecorate:
			if len(a) >= 3 && a[2] == decNonWritable {
				nonWritableMember[[2]uint32{a[0], a[1]}] = true
			}
			if len(a) >= 4 && a[2] == decOffset {
				offset[[2]uint32{a[0], a[1]}] = int(a[3])
			}
		case opTypeInt:
			if len(a) >= 3 {
				kind := "uint"
				if a[2] != 0 {
					kind = "int"
				}
				scalar[a[0]] = pushMember{Kind: fmt.Sprintf("%s%d", kind, a[1]), Bytes: int(a[1] / 8)}
			}
		case opTypeFloat:
			if len(a) >= 2 {
				scalar[a[0]] = pushMember{Kind: fmt.Sprintf("float%d", a[1]), Bytes: int(a[1] / 8)}
			}
		case opTypeVector:
			if len(a) >= 3 {
				if c, ok := scalar[a[1]]; ok {
					scalar[a[0]] = pushMember{Kind: fmt.Sprintf("%sx%d", c.Kind, a[2]), Bytes: c.Bytes * int(a[2])}
				}
			}
		case opTypeStruct:
			if len(a) >= 1 {
				memberCount[a[0]] = len(a) - 1
				members[a[0]] = append([]uint32(nil), a[1:]...)
			}
		case opTypePointer:
			if len(a) >= 3 {
				pointee[a[0]] = a[2]
			}
		case opTypeArray, opTypeRuntimeArray:
			if len(a) >= 2 {
				elem[a[0]] = a[1]
			}
		case opVariable:
			if len(a) >= 3 {
				vars[a[1]] = [2]uint32{a[0], a[2]}
			}
		}
		i += n
	}
	nonWritableMembers := map[uint32]int{}
	for k := range nonWritableMember {
		nonWritableMembers[k[0]]++
	}
	si := &shaderInterface{Bindings: map[[2]uint32]bool{}, Capabilities: caps}
	for id := range specIDs {
		si.SpecIDs = append(si.SpecIDs, id)
	}
	sort.Slice(si.SpecIDs, func(i, j int) bool { return si.SpecIDs[i] < si.SpecIDs[j] })
	for v, pt := range vars {
		if pt[1] == storagePushConstant {
			if err := si.pushBlock(pointee[pt[0]], members, offset, scalar); err != nil {
				return nil, err
			}
			continue
		}
		if pt[1] != storageStorageBuf && pt[1] != storageUniform {
			continue
		}
		b, ok := binding[v]
		if !ok {
			continue
		}
		t := pointee[pt[0]]
		for depth := 0; depth < 4; depth++ { // arrays of buffers
			e, ok := elem[t]
			if !ok {
				break
			}
			t = e
		}
		ro := nonWritableVar[v] || (memberCount[t] > 0 && nonWritableMembers[t] >= memberCount[t])
		si.Bindings[[2]uint32{set[v], b}] = ro
	}
	return si, nil
}

// pushBlock records the layout of push-constant struct id. Members other than 32-bit-or-smaller scalars
// and vectors (nested structs, arrays, matrices) are not used in kvc's shaders and are refused.
func (si *shaderInterface) pushBlock(id uint32, members map[uint32][]uint32, offset map[[2]uint32]int, scalar map[uint32]pushMember) error {
	if si.Push != nil {
		return fmt.Errorf("spirv: more than one push-constant block")
	}
	ms, ok := members[id]
	if !ok {
		return fmt.Errorf("spirv: the push-constant variable is not a struct")
	}
	si.Push = []pushMember{}
	for i, t := range ms {
		m, ok := scalar[t]
		if !ok {
			return fmt.Errorf("spirv: push-constant member %d is not a scalar or vector", i)
		}
		off, ok := offset[[2]uint32{id, uint32(i)}]
		if !ok {
			return fmt.Errorf("spirv: push-constant member %d has no offset", i)
		}
		m.Offset = off
		si.Push = append(si.Push, m)
		si.PushBytes = max(si.PushBytes, off+m.Bytes)
	}
	return nil
}

// missingFeatures lists what a module's SPIR-V capabilities need that the device (with features f enabled
// and subgroup support sg) lacks. Unknown capabilities beyond core Shader are reported by number.
func missingFeatures(caps []uint32, f vk.Features, sg vk.Subgroup) []string {
	var out []string
	need := func(ok bool, what string) {
		if !ok {
			out = append(out, what)
		}
	}
	subgroup := func(bit uint32, what string) {
		need(sg.InCompute && sg.Operations&bit != 0, "subgroup "+what+" operations in compute shaders")
	}
	for _, c := range caps {
		switch c {
		case 0, 1: // Matrix, Shader
		case 9:
			need(f.ShaderFloat16, "shaderFloat16")
		case 10:
			out = append(out, "shaderFloat64 (kvc never enables it)")
		case 11:
			need(f.ShaderInt64, "shaderInt64")
		case 22:
			need(f.ShaderInt16, "shaderInt16")
		case 39:
			need(f.ShaderInt8, "shaderInt8")
		case 4433:
			need(f.StorageBuffer16BitAccess, "storageBuffer16BitAccess")
		case 4434:
			out = append(out, "uniformAndStorageBuffer16BitAccess (kvc never enables it)")
		case 4435:
			need(f.StoragePushConstant16, "storagePushConstant16")
		case 4448:
			need(f.StorageBuffer8BitAccess, "storageBuffer8BitAccess")
		case 4449:
			need(f.UniformAndStorageBuffer8BitAccess, "uniformAndStorageBuffer8BitAccess")
		case 4450:
			need(f.StoragePushConstant8, "storagePushConstant8")
		case 6033:
			need(f.ShaderBufferFloat32AtomicAdd, "shaderBufferFloat32AtomicAdd")
		case 61:
			subgroup(vk.SubgroupBasic, "basic")
		case 62:
			subgroup(vk.SubgroupVote, "vote")
		case 63:
			subgroup(vk.SubgroupArithmetic, "arithmetic")
		case 64:
			subgroup(vk.SubgroupBallot, "ballot")
		case 65:
			subgroup(vk.SubgroupShuffle, "shuffle")
		case 66:
			subgroup(vk.SubgroupShuffleRelative, "shuffle_relative")
		case 67:
			subgroup(vk.SubgroupClustered, "clustered")
		case 68:
			subgroup(vk.SubgroupQuad, "quad")
		case 4427, 4437, 4439, 4441, 4442, 5345, 5346, 5347:
			// ShaderDrawParameters, DeviceGroup, MultiView, VariablePointers*, VulkanMemoryModel*: core in 1.2
		default:
			out = append(out, fmt.Sprintf("SPIR-V capability %d", c))
		}
	}
	return out
}

// ModuleSupport reports, for the embedded SPIR-V module name, what this device would lack to run it
// (nil: it runs here).
func (b *Backend) ModuleSupport(name string) ([]string, error) {
	code, err := shaders.SPV(name)
	if err != nil {
		return nil, err
	}
	si, err := parseSPIRV(code)
	if err != nil {
		return nil, fmt.Errorf("gpu: module %s: %w", name, err)
	}
	return missingFeatures(si.Capabilities, b.caps.Features, b.info.Subgroup), nil
}

// ModuleSupportOn is ModuleSupport for a device that is not open (features = what kvc would enable on it).
func ModuleSupportOn(d *vk.DeviceInfo, name string) ([]string, error) {
	code, err := shaders.SPV(name)
	if err != nil {
		return nil, err
	}
	si, err := parseSPIRV(code)
	if err != nil {
		return nil, fmt.Errorf("gpu: module %s: %w", name, err)
	}
	return missingFeatures(si.Capabilities, DefaultFeatures().And(d.Features), d.Subgroup), nil
}
