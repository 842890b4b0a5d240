package gpu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"kvc/engine/vk"
	"kvc/shaders"
)

// Kernel is a compute pipeline made from one embedded SPIR-V module with fixed specialization constants.
type Kernel struct {
	Name      string // the SPIR-V module name; profiling labels dispatches with it
	pipe      *vk.Pipeline
	counts    []int  // descriptors per binding
	readOnly  []bool // per binding: the shader never writes it
	pushBytes int
	nDesc     int
	freeSets  []vk.DescriptorSet // recycled sets of this layout
}

// Kernel returns the pipeline for SPIR-V module spvName (see shaders/*.variants) with specialization
// constant i set to spec[i] (every constant the module declares must be given), pushBytes of push
// constants and len(bindings) storage-buffer bindings in set 0, binding i being an array of bindings[i]
// buffers (1 for a plain buffer). Pipelines are cached by all of these.
func (b *Backend) Kernel(spvName string, spec []uint32, pushBytes int, bindings []int) (*Kernel, error) {
	return b.KernelWith(spvName, spec, pushBytes, bindings, KernelOptions{})
}

// KernelOptions are the rarer pipeline settings.
type KernelOptions struct {
	// SubgroupSize, when not 0, fixes the subgroup size (a power of two in [Caps.SubgroupMin,
	// Caps.SubgroupMax]); needs Caps.Features.SubgroupSizeControl and Caps.SubgroupSizeInCompute.
	SubgroupSize uint32
	// FullSubgroups makes every subgroup full (the workgroup's x size must be a multiple of the subgroup
	// size); needs Caps.Features.ComputeFullSubgroups.
	FullSubgroups bool
}

// KernelWith is Kernel with KernelOptions.
func (b *Backend) KernelWith(spvName string, spec []uint32, pushBytes int, bindings []int, o KernelOptions) (*Kernel, error) {
	key := makeKernelKey(spvName, spec, pushBytes, bindings)
	key.opts = o
	if k, ok := b.kernels[key]; ok {
		return k, nil
	}
	code, err := shaders.SPV(spvName)
	if err != nil {
		return nil, err
	}
	return b.kernelFromCode(key, spvName, code, spec, pushBytes, bindings, o)
}

// kernelFromCode builds and caches a kernel from SPIR-V (tests use it for shaders outside the embedded set).
func (b *Backend) kernelFromCode(key kernelKey, spvName string, code []byte, spec []uint32, pushBytes int, bindings []int, o KernelOptions) (*Kernel, error) {
	if k, ok := b.kernels[key]; ok {
		return k, nil
	}
	si, err := parseSPIRV(code)
	if err != nil {
		return nil, fmt.Errorf("gpu: kernel %s: %w", spvName, err)
	}
	if sz := o.SubgroupSize; sz != 0 {
		c := b.caps
		if !c.Features.SubgroupSizeControl || !c.SubgroupSizeInCompute {
			return nil, fmt.Errorf("gpu: kernel %s: a fixed subgroup size needs subgroupSizeControl for compute shaders, which %s lacks", spvName, b.info.Name)
		}
		if sz&(sz-1) != 0 || sz < c.SubgroupMin || sz > c.SubgroupMax {
			return nil, fmt.Errorf("gpu: kernel %s: subgroup size %d not a power of two in [%d, %d] on %s", spvName, sz, c.SubgroupMin, c.SubgroupMax, b.info.Name)
		}
	}
	if o.FullSubgroups && !b.caps.Features.ComputeFullSubgroups {
		return nil, fmt.Errorf("gpu: kernel %s: full subgroups need computeFullSubgroups, not enabled on %s", spvName, b.info.Name)
	}
	if miss := missingFeatures(si.Capabilities, b.caps.Features, b.info.Subgroup); len(miss) > 0 {
		return nil, fmt.Errorf("gpu: kernel %s needs %s, not enabled on %s: choose another variant", spvName, strings.Join(miss, ", "), b.info.Name)
	}
	for _, id := range si.SpecIDs {
		if int(id) >= len(spec) {
			return nil, fmt.Errorf("gpu: kernel %s: specialization constant %d has no value (%d given): give every constant an explicit value", spvName, id, len(spec))
		}
	}
	if pushBytes < 0 || pushBytes > b.caps.MaxPushConstants || pushBytes%4 != 0 {
		return nil, fmt.Errorf("gpu: kernel %s: %d push-constant bytes (a multiple of 4, at most %d on %s)", spvName, pushBytes, b.caps.MaxPushConstants, b.info.Name)
	}
	if pushBytes != si.PushBytes {
		return nil, fmt.Errorf("gpu: kernel %s: %d push-constant bytes given, the shader's block has %d (see push.go)", spvName, pushBytes, si.PushBytes)
	}
	k := &Kernel{Name: spvName, counts: append([]int(nil), bindings...), pushBytes: pushBytes}
	counts := make([]uint32, len(bindings))
	for i, c := range bindings {
		if c < 1 {
			return nil, fmt.Errorf("gpu: kernel %s: binding %d has %d descriptors", spvName, i, c)
		}
		counts[i] = uint32(c)
		k.nDesc += c
		ro, ok := si.Bindings[[2]uint32{0, uint32(i)}]
		k.readOnly = append(k.readOnly, ok && ro)
	}
	if k.nDesc > b.caps.MaxDescriptorsPerStage {
		return nil, fmt.Errorf("gpu: kernel %s: %d storage buffers exceed %s's maxPerStageDescriptorStorageBuffers %d", spvName, k.nDesc, b.info.Name, b.caps.MaxDescriptorsPerStage)
	}
	for sb := range si.Bindings {
		if sb[0] != 0 || int(sb[1]) >= len(bindings) {
			return nil, fmt.Errorf("gpu: kernel %s: the shader uses set %d binding %d, but %d bindings in set 0 were declared", spvName, sb[0], sb[1], len(bindings))
		}
	}
	k.pipe, err = b.dev.CreatePipeline(vk.PipelineDesc{Code: code, Spec: spec, PushBytes: uint32(pushBytes), Counts: counts,
		Cache: b.cache, RequiredSubgroup: o.SubgroupSize, FullSubgroups: o.FullSubgroups})
	if err != nil {
		return nil, fmt.Errorf("gpu: kernel %s: %w", spvName, err)
	}
	b.kernels[key] = k
	b.stats.Kernels++
	return k, nil
}

// kernelKey identifies a kernel without allocating: ops look their kernel up on every call.
type kernelKey struct {
	name         string
	push         int
	nspec, nbind int
	spec         [12]uint32
	bind         [24]int32
	long         string // when spec or bindings do not fit the arrays
	opts         KernelOptions
}

func makeKernelKey(name string, spec []uint32, push int, bindings []int) kernelKey {
	k := kernelKey{name: name, push: push, nspec: len(spec), nbind: len(bindings)}
	if len(spec) > len(k.spec) || len(bindings) > len(k.bind) {
		k.long = fmt.Sprint(spec, bindings)
		return k
	}
	copy(k.spec[:], spec)
	for i, c := range bindings {
		k.bind[i] = int32(c)
	}
	return k
}

// Pipeline cache on disk: $XDG_CACHE_HOME/kvc (or ~/.cache/kvc)/pipelines-<vendor>-<device>-<driver>.bin.
func (b *Backend) pipelineCachePath() string {
	dir := os.Getenv("XDG_CACHE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache")
	}
	return filepath.Join(dir, "kvc", fmt.Sprintf("pipelines-%04x-%04x-%08x.bin", b.info.VendorID, b.info.DeviceID, b.info.DriverVersion))
}

// validCacheHeader checks the VkPipelineCacheHeaderVersionOne header against this device.
func (b *Backend) validCacheHeader(data []byte) bool {
	if len(data) < 32 {
		return false
	}
	le := binary.LittleEndian
	hl, ver := le.Uint32(data[0:]), le.Uint32(data[4:])
	return hl >= 32 && int(hl) <= len(data) && ver == 1 && le.Uint32(data[8:]) == b.info.VendorID &&
		le.Uint32(data[12:]) == b.info.DeviceID && bytes.Equal(data[16:32], b.info.CacheUUID[:])
}

func (b *Backend) openPipelineCache() {
	b.cacheFn = b.pipelineCachePath()
	var data []byte
	if b.cacheFn != "" {
		if d, err := os.ReadFile(b.cacheFn); err == nil && b.validCacheHeader(d) {
			data = d
		}
	}
	c, err := b.dev.CreatePipelineCache(data)
	if err != nil && data != nil {
		c, err = b.dev.CreatePipelineCache(nil) // a cache the driver rejects is ignored
	}
	if err == nil {
		b.cache = c
	}
}

// savePipelineCache writes the cache atomically; failures only cost compile time next run.
func (b *Backend) savePipelineCache() {
	if b.cache == 0 {
		return
	}
	defer b.dev.DestroyPipelineCache(b.cache)
	if b.cacheFn == "" {
		return
	}
	data, err := b.dev.PipelineCacheData(b.cache)
	if err != nil || len(data) == 0 {
		return
	}
	if err := os.MkdirAll(filepath.Dir(b.cacheFn), 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.cacheFn), ".pipelines-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), b.cacheFn) != nil {
		os.Remove(tmp.Name())
	}
}
