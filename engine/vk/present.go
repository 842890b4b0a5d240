package vk

/*
#include <stdlib.h>
#include "kvcvk.h"
#include "present.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Presenter shows CPU-drawn pictures in an X11 window through a Vulkan swapchain: each frame is copied into
// a host-visible buffer and from there into the next swapchain image (vkCmdCopyBufferToImage), then
// presented. It has its own instance (with VK_KHR_surface and VK_KHR_xlib_surface) and device (with
// VK_KHR_swapchain), apart from the compute devices, so kvc itself never needs a window system.
type Presenter struct {
	c    *C.kvc_present
	id   int // validation messages' key
	buf  []byte
	Name string // the presenting device
}

// NewXlibPresenter presents to window on the X11 display dpy (an Xlib Display*), under the validation layer
// when validation is set (see Messages).
func NewXlibPresenter(dpy unsafe.Pointer, window uint64, validation bool) (*Presenter, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	if validation {
		c := C.CString(ValidationLayer)
		ok := C.kvc_has_layer(c) != 0
		C.free(unsafe.Pointer(c))
		if !ok {
			return nil, fmt.Errorf("vulkan: validation requested (KVC_VALIDATION=1) but %s is not installed: install package vulkan-validationlayers", ValidationLayer)
		}
	}
	msgMu.Lock()
	id := nextID
	nextID++
	msgMu.Unlock()
	var errBuf [256]C.char
	var p *C.kvc_present
	r := C.kvc_present_create(dpy, C.uint64_t(window), boolInt(validation), C.int(id), &p, &errBuf[0], C.int(len(errBuf)))
	if r != C.VK_SUCCESS {
		return nil, fmt.Errorf("vulkan window presentation: %s (%s)", C.GoString(&errBuf[0]), resultName(int32(r)))
	}
	return &Presenter{c: p, id: id, Name: C.GoString(C.kvc_present_device_name(p))}, nil
}

// Messages returns the validation warnings and errors recorded for this presenter so far.
func (p *Presenter) Messages() []string {
	msgMu.Lock()
	defer msgMu.Unlock()
	return append([]string(nil), msgs[p.id]...)
}

// Frame returns a buffer for the next frame sized to the window's framebuffer (fbW x fbH; the swapchain is
// recreated when the size changed), its width and height, and whether its bytes are B, G, R, A rather
// than R, G, B, A. A zero width means there is nothing to draw (a minimized window).
func (p *Presenter) Frame(fbW, fbH int) (pix []byte, w, h int, bgra bool, err error) {
	var cw, ch C.uint32_t
	var cb C.int
	if r := C.kvc_present_extent(p.c, C.uint32_t(fbW), C.uint32_t(fbH), &cw, &ch, &cb); r != C.VK_SUCCESS {
		return nil, 0, 0, false, &Error{Op: "swapchain", Result: int32(r)}
	}
	w, h = int(cw), int(ch)
	if n := w * h * 4; cap(p.buf) < n {
		p.buf = make([]byte, n)
	} else {
		p.buf = p.buf[:n]
	}
	return p.buf, w, h, cb != 0, nil
}

// Present shows the buffer Frame returned, filled. An out-of-date swapchain is not an error: the next
// Frame recreates it.
func (p *Presenter) Present() error {
	if len(p.buf) == 0 {
		return nil
	}
	r := C.kvc_present_frame(p.c, unsafe.Pointer(&p.buf[0]), C.uint64_t(len(p.buf)))
	if r == C.VK_ERROR_OUT_OF_DATE_KHR || r == C.VK_TIMEOUT || r == C.VK_NOT_READY {
		return nil
	}
	return check("present", r)
}

// Close destroys the swapchain, device, surface and instance.
func (p *Presenter) Close() {
	if p.c != nil {
		C.kvc_present_destroy(p.c)
		p.c = nil
	}
}
