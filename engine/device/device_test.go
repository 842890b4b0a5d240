package device

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"kvc/engine/gpu"
)

func TestSpecErrors(t *testing.T) {
	for _, spec := range []string{"gpu", "vulkan:", "vulkan:x", "vulkan:-1", "cuda:0"} {
		if _, err := Open(spec, Options{}, os.Stderr); err == nil {
			t.Errorf("Open(%q) succeeded", spec)
		} else if !strings.Contains(err.Error(), "kvc devices") {
			t.Errorf("Open(%q): %v (should point at kvc devices)", spec, err)
		}
	}
}

func TestOutOfRangeNamesDevices(t *testing.T) {
	list, err := List()
	if err != nil || len(list) < 2 {
		if os.Getenv("KVC_REQUIRE_VULKAN") == "1" {
			t.Fatalf("no Vulkan device: %v", err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
	_, err = Open("vulkan:99", Options{}, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "vulkan:0 (") {
		t.Errorf("Open(vulkan:99): %v, want an error naming vulkan:0", err)
	}
}

func TestListEndsWithCPU(t *testing.T) {
	list, _ := List()
	if len(list) == 0 || list[len(list)-1].Spec != "cpu" {
		t.Fatalf("List() = %+v, want the CPU backend last", list)
	}
}

// Without a Vulkan loader the default choice is the CPU backend, with one line saying what to install.
// The loader is process-wide, so this runs in a child process with KVC_VULKAN_LIB pointing nowhere.
func TestNoLoaderFallsBackToCPU(t *testing.T) {
	if os.Getenv("KVC_DEVICE_CHILD") == "1" {
		var warn bytes.Buffer
		_, err := Open("", Options{}, &warn)
		// The CPU backend may not implement every op yet; then Open says so, which is fine here.
		if err != nil && !strings.Contains(err.Error(), "does not implement") {
			t.Fatalf("Open: %v", err)
		}
		os.Stdout.WriteString("WARN<" + warn.String() + ">\n")
		return
	}
	for _, env := range [][]string{
		{"KVC_VULKAN_LIB=/nonexistent/libvulkan.so.1"},                                                          // no loader
		{"VK_DRIVER_FILES=/nonexistent/icd.json", "VK_ICD_FILENAMES=/nonexistent/icd.json", "KVC_VALIDATION=0"}, // a loader, no driver
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoLoaderFallsBackToCPU$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), "KVC_DEVICE_CHILD=1"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with %v: %v\n%s", env, err, out)
		}
		s := string(out)
		i, j := strings.Index(s, "WARN<"), strings.Index(s, ">\n")
		if i < 0 || j < i {
			t.Fatalf("child with %v: output lacks the warning:\n%s", env, s)
		}
		warn := s[i+5 : j]
		t.Logf("child with %v warned: %q", env, warn)
		if strings.Count(warn, "\n") != 1 || !strings.Contains(warn, "CPU backend") || !strings.Contains(warn, "install") {
			t.Errorf("warning %q: want one line naming the CPU backend and what to install", warn)
		}
	}
}

func TestOpenDefaultAndCPU(t *testing.T) {
	c, err := Open("cpu", Options{}, os.Stderr)
	if err != nil || c.Name() != "cpu" {
		t.Fatalf("Open(cpu) = %v, %v", c, err)
	}
	c.Close()
	var warn bytes.Buffer
	b, err := Open("", Options{}, &warn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if g, ok := b.(*gpu.Backend); ok {
		defer func() {
			for _, m := range g.ValidationMessages() {
				t.Error(m)
			}
		}()
		if warn.Len() != 0 {
			t.Errorf("a Vulkan backend with a warning: %q", warn.String())
		}
		if !strings.HasPrefix(b.Name(), "vulkan:") {
			t.Errorf("name %q", b.Name())
		}
	} else if os.Getenv("KVC_REQUIRE_VULKAN") == "1" {
		// With Vulkan, the CPU backend is the default only over CPU-type devices, and says so in one line.
		devs, err := gpu.Devices()
		if i, _ := Default(devs); err != nil || i >= 0 {
			t.Fatalf("KVC_REQUIRE_VULKAN=1 but the default backend is %s (%s)", b.Name(), warn.String())
		}
		if w := warn.String(); strings.Count(w, "\n") != 1 || !strings.Contains(w, "CPU-type") {
			t.Errorf("default CPU backend over CPU-type devices: warning %q, want one line saying why", w)
		}
	}
	// The backend works end to end: write, read back.
	buf, err := b.Alloc(12)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(buf, 4, []byte{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if err := b.Read(buf, 4, got); err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("read back %v, %v", got, err)
	}
}
