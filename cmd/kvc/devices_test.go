package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestDevicesListsCPUAndVulkan(t *testing.T) {
	var out bytes.Buffer
	if err := runDevices(nil, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "cpu  Go CPU backend") {
		t.Errorf("output lacks the CPU backend:\n%s", s)
	}
	if os.Getenv("KVC_REQUIRE_VULKAN") == "1" && !strings.Contains(s, "vulkan:0") {
		t.Errorf("KVC_REQUIRE_VULKAN=1 but no Vulkan device listed:\n%s", s)
	}
	if strings.Contains(s, "vulkan:0") && !strings.Contains(s, "maxStorageBufferRange") {
		t.Errorf("Vulkan device without limits:\n%s", s)
	}
}

func TestDevicesJSON(t *testing.T) {
	var out bytes.Buffer
	if err := runDevices([]string{"--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Devices []struct {
			Spec    string
			Default bool
			Vulkan  *struct{ Name string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out.String())
	}
	defaults := 0
	for _, d := range v.Devices {
		if d.Default {
			defaults++
		}
	}
	if len(v.Devices) == 0 || v.Devices[len(v.Devices)-1].Spec != "cpu" || defaults != 1 {
		t.Errorf("devices %+v: want the CPU last and exactly one default", v.Devices)
	}
}

func TestDevicesRejectsArguments(t *testing.T) {
	if err := runDevices([]string{"extra"}, &bytes.Buffer{}); err == nil {
		t.Error("an extra argument was accepted")
	}
}
