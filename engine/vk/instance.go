package vk

/*
#include <stdlib.h>
#include "kvcvk.h"
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"
)

// ValidationLayer is the Khronos validation layer, enabled by InstanceOptions.Validation.
const ValidationLayer = "VK_LAYER_KHRONOS_validation"

// InstanceOptions configures NewInstance.
type InstanceOptions struct {
	// Validation enables VK_LAYER_KHRONOS_validation, with synchronization validation (missing barriers),
	// and records its messages (see Instance.Messages).
	Validation bool
	// NoSyncValidation leaves synchronization validation off (also KVC_VALIDATION_SYNC=0).
	NoSyncValidation bool
}

// Instance is a VkInstance with its function table.
type Instance struct {
	c          *C.kvc_inst
	id         int
	API        uint32 // the API version the instance was created with (1.2 or 1.3)
	Validation bool
}

// APIVersion packs a Vulkan version.
func APIVersion(major, minor, patch uint32) uint32 { return major<<22 | minor<<12 | patch }

// VersionString formats a packed Vulkan version.
func VersionString(v uint32) string { return fmt.Sprintf("%d.%d.%d", v>>22&0x7f, v>>12&0x3ff, v&0xfff) }

// NewInstance loads the loader if needed and creates an instance for API 1.3 (1.2 on older loaders).
func NewInstance(opts InstanceOptions) (*Instance, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	if err := faultCheck(); err != nil {
		return nil, err
	}
	if os.Getenv("KVC_VALIDATION_SYNC") == "0" {
		opts.NoSyncValidation = true
	}
	ver := uint32(C.kvc_instance_version())
	if ver < APIVersion(1, 2, 0) {
		return nil, fmt.Errorf("vulkan: the loader supports only Vulkan %s; kvc needs 1.2: update libvulkan1", VersionString(ver))
	}
	api := APIVersion(1, 3, 0)
	if ver < api {
		api = APIVersion(1, 2, 0)
	}
	has := func(layer, name string) bool {
		c := C.CString(name)
		defer C.free(unsafe.Pointer(c))
		var l *C.char
		if layer != "" {
			l = C.CString(layer)
			defer C.free(unsafe.Pointer(l))
		}
		return C.kvc_has_instance_ext(l, c) != 0
	}
	if opts.Validation {
		c := C.CString(ValidationLayer)
		ok := C.kvc_has_layer(c) != 0
		C.free(unsafe.Pointer(c))
		if !ok {
			return nil, fmt.Errorf("vulkan: validation requested (KVC_VALIDATION=1) but %s is not installed: install package vulkan-validationlayers", ValidationLayer)
		}
	}
	debugUtils := opts.Validation && has("", "VK_EXT_debug_utils")
	portability := has("", "VK_KHR_portability_enumeration")
	syncVal := opts.Validation && !opts.NoSyncValidation && has(ValidationLayer, "VK_EXT_validation_features")

	msgMu.Lock()
	id := nextID
	nextID++
	msgMu.Unlock()
	var ci *C.kvc_inst
	r := C.kvc_create_instance(C.uint32_t(api), boolInt(opts.Validation), boolInt(syncVal), boolInt(debugUtils), boolInt(portability), C.int(id), &ci)
	if err := check("vkCreateInstance", r); err != nil {
		return nil, err
	}
	return &Instance{c: ci, id: id, API: api, Validation: opts.Validation}, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Messages returns the validation warnings and errors this instance has recorded.
func (in *Instance) Messages() []string {
	msgMu.Lock()
	defer msgMu.Unlock()
	return append([]string(nil), msgs[in.id]...)
}

// Close destroys the instance. Devices created from it must be closed first.
func (in *Instance) Close() {
	if in.c != nil {
		C.kvc_destroy_instance(in.c)
		in.c = nil
	}
}

// DeviceType is VkPhysicalDeviceType.
type DeviceType uint32

const (
	TypeOther      DeviceType = 0
	TypeIntegrated DeviceType = 1
	TypeDiscrete   DeviceType = 2
	TypeVirtual    DeviceType = 3
	TypeCPU        DeviceType = 4
)

func (t DeviceType) String() string {
	switch t {
	case TypeIntegrated:
		return "integrated"
	case TypeDiscrete:
		return "discrete"
	case TypeVirtual:
		return "virtual"
	case TypeCPU:
		return "cpu"
	}
	return "other"
}

// Memory property flags (VkMemoryPropertyFlagBits) and heap flags.
const (
	MemDeviceLocal  = 0x1
	MemHostVisible  = 0x2
	MemHostCoherent = 0x4
	MemHostCached   = 0x8
	HeapDeviceLocal = 0x1
)

// Heap is a memory heap.
type Heap struct {
	Size  uint64
	Flags uint32
}

// MemoryType is a memory type: its property flags and heap.
type MemoryType struct {
	Flags uint32
	Heap  int
}

// Limits are the device limits kvc plans with.
type Limits struct {
	MaxStorageBufferRange               uint64
	MaxMemoryAllocationSize             uint64
	MaxBufferSize                       uint64
	MinStorageBufferOffsetAlignment     uint64
	MaxComputeSharedMemorySize          uint32
	MaxComputeWorkGroupInvocations      uint32
	MaxComputeWorkGroupSize             [3]uint32
	MaxComputeWorkGroupCount            [3]uint32
	MaxPushConstantsSize                uint32
	MaxBoundDescriptorSets              uint32
	MaxPerStageDescriptorStorageBuffers uint32
	TimestampComputeAndGraphics         bool
	TimestampPeriod                     float32 // ns per tick
	TimestampValidBits                  uint32  // of the compute queue; 0 = no timestamps
}

// Subgroup operation bits (VkSubgroupFeatureFlagBits).
const (
	SubgroupBasic           = 0x1
	SubgroupVote            = 0x2
	SubgroupArithmetic      = 0x4
	SubgroupBallot          = 0x8
	SubgroupShuffle         = 0x10
	SubgroupShuffleRelative = 0x20
	SubgroupClustered       = 0x40
	SubgroupQuad            = 0x80
)

// Subgroup describes subgroups in compute shaders.
type Subgroup struct {
	Size       uint32
	MinSize    uint32 // with subgroup size control; else Size
	MaxSize    uint32
	Operations uint32 // Subgroup* bits
	InCompute  bool   // supportedStages includes compute
	// RequiredInCompute: a compute pipeline may ask for a size in [MinSize, MaxSize] (subgroup size control).
	RequiredInCompute bool
}

// OpNames lists the supported subgroup operations.
func (s Subgroup) OpNames() []string {
	names := []string{"basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"}
	var out []string
	for i, n := range names {
		if s.Operations&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Features are the optional device features kvc uses. A Device enables exactly the ones asked for.
type Features struct {
	ShaderFloat16                     bool
	ShaderInt8                        bool
	ShaderInt16                       bool
	ShaderInt64                       bool
	StorageBuffer16BitAccess          bool
	StorageBuffer8BitAccess           bool
	UniformAndStorageBuffer8BitAccess bool
	StoragePushConstant8              bool
	StoragePushConstant16             bool
	ShaderBufferFloat32AtomicAdd      bool // VK_EXT_shader_atomic_float
	SubgroupSizeControl               bool
	ComputeFullSubgroups              bool
}

func (f Features) list() []struct {
	name string
	on   bool
} {
	return []struct {
		name string
		on   bool
	}{
		{"shaderFloat16", f.ShaderFloat16}, {"shaderInt8", f.ShaderInt8}, {"shaderInt16", f.ShaderInt16},
		{"shaderInt64", f.ShaderInt64}, {"storageBuffer16BitAccess", f.StorageBuffer16BitAccess},
		{"storageBuffer8BitAccess", f.StorageBuffer8BitAccess},
		{"uniformAndStorageBuffer8BitAccess", f.UniformAndStorageBuffer8BitAccess},
		{"storagePushConstant8", f.StoragePushConstant8}, {"storagePushConstant16", f.StoragePushConstant16},
		{"shaderBufferFloat32AtomicAdd", f.ShaderBufferFloat32AtomicAdd},
		{"subgroupSizeControl", f.SubgroupSizeControl}, {"computeFullSubgroups", f.ComputeFullSubgroups},
	}
}

// Names lists the features that are set, by their Vulkan names.
func (f Features) Names() []string {
	var out []string
	for _, e := range f.list() {
		if e.on {
			out = append(out, e.name)
		}
	}
	return out
}

// Missing lists the features set in f that have does not.
func (f Features) Missing(have Features) []string {
	var out []string
	h := have.list()
	for i, e := range f.list() {
		if e.on && !h[i].on {
			out = append(out, e.name)
		}
	}
	return out
}

// And keeps the features set in both.
func (f Features) And(o Features) Features {
	a, b := f.list(), o.list()
	var out Features
	ptrs := []*bool{&out.ShaderFloat16, &out.ShaderInt8, &out.ShaderInt16, &out.ShaderInt64,
		&out.StorageBuffer16BitAccess, &out.StorageBuffer8BitAccess, &out.UniformAndStorageBuffer8BitAccess,
		&out.StoragePushConstant8, &out.StoragePushConstant16, &out.ShaderBufferFloat32AtomicAdd,
		&out.SubgroupSizeControl, &out.ComputeFullSubgroups}
	for i := range a {
		*ptrs[i] = a[i].on && b[i].on
	}
	return out
}

// DeviceInfo is what a physical device reports.
type DeviceInfo struct {
	Name          string
	VendorID      uint32
	DeviceID      uint32
	APIVersion    uint32
	DriverVersion uint32
	DriverName    string
	DriverInfo    string
	Type          DeviceType
	CacheUUID     [16]byte
	Heaps         []Heap
	MemoryTypes   []MemoryType
	Limits        Limits
	Subgroup      Subgroup
	Features      Features
	QueueFamily   int // the compute queue family, -1 if none
}

// VendorName names well-known PCI vendor ids.
func (d *DeviceInfo) VendorName() string {
	switch d.VendorID {
	case 0x10de:
		return "NVIDIA"
	case 0x1002:
		return "AMD"
	case 0x8086:
		return "Intel"
	case 0x106b:
		return "Apple"
	case 0x13b5:
		return "ARM"
	case 0x5143:
		return "Qualcomm"
	case 0x10005:
		return "Mesa"
	}
	return fmt.Sprintf("0x%04x", d.VendorID)
}

// PhysicalDevice is a VkPhysicalDevice of an instance.
type PhysicalDevice struct {
	inst  *Instance
	h     uint64
	Index int
	Info  DeviceInfo
	raw   C.kvc_devinfo
}

// Devices enumerates the physical devices with their properties, limits and features.
func (in *Instance) Devices() ([]*PhysicalDevice, error) {
	var handles [64]C.uint64_t
	n := C.uint32_t(len(handles))
	if err := check("vkEnumeratePhysicalDevices", C.kvc_enum_physical(in.c, &n, &handles[0])); err != nil {
		return nil, err
	}
	out := make([]*PhysicalDevice, 0, int(n))
	for i := 0; i < int(n); i++ {
		p := &PhysicalDevice{inst: in, h: uint64(handles[i]), Index: i}
		C.kvc_query_device(in.c, handles[i], &p.raw)
		p.Info = convertInfo(&p.raw)
		out = append(out, p)
	}
	return out, nil
}

func convertInfo(r *C.kvc_devinfo) DeviceInfo {
	d := DeviceInfo{
		Name:          C.GoString(&r.name[0]),
		VendorID:      uint32(r.vendor_id),
		DeviceID:      uint32(r.device_id),
		APIVersion:    uint32(r.api_version),
		DriverVersion: uint32(r.driver_version),
		DriverName:    C.GoString(&r.driver_name[0]),
		DriverInfo:    C.GoString(&r.driver_info[0]),
		Type:          DeviceType(r.device_type),
		QueueFamily:   int(r.queue_family),
	}
	for i := range d.CacheUUID {
		d.CacheUUID[i] = byte(r.cache_uuid[i])
	}
	for i := 0; i < int(r.heap_count); i++ {
		d.Heaps = append(d.Heaps, Heap{Size: uint64(r.heap_size[i]), Flags: uint32(r.heap_flags[i])})
	}
	for i := 0; i < int(r.type_count); i++ {
		d.MemoryTypes = append(d.MemoryTypes, MemoryType{Flags: uint32(r.type_flags[i]), Heap: int(r.type_heap[i])})
	}
	l := &d.Limits
	l.MaxStorageBufferRange = uint64(r.max_storage_buffer_range)
	l.MaxMemoryAllocationSize = uint64(r.max_memory_allocation_size)
	l.MaxBufferSize = uint64(r.max_buffer_size)
	l.MinStorageBufferOffsetAlignment = uint64(r.min_storage_buffer_offset_alignment)
	l.MaxComputeSharedMemorySize = uint32(r.max_compute_shared_memory_size)
	l.MaxComputeWorkGroupInvocations = uint32(r.max_compute_work_group_invocations)
	for i := 0; i < 3; i++ {
		l.MaxComputeWorkGroupSize[i] = uint32(r.max_compute_work_group_size[i])
		l.MaxComputeWorkGroupCount[i] = uint32(r.max_compute_work_group_count[i])
	}
	l.MaxPushConstantsSize = uint32(r.max_push_constants_size)
	l.MaxBoundDescriptorSets = uint32(r.max_bound_descriptor_sets)
	l.MaxPerStageDescriptorStorageBuffers = uint32(r.max_per_stage_descriptor_storage_buffers)
	l.TimestampComputeAndGraphics = r.timestamp_compute_and_graphics != 0
	l.TimestampPeriod = float32(r.timestamp_period)
	l.TimestampValidBits = uint32(r.timestamp_valid_bits)
	d.Subgroup = Subgroup{
		Size: uint32(r.subgroup_size), MinSize: uint32(r.subgroup_min), MaxSize: uint32(r.subgroup_max),
		Operations: uint32(r.subgroup_ops), InCompute: r.subgroup_stages&C.VK_SHADER_STAGE_COMPUTE_BIT != 0,
		RequiredInCompute: r.subgroup_required_stages&C.VK_SHADER_STAGE_COMPUTE_BIT != 0,
	}
	d.Features = Features{
		ShaderFloat16: r.shader_float16 != 0, ShaderInt8: r.shader_int8 != 0, ShaderInt16: r.shader_int16 != 0,
		ShaderInt64: r.shader_int64 != 0, StorageBuffer16BitAccess: r.storage_buffer16 != 0,
		StorageBuffer8BitAccess: r.storage_buffer8 != 0, UniformAndStorageBuffer8BitAccess: r.uniform_storage8 != 0,
		StoragePushConstant8: r.push_constant8 != 0, StoragePushConstant16: r.push_constant16 != 0,
		ShaderBufferFloat32AtomicAdd: r.buffer_float32_atomic_add != 0,
		SubgroupSizeControl:          r.subgroup_size_control != 0, ComputeFullSubgroups: r.compute_full_subgroups != 0,
	}
	return d
}

// EffectiveAPI is the Vulkan version usable on this device through its instance.
func (p *PhysicalDevice) EffectiveAPI() uint32 {
	if p.Info.APIVersion < p.inst.API {
		return p.Info.APIVersion
	}
	return p.inst.API
}
