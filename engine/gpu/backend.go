// Package gpu is the Vulkan backend's runtime: device memory, kernels (compute pipelines), command recording
// with automatic barriers, Sync, and GPU-time profiling. The ops (engine.Backend's Embed, MatMul, ...) are
// written on top of it in ops_*.go with this small API:
//
//	k, err := b.Kernel("fill", []uint32{256}, PushSize[fillPush](), []int{1}) // SPIR-V name, spec constants, push bytes, descriptors per binding
//	b.Dispatch(k, b.Groups1D(n, 256), PushBytes(&fillPush{Count: n, Value: v}), []Range{Whole(dst)})
//	err = b.Sync()                                                            // submit and wait; also returns recording errors
//
// Each shader's push-constant block is a Go struct in push.go (checked against the SPIR-V by a test).
//
// Dispatch records into the current command buffer; a barrier is inserted only where a command's bound byte
// range overlaps a range written (or, for a write, read) since the last barrier; bindings declared readonly
// in GLSL count as reads only. KVC_VALIDATION=1 turns on the validation layer with synchronization
// validation, which reports any missing barrier. Recording never returns an error: the first one is kept
// and returned by the next Sync (or Read).
//
// Rules for shaders: descriptor set 0, binding i = the i-th []Range of Dispatch (an array binding takes
// one Range per element); every specialization constant gets a value (spec[id]); a Range.Off bound to a
// shader is a multiple of Caps().StorageOffsetAlignment and its length at most Caps().MaxStorageBufferRange;
// linear indices are computed as in fill.comp (see Groups1D) because large grids are split in 2D.
package gpu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"kvc/engine"
	"kvc/engine/vk"
)

// Options configures Open.
type Options struct {
	// Validation enables the Khronos validation layer (also KVC_VALIDATION=1).
	Validation bool
	// Profile records GPU timestamps around every dispatch (also KVC_PROFILE=1); see ProfileReport.
	Profile bool
	// Features, when non-nil, is exactly the feature set to enable (Open fails naming any the device lacks).
	// nil enables DefaultFeatures() where the device supports them.
	Features *vk.Features

	// Discrete makes the device behave like a discrete GPU without resizable BAR: device buffers are never
	// mapped, every upload and read-back goes through the staging ring (also KVC_DEVICE_MEMORY=discrete).
	Discrete bool

	// TiledMinRows: MatMul and the fused products run the tiled kernel (shaders/matmul_tiled.comp) for
	// batches of at least this many rows, on any device type (also KVC_TILED_MIN_ROWS=N). 0 keeps the
	// default (tiledMinRows on GPUs, never on CPU devices); negative turns the tiled kernel off.
	TiledMinRows int

	// Tests: the staging ring's size.
	stagingSize int64
}

// DefaultFeatures are the features kvc enables whenever the device has them.
func DefaultFeatures() vk.Features {
	return vk.Features{
		ShaderFloat16: true, ShaderInt8: true, ShaderInt16: true, ShaderInt64: true,
		StorageBuffer16BitAccess: true, StorageBuffer8BitAccess: true, UniformAndStorageBuffer8BitAccess: true,
		StoragePushConstant8: true, StoragePushConstant16: true,
		SubgroupSizeControl: true, ComputeFullSubgroups: true,
	}
}

// Caps is what op wrappers choose shader variants and sizes from: enabled features and device limits.
type Caps struct {
	Features vk.Features // exactly what the device was created with
	// Convenience copies of Features.
	FP16      bool // shaderFloat16 (fp16 arithmetic)
	Storage16 bool // storageBuffer16BitAccess (f16/u16 in buffers)
	Storage8  bool // storageBuffer8BitAccess + shaderInt8 (u8/i8 in buffers)
	Int64     bool

	SubgroupSize    uint32
	SubgroupMin     uint32
	SubgroupMax     uint32
	SubgroupOps     uint32 // vk.Subgroup* bits, valid in compute shaders when SubgroupCompute
	SubgroupCompute bool
	// SubgroupSizeInCompute: KernelOptions.SubgroupSize may be used (with Features.SubgroupSizeControl).
	SubgroupSizeInCompute bool

	MaxStorageBufferRange   int64
	MaxAlloc                int64 // largest single buffer
	StorageOffsetAlignment  int64 // a Range.Off bound to a shader must be a multiple of this
	MaxSharedMemory         int
	MaxWorkGroupInvocations int
	MaxWorkGroupSize        [3]uint32
	MaxWorkGroupCount       [3]uint32
	MaxPushConstants        int
	MaxDescriptorsPerStage  int
	HostVisibleDeviceMemory bool // Write/Read map device memory directly (UMA, ReBAR, lavapipe)
	TimestampPeriodNs       float64
	TimestampsSupported     bool
}

// The ops of engine.Backend, and the optional capabilities a device has.
var (
	_ engine.Backend           = (*Backend)(nil)
	_ engine.DeviceMemory      = (*Backend)(nil)
	_ engine.Profiler          = (*Backend)(nil)
	_ engine.Counting          = (*Backend)(nil)
	_ engine.KVBlockIO         = (*Backend)(nil)
	_ engine.BatchReader       = (*Backend)(nil)
	_ engine.AttentionWindower = (*Backend)(nil)
)

// Backend is one Vulkan device. It is not safe for concurrent use.
type Backend struct {
	index int
	inst  *vk.Instance
	phys  *vk.PhysicalDevice
	dev   *vk.Device
	caps  Caps
	info  vk.DeviceInfo

	mem     *allocator
	kernels map[kernelKey]*Kernel
	cache   vk.PipelineCache
	cacheFn string

	rec       recorder
	desc      descriptorCache
	prof      profiler
	fillK     *Kernel
	probePool vk.QueryPool
	tiledMin  int // Options.TiledMinRows after KVC_TILED_MIN_ROWS
	// testNoBarriers drops every barrier: tests prove synchronization validation would catch a missing one.
	testNoBarriers bool
	err            error // first recording error, returned by Sync
	stats          Stats
	closed         bool
	closeMu        sync.Mutex
}

// Stats counts what the backend has done (for tests and reports).
type Stats struct {
	Dispatches     int
	Barriers       int
	Submits        int
	UploadBytes    int64 // bytes given to Write
	ReadbackBytes  int64 // bytes returned by Read
	DescriptorHits int
	DescriptorNew  int
	Kernels        int
}

// Devices lists the Vulkan devices (through a short-lived instance).
func Devices() ([]vk.DeviceInfo, error) {
	in, err := vk.NewInstance(vk.InstanceOptions{})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	ps, err := in.Devices()
	if err != nil {
		return nil, err
	}
	out := make([]vk.DeviceInfo, len(ps))
	for i, p := range ps {
		out[i] = p.Info
	}
	return out, nil
}

// Rank orders device types for the default choice: discrete > integrated > virtual > other > CPU.
func Rank(t vk.DeviceType) int {
	switch t {
	case vk.TypeDiscrete:
		return 4
	case vk.TypeIntegrated:
		return 3
	case vk.TypeVirtual:
		return 2
	case vk.TypeOther:
		return 1
	}
	return 0
}

// BestDevice returns the index of the preferred usable device (compute queue, Vulkan 1.2), or -1.
func BestDevice(devs []vk.DeviceInfo) int {
	best := -1
	for i, d := range devs {
		if d.QueueFamily < 0 || d.APIVersion < vk.APIVersion(1, 2, 0) {
			continue
		}
		if best < 0 || Rank(d.Type) > Rank(devs[best].Type) {
			best = i
		}
	}
	return best
}

// ErrNoVulkan is wrapped by OpenBest's error when Vulkan is unavailable (no loader, no driver, no usable
// device), as opposed to a device that exists but fails.
var ErrNoVulkan = errors.New("no usable Vulkan device")

// Open creates the device of the given index (as listed by Devices).
func Open(index int, opts Options) (*Backend, error) {
	return open(opts, func(ps []*vk.PhysicalDevice) (int, error) {
		if index < 0 || index >= len(ps) {
			var names []string
			for _, p := range ps {
				names = append(names, fmt.Sprintf("vulkan:%d (%s)", p.Index, p.Info.Name))
			}
			if len(names) == 0 {
				return 0, fmt.Errorf("gpu: no Vulkan device %d: there are no Vulkan devices (install a driver, e.g. mesa-vulkan-drivers)", index)
			}
			return 0, fmt.Errorf("gpu: no Vulkan device %d; available: %s", index, strings.Join(names, ", "))
		}
		return index, nil
	})
}

// OpenBest opens the preferred device (see BestDevice) with one instance. When Vulkan is unavailable the
// error wraps ErrNoVulkan and says what to install.
func OpenBest(opts Options) (*Backend, error) {
	if err := vk.Load(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoVulkan, err)
	}
	b, err := open(opts, func(ps []*vk.PhysicalDevice) (int, error) {
		infos := make([]vk.DeviceInfo, len(ps))
		for i, p := range ps {
			infos[i] = p.Info
		}
		if i := BestDevice(infos); i >= 0 {
			return i, nil
		}
		return 0, fmt.Errorf("%w among %d devices (install a driver, e.g. mesa-vulkan-drivers, or your GPU vendor's)", ErrNoVulkan, len(ps))
	})
	var ve *vk.Error
	if err != nil && !opts.Validation && errors.As(err, &ve) && ve.Op == "vkCreateInstance" {
		return nil, fmt.Errorf("%w: %v (no Vulkan driver? install one, e.g. mesa-vulkan-drivers)", ErrNoVulkan, err)
	}
	return b, err
}

func open(opts Options, pick func([]*vk.PhysicalDevice) (int, error)) (*Backend, error) {
	if os.Getenv("KVC_VALIDATION") == "1" {
		opts.Validation = true
	}
	if os.Getenv("KVC_PROFILE") == "1" {
		opts.Profile = true
	}
	switch m := os.Getenv("KVC_DEVICE_MEMORY"); m {
	case "", "auto":
	case "discrete":
		opts.Discrete = true
	default:
		return nil, fmt.Errorf("gpu: KVC_DEVICE_MEMORY=%q: want discrete or auto", m)
	}
	if v := os.Getenv("KVC_TILED_MIN_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("gpu: KVC_TILED_MIN_ROWS=%q: want an integer (rows; 0 the default, negative off)", v)
		}
		opts.TiledMinRows = n
	}
	in, err := vk.NewInstance(vk.InstanceOptions{Validation: opts.Validation})
	if err != nil {
		return nil, err
	}
	ps, err := in.Devices()
	if err != nil {
		in.Close()
		return nil, err
	}
	index, err := pick(ps)
	if err != nil {
		in.Close()
		return nil, err
	}
	p := ps[index]
	want := DefaultFeatures().And(p.Info.Features)
	if opts.Features != nil {
		want = *opts.Features
	}
	dev, err := p.CreateDevice(want)
	if err != nil {
		in.Close()
		return nil, err
	}
	b := &Backend{index: index, inst: in, phys: p, dev: dev, info: p.Info, kernels: map[kernelKey]*Kernel{}, tiledMin: opts.TiledMinRows}
	b.caps = makeCaps(&p.Info, want)
	if err := b.init(opts); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func makeCaps(d *vk.DeviceInfo, f vk.Features) Caps {
	l := d.Limits
	maxAlloc := l.MaxMemoryAllocationSize
	if l.MaxBufferSize != 0 && l.MaxBufferSize < maxAlloc {
		maxAlloc = l.MaxBufferSize
	}
	return Caps{
		Features: f, FP16: f.ShaderFloat16, Storage16: f.StorageBuffer16BitAccess,
		Storage8: f.StorageBuffer8BitAccess && f.ShaderInt8, Int64: f.ShaderInt64,
		SubgroupSize: d.Subgroup.Size, SubgroupMin: d.Subgroup.MinSize, SubgroupMax: d.Subgroup.MaxSize,
		SubgroupOps: d.Subgroup.Operations, SubgroupCompute: d.Subgroup.InCompute,
		SubgroupSizeInCompute: d.Subgroup.RequiredInCompute,
		MaxStorageBufferRange: int64(l.MaxStorageBufferRange), MaxAlloc: int64(maxAlloc),
		StorageOffsetAlignment: int64(l.MinStorageBufferOffsetAlignment),
		MaxSharedMemory:        int(l.MaxComputeSharedMemorySize), MaxWorkGroupInvocations: int(l.MaxComputeWorkGroupInvocations),
		MaxWorkGroupSize: l.MaxComputeWorkGroupSize, MaxWorkGroupCount: l.MaxComputeWorkGroupCount,
		MaxPushConstants: int(l.MaxPushConstantsSize), MaxDescriptorsPerStage: int(l.MaxPerStageDescriptorStorageBuffers),
		TimestampPeriodNs: float64(l.TimestampPeriod), TimestampsSupported: l.TimestampValidBits > 0,
	}
}

func (b *Backend) init(opts Options) error {
	var err error
	if b.mem, err = newAllocator(b.dev, &b.info, opts.Discrete); err != nil {
		return err
	}
	if opts.stagingSize > 0 {
		b.mem.stagingSize = opts.stagingSize
	}
	b.caps.HostVisibleDeviceMemory = b.mem.mappable
	b.openPipelineCache()
	if err := b.rec.init(b.dev); err != nil {
		return err
	}
	b.desc.init(b.dev)
	if opts.Profile {
		if !b.caps.TimestampsSupported {
			return fmt.Errorf("gpu: profiling asked for, but %s has no timestamps on its compute queue", b.info.Name)
		}
		if err := b.prof.init(b.dev, b.caps.TimestampPeriodNs, b.info.Limits.TimestampValidBits); err != nil {
			return err
		}
	}
	return nil
}

// Name is e.g. "vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits))".
func (b *Backend) Name() string { return fmt.Sprintf("vulkan:%d (%s)", b.index, b.info.Name) }

// Info is the device's properties, limits and supported features.
func (b *Backend) Info() *vk.DeviceInfo { return &b.info }

// Caps reports the enabled features and the limits op wrappers must respect.
func (b *Backend) Caps() Caps { return b.caps }

// Stats returns counters since Open.
func (b *Backend) Stats() Stats { return b.stats }

// ValidationMessages returns the validation layer's messages for this device's instance (empty without
// validation).
func (b *Backend) ValidationMessages() []string { return b.inst.Messages() }

// Fail records err as the backend's error (the first one wins); the next Sync returns it. Op wrappers call
// it when they cannot record an op (e.g. a kernel failed to build).
func (b *Backend) Fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// Err is the pending recording error, if any.
func (b *Backend) Err() error { return b.err }

// Close waits for the device, saves the pipeline cache and destroys everything.
func (b *Backend) Close() error {
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	var err error
	if b.dev != nil && b.rec.recording {
		err = b.Sync() // finish what was recorded while the backend is still open
	}
	b.closed = true
	if b.dev != nil {
		b.dev.WaitIdle()
		b.prof.destroy(b.dev)
		if b.probePool != 0 {
			b.dev.DestroyQueryPool(b.probePool)
		}
		b.desc.destroy()
		for _, k := range b.kernels {
			b.dev.DestroyPipeline(k.pipe)
		}
		b.kernels = nil
		b.savePipelineCache()
		b.rec.destroy(b.dev)
		if b.mem != nil {
			b.mem.destroy()
		}
		b.dev.Close()
	}
	if b.inst != nil {
		b.inst.Close()
	}
	return err
}

// Counters implements engine.Counting.
func (b *Backend) Counters() engine.Counters {
	s := b.stats
	return engine.Counters{Submits: int64(s.Submits), Dispatches: int64(s.Dispatches), UploadBytes: s.UploadBytes, ReadbackBytes: s.ReadbackBytes}
}
