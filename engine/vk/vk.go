// Package vk is kvc's own thin cgo binding to the ~50 Vulkan functions a compute engine needs.
//
// It compiles against the system <vulkan/vulkan.h> with VK_NO_PROTOTYPES and never links libvulkan: Load
// dlopens the loader (libvulkan.so.1, or $KVC_VULKAN_LIB) at run time, so a binary built here starts, and can
// explain itself or fall back to the CPU, on a machine without Vulkan. Every struct the driver reads is built
// in C memory by kvcvk.c and lives for the whole call; handles are plain 64-bit integers on the Go side; no Go
// pointer is ever stored in C memory.
package vk

/*
#cgo CFLAGS: -DVK_NO_PROTOTYPES -O2
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "kvcvk.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"
)

// DefaultLibrary is the loader's soname; KVC_VULKAN_LIB overrides it (tests point it at a missing file).
func DefaultLibrary() string {
	if p := os.Getenv("KVC_VULKAN_LIB"); p != "" {
		return p
	}
	if runtime.GOOS == "darwin" {
		return "libvulkan.1.dylib"
	}
	return "libvulkan.so.1"
}

var (
	loadMu  sync.Mutex
	loaded  bool
	loadErr error
)

// Load opens the Vulkan loader once per process. The error says what to install.
func Load() error {
	loadMu.Lock()
	defer loadMu.Unlock()
	if loaded {
		return nil
	}
	if loadErr != nil {
		return loadErr
	}
	if err := loadLibrary(DefaultLibrary(), true); err != nil {
		loadErr = err
		return err
	}
	loaded = true
	return nil
}

func loadLibrary(path string, install bool) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var buf [512]C.char
	if rc := C.kvc_load(cpath, boolInt(install), &buf[0], C.int(len(buf))); rc != 0 {
		detail := C.GoString(&buf[0])
		if rc == 1 {
			return fmt.Errorf("Vulkan loader %s not found: install libvulkan1 (and a driver, e.g. mesa-vulkan-drivers) (%s)", path, detail)
		}
		return fmt.Errorf("Vulkan loader %s unusable: %s", path, detail)
	}
	return nil
}

// Error is a failed Vulkan call.
type Error struct {
	Op     string
	Result int32
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Op, resultName(e.Result)) }

// OutOfMemory reports whether the call failed for lack of host or device memory.
func (e *Error) OutOfMemory() bool {
	return e.Result == C.VK_ERROR_OUT_OF_DEVICE_MEMORY || e.Result == C.VK_ERROR_OUT_OF_HOST_MEMORY
}

func check(op string, r C.VkResult) error {
	if r == C.VK_SUCCESS {
		return nil
	}
	return &Error{Op: op, Result: int32(r)}
}

func resultName(r int32) string {
	switch r {
	case C.VK_SUCCESS:
		return "VK_SUCCESS"
	case C.VK_NOT_READY:
		return "VK_NOT_READY"
	case C.VK_TIMEOUT:
		return "VK_TIMEOUT"
	case C.VK_INCOMPLETE:
		return "VK_INCOMPLETE"
	case C.VK_ERROR_OUT_OF_HOST_MEMORY:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case C.VK_ERROR_OUT_OF_DEVICE_MEMORY:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case C.VK_ERROR_INITIALIZATION_FAILED:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case C.VK_ERROR_DEVICE_LOST:
		return "VK_ERROR_DEVICE_LOST"
	case C.VK_ERROR_MEMORY_MAP_FAILED:
		return "VK_ERROR_MEMORY_MAP_FAILED"
	case C.VK_ERROR_LAYER_NOT_PRESENT:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case C.VK_ERROR_EXTENSION_NOT_PRESENT:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case C.VK_ERROR_FEATURE_NOT_PRESENT:
		return "VK_ERROR_FEATURE_NOT_PRESENT"
	case C.VK_ERROR_INCOMPATIBLE_DRIVER:
		return "VK_ERROR_INCOMPATIBLE_DRIVER"
	case C.VK_ERROR_TOO_MANY_OBJECTS:
		return "VK_ERROR_TOO_MANY_OBJECTS"
	case C.VK_ERROR_FRAGMENTED_POOL:
		return "VK_ERROR_FRAGMENTED_POOL"
	case C.VK_ERROR_OUT_OF_POOL_MEMORY:
		return "VK_ERROR_OUT_OF_POOL_MEMORY"
	case C.VK_ERROR_INVALID_SHADER_NV:
		return "VK_ERROR_INVALID_SHADER_NV"
	case C.VK_ERROR_UNKNOWN:
		return "VK_ERROR_UNKNOWN"
	}
	return fmt.Sprintf("VkResult(%d)", r)
}

// Debug messages from VK_EXT_debug_utils, per instance id. The C callback passes the id (an integer, not a
// Go pointer) as user data and the message is copied before the callback returns.
var (
	msgMu   sync.Mutex
	msgs    = map[int][]string{}
	allMsgs []string
	nextID  = 1
)

//export kvcGoDebugMessage
func kvcGoDebugMessage(id C.int, severity C.int, types C.int, msg *C.char) {
	s := C.GoString(msg)
	// Validation messages (and any error) count; the loader's general warnings (e.g. a stray ICD file) do not.
	if types&C.VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT == 0 && severity&C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT == 0 {
		return
	}
	kind := "warning"
	if severity&C.VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT != 0 {
		kind = "error"
	}
	line := "vulkan validation " + kind + ": " + s
	msgMu.Lock()
	msgs[int(id)] = append(msgs[int(id)], line)
	allMsgs = append(allMsgs, line)
	msgMu.Unlock()
}

// ValidationMessages returns every validation warning and error recorded so far by any instance.
func ValidationMessages() []string {
	msgMu.Lock()
	defer msgMu.Unlock()
	return append([]string(nil), allMsgs...)
}
