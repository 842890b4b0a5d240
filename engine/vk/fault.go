package vk

/*
#include "kvcvk.h"
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Fault injection for testing how kvc survives a failing device. KVC_FAULT=alloc:N, submit:N or lost:N makes
// the N-th (1-based, counted over the whole process) vkAllocateMemory, vkQueueSubmit or vkWaitForFences fail
// the way a driver would:
//   - alloc:N  vkAllocateMemory returns VK_ERROR_OUT_OF_DEVICE_MEMORY (nothing is allocated);
//   - submit:N vkQueueSubmit returns VK_ERROR_OUT_OF_DEVICE_MEMORY (the work is not submitted);
//   - lost:N   the work runs, then vkWaitForFences returns VK_ERROR_DEVICE_LOST, and from then on every
//     submission and fence wait does too, as on a lost device.
//
// The variable is read once, at start-up; unset, each hooked call pays one load of a package boolean.
// The hooks sit right at the calls into the driver so that they survive any reshaping of the layers above.
const faultEnv = "KVC_FAULT"

type faultKind int

const (
	faultNone faultKind = iota
	faultAlloc
	faultSubmit
	faultLost
)

var (
	faultOn    bool // KVC_FAULT is set and valid: the only thing the hooked calls read when it is not
	faultErr   error
	faultWhich faultKind
	faultAt    int64
	faultCount [faultLost + 1]atomic.Int64
	deviceLost atomic.Bool
)

func init() {
	faultWhich, faultAt, faultErr = parseFault(os.Getenv(faultEnv))
	faultOn = faultWhich != faultNone
}

// parseFault reads a KVC_FAULT value; the empty string means no fault.
func parseFault(s string) (faultKind, int64, error) {
	if s == "" {
		return faultNone, 0, nil
	}
	kinds := map[string]faultKind{"alloc": faultAlloc, "submit": faultSubmit, "lost": faultLost}
	name, num, ok := strings.Cut(s, ":")
	k, known := kinds[name]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || !known || err != nil || n < 1 {
		return faultNone, 0, fmt.Errorf("%s=%q: want alloc:N, submit:N or lost:N with N >= 1", faultEnv, s)
	}
	return k, n, nil
}

// faultCheck reports whether an injected fault is configured badly (NewInstance refuses to start then).
func faultCheck() error { return faultErr }

// fires counts one call of kind k and reports whether it is the one to fail.
func fires(k faultKind) bool {
	return faultWhich == k && faultCount[k].Add(1) == faultAt
}

// faultAllocResult is the injected result of a vkAllocateMemory call, or VK_SUCCESS to make the real call.
func faultAllocResult() C.VkResult {
	if faultOn && fires(faultAlloc) {
		return C.VK_ERROR_OUT_OF_DEVICE_MEMORY
	}
	return C.VK_SUCCESS
}

// faultSubmitResult is the injected result of a vkQueueSubmit call, or VK_SUCCESS to make the real call.
func faultSubmitResult() C.VkResult {
	if !faultOn {
		return C.VK_SUCCESS
	}
	if deviceLost.Load() {
		return C.VK_ERROR_DEVICE_LOST
	}
	if fires(faultSubmit) {
		return C.VK_ERROR_OUT_OF_DEVICE_MEMORY
	}
	return C.VK_SUCCESS
}

// faultWaitResult turns the real result r of a vkWaitForFences call into the injected one.
func faultWaitResult(r C.VkResult) C.VkResult {
	if !faultOn {
		return r
	}
	if deviceLost.Load() || fires(faultLost) {
		deviceLost.Store(true)
		return C.VK_ERROR_DEVICE_LOST
	}
	return r
}

// DeviceLost reports whether this process's device is lost (only an injected loss is tracked).
func DeviceLost() bool { return deviceLost.Load() }
