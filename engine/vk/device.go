package vk

/*
#include <stdlib.h>
#include "kvcvk.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// Handles of device objects: opaque 64-bit values.
type (
	Buffer         uint64
	Memory         uint64
	PipelineCache  uint64
	DescriptorPool uint64
	DescriptorSet  uint64
	CommandPool    uint64
	CommandBuffer  uint64
	QueryPool      uint64
	Fence          uint64
)

// Buffer usage bits (VkBufferUsageFlagBits).
const (
	UsageTransferSrc = 0x1
	UsageTransferDst = 0x2
	UsageStorage     = 0x20
)

// Device is a VkDevice with one compute queue and exactly the Enabled features.
type Device struct {
	c       *C.kvc_dev
	Phys    *PhysicalDevice
	Enabled Features
}

// CreateDevice creates the logical device with exactly the requested features, refusing (naming them) any
// the device lacks.
func (p *PhysicalDevice) CreateDevice(want Features) (*Device, error) {
	if p.EffectiveAPI() < APIVersion(1, 2, 0) {
		return nil, fmt.Errorf("vulkan: %s supports Vulkan %s; kvc needs 1.2", p.Info.Name, VersionString(p.Info.APIVersion))
	}
	if p.Info.QueueFamily < 0 {
		return nil, fmt.Errorf("vulkan: %s has no compute queue", p.Info.Name)
	}
	if miss := want.Missing(p.Info.Features); len(miss) > 0 {
		return nil, fmt.Errorf("vulkan: %s does not support %s", p.Info.Name, strings.Join(miss, ", "))
	}
	f := C.kvc_features{
		shader_float16: b32(want.ShaderFloat16), shader_int8: b32(want.ShaderInt8), shader_int16: b32(want.ShaderInt16),
		shader_int64: b32(want.ShaderInt64), storage_buffer16: b32(want.StorageBuffer16BitAccess),
		storage_buffer8: b32(want.StorageBuffer8BitAccess), uniform_storage8: b32(want.UniformAndStorageBuffer8BitAccess),
		push_constant8: b32(want.StoragePushConstant8), push_constant16: b32(want.StoragePushConstant16),
		buffer_float32_atomic_add: b32(want.ShaderBufferFloat32AtomicAdd),
		subgroup_size_control:     b32(want.SubgroupSizeControl), compute_full_subgroups: b32(want.ComputeFullSubgroups),
	}
	var errBuf [256]C.char
	var d *C.kvc_dev
	r := C.kvc_create_device(p.inst.c, C.uint64_t(p.h), &p.raw, &f, &d, &errBuf[0], C.int(len(errBuf)))
	if r != C.VK_SUCCESS {
		return nil, fmt.Errorf("vulkan: %s: %s (%s)", p.Info.Name, C.GoString(&errBuf[0]), resultName(int32(r)))
	}
	return &Device{c: d, Phys: p, Enabled: want}, nil
}

func b32(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

// Close destroys the device; every object created from it must be destroyed first.
func (d *Device) Close() {
	if d.c != nil {
		C.kvc_destroy_device(d.c)
		d.c = nil
	}
}

// WaitIdle waits for the queue to drain.
func (d *Device) WaitIdle() error { return check("vkDeviceWaitIdle", C.kvc_device_wait_idle(d.c)) }

// MemoryRequirements of a buffer.
type MemoryRequirements struct {
	Size      uint64
	Alignment uint64
	TypeBits  uint32
}

// CreateBuffer creates an unbound buffer and returns its memory requirements.
func (d *Device) CreateBuffer(size uint64, usage uint32) (Buffer, MemoryRequirements, error) {
	var h, rs, ra C.uint64_t
	var bits C.uint32_t
	r := C.kvc_create_buffer(d.c, C.uint64_t(size), C.uint32_t(usage), &h, &rs, &ra, &bits)
	if err := check("vkCreateBuffer", r); err != nil {
		return 0, MemoryRequirements{}, err
	}
	return Buffer(h), MemoryRequirements{uint64(rs), uint64(ra), uint32(bits)}, nil
}

func (d *Device) DestroyBuffer(b Buffer) { C.kvc_destroy_buffer(d.c, C.uint64_t(b)) }

// AllocateMemory allocates size bytes of memory type typ.
func (d *Device) AllocateMemory(size uint64, typ int) (Memory, error) {
	var h C.uint64_t
	r := faultAllocResult()
	if r == C.VK_SUCCESS {
		r = C.kvc_alloc_memory(d.c, C.uint64_t(size), C.uint32_t(typ), &h)
	}
	if err := check("vkAllocateMemory", r); err != nil {
		return 0, err
	}
	return Memory(h), nil
}

func (d *Device) FreeMemory(m Memory) { C.kvc_free_memory(d.c, C.uint64_t(m)) }

func (d *Device) BindBuffer(b Buffer, m Memory, off uint64) error {
	return check("vkBindBufferMemory", C.kvc_bind_buffer(d.c, C.uint64_t(b), C.uint64_t(m), C.uint64_t(off)))
}

// Map maps the whole allocation (size bytes) and returns it as a byte slice over C memory.
func (d *Device) Map(m Memory, size uint64) ([]byte, error) {
	var p unsafe.Pointer
	if err := check("vkMapMemory", C.kvc_map(d.c, C.uint64_t(m), &p)); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}

func (d *Device) Unmap(m Memory) { C.kvc_unmap(d.c, C.uint64_t(m)) }

// CreatePipelineCache creates a cache seeded with data (may be nil).
func (d *Device) CreatePipelineCache(data []byte) (PipelineCache, error) {
	var h C.uint64_t
	var p unsafe.Pointer
	if len(data) > 0 {
		p = C.CBytes(data)
		defer C.free(p)
	}
	if err := check("vkCreatePipelineCache", C.kvc_create_pipeline_cache(d.c, p, C.size_t(len(data)), &h)); err != nil {
		return 0, err
	}
	return PipelineCache(h), nil
}

// PipelineCacheData serializes a pipeline cache.
func (d *Device) PipelineCacheData(c PipelineCache) ([]byte, error) {
	var n C.size_t
	if err := check("vkGetPipelineCacheData", C.kvc_pipeline_cache_data(d.c, C.uint64_t(c), &n, nil)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	buf := C.malloc(n)
	defer C.free(buf)
	r := C.kvc_pipeline_cache_data(d.c, C.uint64_t(c), &n, buf)
	if r != C.VK_SUCCESS && r != C.VK_INCOMPLETE {
		return nil, check("vkGetPipelineCacheData", r)
	}
	return C.GoBytes(buf, C.int(n)), nil
}

func (d *Device) DestroyPipelineCache(c PipelineCache) {
	C.kvc_destroy_pipeline_cache(d.c, C.uint64_t(c))
}

// Pipeline is a compute pipeline with its layouts: descriptor set 0 holds len(Counts) storage-buffer
// bindings, binding i an array of Counts[i] buffers.
type Pipeline struct {
	SetLayout uint64
	Layout    uint64
	Pipe      uint64
	Counts    []uint32
	PushBytes uint32
}

// PipelineDesc describes a compute pipeline. Spec[i] is the value of specialization constant id i.
type PipelineDesc struct {
	Code             []byte // SPIR-V
	Spec             []uint32
	PushBytes        uint32
	Counts           []uint32 // descriptor count per binding
	RequiredSubgroup uint32   // 0: driver's choice (needs subgroupSizeControl otherwise)
	FullSubgroups    bool     // every subgroup full (needs computeFullSubgroups)
	Cache            PipelineCache
}

// CreatePipeline builds the descriptor set layout, pipeline layout and compute pipeline.
func (d *Device) CreatePipeline(desc PipelineDesc) (*Pipeline, error) {
	if len(desc.Code) == 0 || len(desc.Code)%4 != 0 {
		return nil, fmt.Errorf("vulkan: SPIR-V of %d bytes (must be a non-empty multiple of 4)", len(desc.Code))
	}
	total := 0
	for _, c := range desc.Counts {
		if c == 0 {
			return nil, fmt.Errorf("vulkan: a binding with descriptor count 0")
		}
		total += int(c)
	}
	if total > C.KVC_MAX_DESCRIPTORS {
		return nil, fmt.Errorf("vulkan: %d descriptors in one set (at most %d)", total, C.KVC_MAX_DESCRIPTORS)
	}
	code := C.CBytes(desc.Code)
	defer C.free(code)
	cmem := C.malloc(C.size_t(4 * (len(desc.Spec) + len(desc.Counts) + 1)))
	defer C.free(cmem)
	words := unsafe.Slice((*C.uint32_t)(cmem), len(desc.Spec)+len(desc.Counts)+1)
	for i, v := range desc.Spec {
		words[i] = C.uint32_t(v)
	}
	for i, v := range desc.Counts {
		words[len(desc.Spec)+i] = C.uint32_t(v)
	}
	var out [3]C.uint64_t
	r := C.kvc_create_kernel(d.c, C.uint64_t(desc.Cache), (*C.uint32_t)(code), C.size_t(len(desc.Code)),
		&words[0], C.uint32_t(len(desc.Spec)), C.uint32_t(desc.PushBytes), &words[len(desc.Spec)],
		C.uint32_t(len(desc.Counts)), C.uint32_t(desc.RequiredSubgroup), boolInt(desc.FullSubgroups), &out[0])
	if err := check("vkCreateComputePipelines", r); err != nil {
		return nil, err
	}
	return &Pipeline{SetLayout: uint64(out[0]), Layout: uint64(out[1]), Pipe: uint64(out[2]),
		Counts: append([]uint32(nil), desc.Counts...), PushBytes: desc.PushBytes}, nil
}

func (d *Device) DestroyPipeline(p *Pipeline) {
	C.kvc_destroy_kernel(d.c, C.uint64_t(p.SetLayout), C.uint64_t(p.Layout), C.uint64_t(p.Pipe))
}

// CreateDescriptorPool makes a pool of maxSets sets with nDesc storage-buffer descriptors in all.
func (d *Device) CreateDescriptorPool(maxSets, nDesc uint32) (DescriptorPool, error) {
	var h C.uint64_t
	if err := check("vkCreateDescriptorPool", C.kvc_create_desc_pool(d.c, C.uint32_t(maxSets), C.uint32_t(nDesc), &h)); err != nil {
		return 0, err
	}
	return DescriptorPool(h), nil
}

func (d *Device) DestroyDescriptorPool(p DescriptorPool) { C.kvc_destroy_desc_pool(d.c, C.uint64_t(p)) }

// AllocateDescriptorSet allocates one set of the pipeline's layout. An *Error with OutOfPool() true means
// the pool is exhausted.
func (d *Device) AllocateDescriptorSet(pool DescriptorPool, p *Pipeline) (DescriptorSet, error) {
	var h C.uint64_t
	if err := check("vkAllocateDescriptorSets", C.kvc_alloc_desc_set(d.c, C.uint64_t(pool), C.uint64_t(p.SetLayout), &h)); err != nil {
		return 0, err
	}
	return DescriptorSet(h), nil
}

// OutOfPool reports a descriptor pool that is full or fragmented.
func (e *Error) OutOfPool() bool {
	return e.Result == C.VK_ERROR_OUT_OF_POOL_MEMORY || e.Result == C.VK_ERROR_FRAGMENTED_POOL
}

// UpdateDescriptorSet points the set's descriptors (len = sum of p.Counts, binding by binding) at buffer ranges.
func (d *Device) UpdateDescriptorSet(set DescriptorSet, p *Pipeline, bufs []Buffer, offs, ranges []uint64) {
	if len(bufs) == 0 {
		return
	}
	C.kvc_update_desc_set(d.c, C.uint64_t(set), C.uint32_t(len(p.Counts)), (*C.uint32_t)(unsafe.Pointer(&p.Counts[0])),
		(*C.uint64_t)(unsafe.Pointer(&bufs[0])), (*C.uint64_t)(unsafe.Pointer(&offs[0])), (*C.uint64_t)(unsafe.Pointer(&ranges[0])))
}

// CreateCommandBuffer makes a resettable command pool on the compute queue family with one primary buffer.
func (d *Device) CreateCommandBuffer() (CommandPool, CommandBuffer, error) {
	var p, c C.uint64_t
	if err := check("vkCreateCommandPool", C.kvc_create_cmd(d.c, C.uint32_t(d.Phys.Info.QueueFamily), &p, &c)); err != nil {
		return 0, 0, err
	}
	return CommandPool(p), CommandBuffer(c), nil
}

func (d *Device) DestroyCommandPool(p CommandPool) { C.kvc_destroy_cmd_pool(d.c, C.uint64_t(p)) }

// Begin resets and begins a one-time-submit recording.
func (d *Device) Begin(c CommandBuffer) error {
	return check("vkBeginCommandBuffer", C.kvc_begin(d.c, C.uint64_t(c)))
}

func (d *Device) End(c CommandBuffer) error {
	return check("vkEndCommandBuffer", C.kvc_end(d.c, C.uint64_t(c)))
}

// CmdDispatch binds pipeline and set, pushes constants and dispatches.
func (d *Device) CmdDispatch(c CommandBuffer, p *Pipeline, set DescriptorSet, push []byte, x, y, z uint32) {
	var pp unsafe.Pointer
	if len(push) > 0 {
		pp = unsafe.Pointer(&push[0])
	}
	C.kvc_cmd_dispatch(d.c, C.uint64_t(c), C.uint64_t(p.Pipe), C.uint64_t(p.Layout), C.uint64_t(set), pp,
		C.uint32_t(len(push)), C.uint32_t(x), C.uint32_t(y), C.uint32_t(z))
}

// CmdBarrier orders all earlier compute-shader and transfer writes before all later reads and writes.
func (d *Device) CmdBarrier(c CommandBuffer) { C.kvc_cmd_barrier(d.c, C.uint64_t(c)) }

// CmdHostBarrier makes device writes visible to host reads after the submission's fence.
func (d *Device) CmdHostBarrier(c CommandBuffer) { C.kvc_cmd_host_barrier(d.c, C.uint64_t(c)) }

func (d *Device) CmdCopy(c CommandBuffer, src, dst Buffer, srcOff, dstOff, size uint64) {
	C.kvc_cmd_copy(d.c, C.uint64_t(c), C.uint64_t(src), C.uint64_t(dst), C.uint64_t(srcOff), C.uint64_t(dstOff), C.uint64_t(size))
}

// CmdUpdate records an inline write (len(data) <= 65536, multiple of 4, off multiple of 4).
func (d *Device) CmdUpdate(c CommandBuffer, dst Buffer, off uint64, data []byte) {
	C.kvc_cmd_update(d.c, C.uint64_t(c), C.uint64_t(dst), C.uint64_t(off), C.uint64_t(len(data)), unsafe.Pointer(&data[0]))
}

func (d *Device) CmdResetQueries(c CommandBuffer, p QueryPool, first, count uint32) {
	C.kvc_cmd_reset_queries(d.c, C.uint64_t(c), C.uint64_t(p), C.uint32_t(first), C.uint32_t(count))
}

// CmdTimestamp writes a timestamp once earlier compute work has finished.
func (d *Device) CmdTimestamp(c CommandBuffer, p QueryPool, q uint32) {
	C.kvc_cmd_timestamp(d.c, C.uint64_t(c), C.uint64_t(p), C.uint32_t(q))
}

func (d *Device) CreateQueryPool(count uint32) (QueryPool, error) {
	var h C.uint64_t
	if err := check("vkCreateQueryPool", C.kvc_create_query_pool(d.c, C.uint32_t(count), &h)); err != nil {
		return 0, err
	}
	return QueryPool(h), nil
}

func (d *Device) DestroyQueryPool(p QueryPool) { C.kvc_destroy_query_pool(d.c, C.uint64_t(p)) }

// QueryResults reads len(out) 64-bit timestamps starting at first, waiting for them.
func (d *Device) QueryResults(p QueryPool, first uint32, out []uint64) error {
	if len(out) == 0 {
		return nil
	}
	return check("vkGetQueryPoolResults", C.kvc_query_results(d.c, C.uint64_t(p), C.uint32_t(first), C.uint32_t(len(out)),
		(*C.uint64_t)(unsafe.Pointer(&out[0]))))
}

func (d *Device) CreateFence() (Fence, error) {
	var h C.uint64_t
	if err := check("vkCreateFence", C.kvc_create_fence(d.c, &h)); err != nil {
		return 0, err
	}
	return Fence(h), nil
}

func (d *Device) DestroyFence(f Fence) { C.kvc_destroy_fence(d.c, C.uint64_t(f)) }

// SubmitWait submits c on the compute queue, waits for f (at most timeoutNs) and resets f.
func (d *Device) SubmitWait(c CommandBuffer, f Fence, timeoutNs uint64) error {
	if r := faultSubmitResult(); r != C.VK_SUCCESS {
		return check("vkQueueSubmit", r)
	}
	return check("vkQueueSubmit/vkWaitForFences", faultWaitResult(C.kvc_submit_wait(d.c, C.uint64_t(c), C.uint64_t(f), C.uint64_t(timeoutNs))))
}

// CmdFill fills size bytes at off (both multiples of 4) with a 32-bit value.
func (d *Device) CmdFill(c CommandBuffer, dst Buffer, off, size uint64, value uint32) {
	C.kvc_cmd_fill(d.c, C.uint64_t(c), C.uint64_t(dst), C.uint64_t(off), C.uint64_t(size), C.uint32_t(value))
}
