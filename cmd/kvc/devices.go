package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"kvc/engine/cpu"
	"kvc/engine/device"
	"kvc/engine/gpu"
	"kvc/engine/vk"
	"kvc/shaders"
)

// cmdDevices implements `kvc devices [--json] [--probe]`.
func cmdDevices(args []string) error { return runDevices(args, os.Stdout) }

// deviceReport is one device in `kvc devices` output (and its --json form).
type deviceReport struct {
	Spec    string `json:"spec"`
	Name    string `json:"name"`
	Default bool   `json:"default"`
	// DefaultWhy says why the CPU backend is the default (no Vulkan, or only CPU-type devices).
	DefaultWhy string           `json:"default_reason,omitempty"`
	Usable     string           `json:"unusable_reason,omitempty"`
	Vulkan     *vk.DeviceInfo   `json:"vulkan,omitempty"`
	Vendor     string           `json:"vendor,omitempty"`
	Enabled    []string         `json:"features_enabled,omitempty"`
	Shaders    int              `json:"shader_modules,omitempty"`
	NoShader   []string         `json:"shader_modules_unusable,omitempty"` // "name: needs ..."
	Probe      *gpu.ProbeResult `json:"probe,omitempty"`
	CPUProbe   *cpu.ReadProbe   `json:"cpu_probe,omitempty"`
	ProbeErr   string           `json:"probe_error,omitempty"`
}

func runDevices(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	probe := fs.Bool("probe", false, "measure copy bandwidth and dispatch overhead on each Vulkan device, and the host's read bandwidth for the CPU backend")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("usage: kvc devices [--json] [--probe]")
	}
	list, listErr := device.List()
	var infos []vk.DeviceInfo
	for _, d := range list {
		if d.Vulkan != nil {
			infos = append(infos, *d.Vulkan)
		}
	}
	best, why := device.Default(infos)
	var reports []deviceReport
	for i, d := range list {
		r := deviceReport{Spec: d.Spec, Name: d.Name, Usable: d.Usable, Vulkan: d.Vulkan}
		if d.Vulkan == nil {
			r.Default = best < 0
			r.DefaultWhy = why
			if *probe {
				p := cpu.ProbeRead(0, 10)
				r.CPUProbe = &p
			}
			reports = append(reports, r)
			continue
		}
		r.Default = i == best
		r.Vendor = d.Vulkan.VendorName()
		r.Enabled = gpu.DefaultFeatures().And(d.Vulkan.Features).Names()
		for _, name := range shaders.Names() {
			r.Shaders++
			if miss, err := gpu.ModuleSupportOn(d.Vulkan, name); err != nil {
				r.NoShader = append(r.NoShader, name+": "+err.Error())
			} else if len(miss) > 0 {
				r.NoShader = append(r.NoShader, name+": needs "+strings.Join(miss, ", "))
			}
		}
		if *probe && d.Usable == "" {
			if p, err := probeDevice(i); err != nil {
				r.ProbeErr = err.Error()
			} else {
				r.Probe = &p
			}
		}
		reports = append(reports, r)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		v := struct {
			Devices     []deviceReport `json:"devices"`
			VulkanError string         `json:"vulkan_error,omitempty"`
		}{Devices: reports}
		if listErr != nil {
			v.VulkanError = listErr.Error()
		}
		return enc.Encode(v)
	}
	if listErr != nil {
		fmt.Fprintf(out, "no Vulkan: %v\n\n", listErr)
	}
	for _, r := range reports {
		printDevice(out, &r)
	}
	return nil
}

func probeDevice(index int) (gpu.ProbeResult, error) {
	b, err := gpu.Open(index, gpu.Options{})
	if err != nil {
		return gpu.ProbeResult{}, err
	}
	defer b.Close()
	return b.Probe()
}

func sizeStr(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0 || n >= 16<<30:
		return fmt.Sprintf("%.4g GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func memFlags(f uint32) string {
	var s []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{{vk.MemDeviceLocal, "device-local"}, {vk.MemHostVisible, "host-visible"}, {vk.MemHostCoherent, "host-coherent"}, {vk.MemHostCached, "host-cached"}} {
		if f&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

func printDevice(w io.Writer, r *deviceReport) {
	def := ""
	if r.Default {
		def = "  [default]"
		if r.DefaultWhy != "" {
			def = "  [default: " + r.DefaultWhy + "]"
		}
	}
	fmt.Fprintf(w, "%s  %s%s\n", r.Spec, r.Name, def)
	d := r.Vulkan
	if d == nil {
		if p := r.CPUProbe; p != nil {
			fmt.Fprintf(w, "  probe: read %.2f GB/s (%s buffer, %d threads, best of %d passes; median pass %.2f GB/s)\n", p.GBps, sizeStr(uint64(p.Bytes)), p.Threads, p.Passes, p.MedianGBps)
		}
		fmt.Fprintf(w, "  %d threads (one per physical core; --threads sets it), row kernels: %s (the plain-Go reference they are tested against is the oracle of every shader)\n\n", cpu.DefaultThreads(), cpu.Kernels())
		return
	}
	if r.Usable != "" {
		fmt.Fprintf(w, "  NOT USABLE: %s\n", r.Usable)
	}
	fmt.Fprintf(w, "  %s (vendor 0x%04x, device 0x%04x), type %s, Vulkan %s\n", r.Vendor, d.VendorID, d.DeviceID, d.Type, vk.VersionString(d.APIVersion))
	fmt.Fprintf(w, "  driver %s: %s (version 0x%08x)\n", d.DriverName, d.DriverInfo, d.DriverVersion)
	for i, h := range d.Heaps {
		kind := "host"
		if h.Flags&vk.HeapDeviceLocal != 0 {
			kind = "device-local"
		}
		var types []string
		for j, t := range d.MemoryTypes {
			if t.Heap == i {
				types = append(types, fmt.Sprintf("%d (%s)", j, memFlags(t.Flags)))
			}
		}
		fmt.Fprintf(w, "  heap %d: %s %s; types %s\n", i, sizeStr(h.Size), kind, strings.Join(types, ", "))
	}
	l := d.Limits
	fmt.Fprintf(w, "  maxStorageBufferRange %s, maxMemoryAllocationSize %s, maxBufferSize %s, minStorageBufferOffsetAlignment %d\n",
		sizeStr(l.MaxStorageBufferRange), sizeStr(l.MaxMemoryAllocationSize), sizeStr(l.MaxBufferSize), l.MinStorageBufferOffsetAlignment)
	fmt.Fprintf(w, "  compute: shared memory %s, %d invocations per workgroup, workgroup size %v, count %v\n",
		sizeStr(uint64(l.MaxComputeSharedMemorySize)), l.MaxComputeWorkGroupInvocations, l.MaxComputeWorkGroupSize, l.MaxComputeWorkGroupCount)
	fmt.Fprintf(w, "  push constants %d B, descriptor sets %d, storage buffers per stage %d\n",
		l.MaxPushConstantsSize, l.MaxBoundDescriptorSets, l.MaxPerStageDescriptorStorageBuffers)
	sg := d.Subgroup
	fmt.Fprintf(w, "  subgroup size %d (min %d, max %d), in compute: %v, ops: %s\n", sg.Size, sg.MinSize, sg.MaxSize, sg.InCompute, strings.Join(sg.OpNames(), " "))
	ts := "none on the compute queue"
	if l.TimestampValidBits > 0 {
		ts = fmt.Sprintf("period %g ns, %d valid bits", l.TimestampPeriod, l.TimestampValidBits)
	}
	fmt.Fprintf(w, "  timestamps: %s\n", ts)
	fmt.Fprintf(w, "  features kvc enables: %s\n", strings.Join(r.Enabled, " "))
	if miss := gpu.DefaultFeatures().Missing(d.Features); len(miss) > 0 {
		fmt.Fprintf(w, "  features missing: %s\n", strings.Join(miss, " "))
	}
	if d.Features.ShaderBufferFloat32AtomicAdd {
		fmt.Fprintf(w, "  also supported: shaderBufferFloat32AtomicAdd\n")
	}
	if len(r.NoShader) == 0 {
		fmt.Fprintf(w, "  shaders: all %d SPIR-V modules run here\n", r.Shaders)
	} else {
		fmt.Fprintf(w, "  shaders: %d of %d SPIR-V modules run here; not: %s\n", r.Shaders-len(r.NoShader), r.Shaders, strings.Join(r.NoShader, "; "))
	}
	if p := r.Probe; p != nil {
		fmt.Fprintf(w, "  probe: copy %.2f GB/s (read+write, %s buffer, %s); dispatch %.1f us alone, %.1f us each in a batch of 100\n",
			p.CopyGBps, sizeStr(uint64(p.CopyBytes)), p.CopyTimed, p.DispatchUs, p.BatchDispatchUs)
	}
	if r.ProbeErr != "" {
		fmt.Fprintf(w, "  probe failed: %s\n", r.ProbeErr)
	}
	fmt.Fprintln(w)
}
