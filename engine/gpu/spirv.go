package gpu

import (
	"encoding/binary"
	"fmt"
	"sort"

	"kvc/engine/vk"
	"kvc/shaders"
)

// shaderInterface is what Kernel checks a SPIR-V module against: its specialization constant ids, its
// storage-buffer bindings (set, binding) and which of them the shader never writes.
type shaderInterface struct {
	Capabilities []uint32
	SpecIDs      []uint32
	Bindings     map[[2]uint32]bool // (set, binding) -> read-only
}

const (
	spvMagic            = 0x07230203
	opCapability        = 17
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
		case opTypeStruct:
			if len(a) >= 1 {
				memberCount[a[0]] = len(a) - 1
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
