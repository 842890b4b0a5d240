// present.h: window presentation for kvc-view, kept apart from the compute binding: its own instance (with
// the surface extensions) and device (with a swapchain) copy a CPU-drawn picture into an X11 window.
#ifndef KVC_PRESENT_H
#define KVC_PRESENT_H

#include <stdint.h>
#include <vulkan/vulkan.h>

typedef struct kvc_present kvc_present;

// kvc_present_create: instance (with the validation layer and a messenger recording for message id when
// validation is set), Xlib surface for (dpy, window), and the first device and queue family that can
// present to it.
VkResult kvc_present_create(void *dpy, uint64_t window, int validation, int id, kvc_present **out, char *err,
                            int errlen);
// kvc_present_extent makes the swapchain match the window's framebuffer (fbw x fbh), recreating it when
// needed, and returns its extent and whether its bytes are B, G, R, A. *w = 0: nothing to draw (minimized).
VkResult kvc_present_extent(kvc_present *p, uint32_t fbw, uint32_t fbh, uint32_t *w, uint32_t *h, int *bgra);
// kvc_present_frame copies pixels (the extent's w x h, 4 bytes each, in the swapchain's byte order) to the
// next swapchain image and presents it; VK_ERROR_OUT_OF_DATE_KHR asks for kvc_present_extent again.
VkResult kvc_present_frame(kvc_present *p, const void *pixels, uint64_t bytes);
const char *kvc_present_device_name(kvc_present *p);
void kvc_present_destroy(kvc_present *p);

#endif
