// present.c: see present.h.
#include "present.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcvk.h"

// VkXlibSurfaceCreateInfoKHR, declared here so that this package needs no X11 headers.
typedef struct {
	VkStructureType sType;
	const void *pNext;
	VkFlags flags;
	void *dpy;
	unsigned long window;
} xlib_surface_info;
typedef VkResult(VKAPI_PTR *create_xlib_fn)(VkInstance, const xlib_surface_info *, const VkAllocationCallbacks *,
                                            VkSurfaceKHR *);

#define KVC_PRESENT_FUNCS(X)                                                                                   \
	X(DestroyDevice) X(GetDeviceQueue) X(CreateSwapchainKHR) X(DestroySwapchainKHR) X(GetSwapchainImagesKHR)   \
	X(AcquireNextImageKHR) X(QueuePresentKHR) X(CreateSemaphore) X(DestroySemaphore) X(CreateFence)            \
	X(DestroyFence) X(WaitForFences) X(ResetFences) X(CreateCommandPool) X(DestroyCommandPool)                 \
	X(AllocateCommandBuffers) X(ResetCommandBuffer) X(BeginCommandBuffer) X(EndCommandBuffer)                  \
	X(CmdPipelineBarrier) X(CmdCopyBufferToImage) X(QueueSubmit) X(CreateBuffer) X(DestroyBuffer)              \
	X(GetBufferMemoryRequirements) X(AllocateMemory) X(FreeMemory) X(BindBufferMemory) X(MapMemory)           \
	X(UnmapMemory) X(DeviceWaitIdle)

#define KVC_MAX_IMAGES 16

struct kvc_present {
	VkInstance inst;
	PFN_vkDestroyInstance DestroyInstance;
	PFN_vkDestroyDebugUtilsMessengerEXT DestroyMessenger;
	VkDebugUtilsMessengerEXT messenger;
	PFN_vkDestroySurfaceKHR DestroySurfaceKHR;
	PFN_vkGetPhysicalDeviceSurfaceCapabilitiesKHR GetSurfaceCaps;
	PFN_vkGetPhysicalDeviceSurfaceFormatsKHR GetSurfaceFormats;
	VkPhysicalDevice phys;
	VkPhysicalDeviceMemoryProperties mem;
	VkSurfaceKHR surface;
	VkDevice dev;
	VkQueue queue;
	uint32_t family;
	VkSwapchainKHR swap;
	VkSurfaceFormatKHR format;
	VkExtent2D extent;
	uint32_t nimages;
	VkImage images[KVC_MAX_IMAGES];
	VkSemaphore rendered[KVC_MAX_IMAGES]; // one per image: a present may still wait on the previous one
	VkSemaphore acquired;
	VkFence fence;
	VkCommandPool pool;
	VkCommandBuffer cmd;
	VkBuffer staging;
	VkDeviceMemory staging_mem;
	void *mapped;
	VkDeviceSize staging_size;
	char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
#define KVC_DECL(n) PFN_vk##n n;
	KVC_PRESENT_FUNCS(KVC_DECL)
#undef KVC_DECL
};

static VkResult fail(char *err, int errlen, VkResult r, const char *what) {
	snprintf(err, errlen, "%s", what);
	return r;
}

static VkResult create_device(kvc_present *p, PFN_vkGetInstanceProcAddr gipa, char *err, int errlen) {
	PFN_vkEnumeratePhysicalDevices enum_phys = (PFN_vkEnumeratePhysicalDevices)gipa(p->inst, "vkEnumeratePhysicalDevices");
	PFN_vkGetPhysicalDeviceQueueFamilyProperties qprops =
	    (PFN_vkGetPhysicalDeviceQueueFamilyProperties)gipa(p->inst, "vkGetPhysicalDeviceQueueFamilyProperties");
	PFN_vkGetPhysicalDeviceSurfaceSupportKHR supports =
	    (PFN_vkGetPhysicalDeviceSurfaceSupportKHR)gipa(p->inst, "vkGetPhysicalDeviceSurfaceSupportKHR");
	PFN_vkGetPhysicalDeviceProperties props = (PFN_vkGetPhysicalDeviceProperties)gipa(p->inst, "vkGetPhysicalDeviceProperties");
	PFN_vkGetPhysicalDeviceMemoryProperties memprops =
	    (PFN_vkGetPhysicalDeviceMemoryProperties)gipa(p->inst, "vkGetPhysicalDeviceMemoryProperties");
	PFN_vkCreateDevice create = (PFN_vkCreateDevice)gipa(p->inst, "vkCreateDevice");
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)gipa(p->inst, "vkGetDeviceProcAddr");
	if (!enum_phys || !qprops || !supports || !props || !memprops || !create || !gdpa)
		return fail(err, errlen, VK_ERROR_INITIALIZATION_FAILED, "the instance lacks the surface functions");
	uint32_t n = 8;
	VkPhysicalDevice phys[8];
	VkResult r = enum_phys(p->inst, &n, phys);
	if (r < 0) return fail(err, errlen, r, "vkEnumeratePhysicalDevices");
	for (uint32_t i = 0; i < n && !p->phys; i++) {
		uint32_t nq = 16;
		VkQueueFamilyProperties q[16];
		qprops(phys[i], &nq, q);
		for (uint32_t f = 0; f < nq; f++) {
			VkBool32 ok = VK_FALSE;
			// Any graphics or compute queue also does transfers (the copy into the swapchain image).
			if (!(q[f].queueFlags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT))) continue;
			if (supports(phys[i], f, p->surface, &ok) == VK_SUCCESS && ok) {
				p->phys = phys[i];
				p->family = f;
				break;
			}
		}
	}
	if (!p->phys) return fail(err, errlen, VK_ERROR_INCOMPATIBLE_DRIVER, "no Vulkan device can present to this window");
	VkPhysicalDeviceProperties pp;
	props(p->phys, &pp);
	snprintf(p->name, sizeof p->name, "%s", pp.deviceName);
	memprops(p->phys, &p->mem);
	float prio = 1;
	VkDeviceQueueCreateInfo qi = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
	qi.queueFamilyIndex = p->family;
	qi.queueCount = 1;
	qi.pQueuePriorities = &prio;
	const char *exts[1] = {VK_KHR_SWAPCHAIN_EXTENSION_NAME};
	VkDeviceCreateInfo ci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &qi;
	ci.enabledExtensionCount = 1;
	ci.ppEnabledExtensionNames = exts;
	r = create(p->phys, &ci, NULL, &p->dev);
	if (r != VK_SUCCESS) return fail(err, errlen, r, "vkCreateDevice with VK_KHR_swapchain");
#define KVC_LOAD(n)                                                                                            \
	p->n = (PFN_vk##n)gdpa(p->dev, "vk" #n);                                                                   \
	if (!p->n) return fail(err, errlen, VK_ERROR_INITIALIZATION_FAILED, "device function vk" #n " missing");
	KVC_PRESENT_FUNCS(KVC_LOAD)
#undef KVC_LOAD
	p->GetDeviceQueue(p->dev, p->family, 0, &p->queue);
	return VK_SUCCESS;
}

VkResult kvc_present_create(void *dpy, uint64_t window, int validation, int id, kvc_present **out, char *err,
                            int errlen) {
	PFN_vkGetInstanceProcAddr gipa = kvc_instance_proc_addr();
	if (!gipa) return fail(err, errlen, VK_ERROR_INITIALIZATION_FAILED, "the Vulkan loader is not loaded");
	PFN_vkCreateInstance create_instance = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
	VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "kvc-view";
	app.pEngineName = "kvc";
	app.apiVersion = VK_API_VERSION_1_1;
	const char *exts[3] = {VK_KHR_SURFACE_EXTENSION_NAME, "VK_KHR_xlib_surface", VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
	const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
	VkDebugUtilsMessengerCreateInfoEXT msg;
	kvc_fill_messenger(&msg, id);
	VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ci.pApplicationInfo = &app;
	ci.enabledExtensionCount = 2;
	ci.ppEnabledExtensionNames = exts;
	if (validation) {
		ci.enabledLayerCount = 1;
		ci.ppEnabledLayerNames = layers;
		ci.enabledExtensionCount = 3;
		ci.pNext = &msg; // messages of vkCreateInstance and vkDestroyInstance themselves
	}
	kvc_present *p = calloc(1, sizeof *p);
	VkResult r = create_instance(&ci, NULL, &p->inst);
	if (r != VK_SUCCESS) {
		free(p);
		return fail(err, errlen, r, "vkCreateInstance with VK_KHR_surface and VK_KHR_xlib_surface");
	}
	p->DestroyInstance = (PFN_vkDestroyInstance)gipa(p->inst, "vkDestroyInstance");
	if (validation) {
		PFN_vkCreateDebugUtilsMessengerEXT cm =
		    (PFN_vkCreateDebugUtilsMessengerEXT)gipa(p->inst, "vkCreateDebugUtilsMessengerEXT");
		p->DestroyMessenger = (PFN_vkDestroyDebugUtilsMessengerEXT)gipa(p->inst, "vkDestroyDebugUtilsMessengerEXT");
		if (cm && p->DestroyMessenger && cm(p->inst, &msg, NULL, &p->messenger) != VK_SUCCESS) p->messenger = VK_NULL_HANDLE;
	}
	p->DestroySurfaceKHR = (PFN_vkDestroySurfaceKHR)gipa(p->inst, "vkDestroySurfaceKHR");
	p->GetSurfaceCaps = (PFN_vkGetPhysicalDeviceSurfaceCapabilitiesKHR)gipa(p->inst, "vkGetPhysicalDeviceSurfaceCapabilitiesKHR");
	p->GetSurfaceFormats = (PFN_vkGetPhysicalDeviceSurfaceFormatsKHR)gipa(p->inst, "vkGetPhysicalDeviceSurfaceFormatsKHR");
	create_xlib_fn create_xlib = (create_xlib_fn)gipa(p->inst, "vkCreateXlibSurfaceKHR");
	if (!p->DestroySurfaceKHR || !p->GetSurfaceCaps || !p->GetSurfaceFormats || !create_xlib) {
		kvc_present_destroy(p);
		return fail(err, errlen, VK_ERROR_EXTENSION_NOT_PRESENT, "the loader lacks the Xlib surface functions");
	}
	xlib_surface_info si = {(VkStructureType)1000004000 /* VK_STRUCTURE_TYPE_XLIB_SURFACE_CREATE_INFO_KHR */};
	si.dpy = dpy;
	si.window = (unsigned long)window;
	r = create_xlib(p->inst, &si, NULL, &p->surface);
	if (r != VK_SUCCESS) {
		kvc_present_destroy(p);
		return fail(err, errlen, r, "vkCreateXlibSurfaceKHR");
	}
	if ((r = create_device(p, gipa, err, errlen)) != VK_SUCCESS) {
		kvc_present_destroy(p);
		return r;
	}
	VkCommandPoolCreateInfo pi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
	pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	pi.queueFamilyIndex = p->family;
	VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
	ai.commandBufferCount = 1;
	ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	VkSemaphoreCreateInfo sci = {VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
	VkFenceCreateInfo fi = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	if ((r = p->CreateCommandPool(p->dev, &pi, NULL, &p->pool)) != VK_SUCCESS ||
	    (ai.commandPool = p->pool, r = p->AllocateCommandBuffers(p->dev, &ai, &p->cmd)) != VK_SUCCESS ||
	    (r = p->CreateSemaphore(p->dev, &sci, NULL, &p->acquired)) != VK_SUCCESS ||
	    (r = p->CreateFence(p->dev, &fi, NULL, &p->fence)) != VK_SUCCESS) {
		kvc_present_destroy(p);
		return fail(err, errlen, r, "command pool, semaphore or fence");
	}
	*out = p;
	return VK_SUCCESS;
}

static void destroy_swapchain_images(kvc_present *p) {
	for (uint32_t i = 0; i < p->nimages; i++)
		if (p->rendered[i]) p->DestroySemaphore(p->dev, p->rendered[i], NULL), p->rendered[i] = VK_NULL_HANDLE;
	p->nimages = 0;
}

static VkResult ensure_staging(kvc_present *p, VkDeviceSize size) {
	if (size <= p->staging_size) return VK_SUCCESS;
	if (p->staging) {
		p->UnmapMemory(p->dev, p->staging_mem);
		p->DestroyBuffer(p->dev, p->staging, NULL);
		p->FreeMemory(p->dev, p->staging_mem, NULL);
		p->staging = VK_NULL_HANDLE, p->staging_mem = VK_NULL_HANDLE, p->staging_size = 0;
	}
	VkBufferCreateInfo bi = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bi.size = size;
	bi.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT;
	VkResult r = p->CreateBuffer(p->dev, &bi, NULL, &p->staging);
	if (r != VK_SUCCESS) return r;
	VkMemoryRequirements req;
	p->GetBufferMemoryRequirements(p->dev, p->staging, &req);
	const VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
	uint32_t type = UINT32_MAX;
	for (uint32_t i = 0; i < p->mem.memoryTypeCount && type == UINT32_MAX; i++)
		if ((req.memoryTypeBits & (1u << i)) && (p->mem.memoryTypes[i].propertyFlags & want) == want) type = i;
	if (type == UINT32_MAX) return VK_ERROR_OUT_OF_HOST_MEMORY;
	VkMemoryAllocateInfo mi = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	mi.allocationSize = req.size;
	mi.memoryTypeIndex = type;
	if ((r = p->AllocateMemory(p->dev, &mi, NULL, &p->staging_mem)) != VK_SUCCESS) return r;
	if ((r = p->BindBufferMemory(p->dev, p->staging, p->staging_mem, 0)) != VK_SUCCESS) return r;
	if ((r = p->MapMemory(p->dev, p->staging_mem, 0, VK_WHOLE_SIZE, 0, &p->mapped)) != VK_SUCCESS) return r;
	p->staging_size = size;
	return VK_SUCCESS;
}

static VkResult create_swapchain(kvc_present *p, uint32_t fbw, uint32_t fbh) {
	VkSurfaceCapabilitiesKHR caps;
	VkResult r = p->GetSurfaceCaps(p->phys, p->surface, &caps);
	if (r != VK_SUCCESS) return r;
	if (!(caps.supportedUsageFlags & VK_IMAGE_USAGE_TRANSFER_DST_BIT)) return VK_ERROR_FORMAT_NOT_SUPPORTED;
	VkExtent2D ext = caps.currentExtent;
	if (ext.width == UINT32_MAX) {
		ext.width = fbw < caps.minImageExtent.width ? caps.minImageExtent.width : fbw;
		ext.height = fbh < caps.minImageExtent.height ? caps.minImageExtent.height : fbh;
		if (ext.width > caps.maxImageExtent.width) ext.width = caps.maxImageExtent.width;
		if (ext.height > caps.maxImageExtent.height) ext.height = caps.maxImageExtent.height;
	}
	if (ext.width == 0 || ext.height == 0) { // minimized
		p->extent = ext;
		return VK_SUCCESS;
	}
	uint32_t nf = 32;
	VkSurfaceFormatKHR formats[32];
	r = p->GetSurfaceFormats(p->phys, p->surface, &nf, formats);
	if (r < 0 || nf == 0) return r < 0 ? r : VK_ERROR_FORMAT_NOT_SUPPORTED;
	// Plain 8-bit RGBA or BGRA: the picture's bytes are copied as they are.
	int found = 0;
	for (uint32_t i = 0; i < nf && !found; i++) {
		VkFormat f = formats[i].format;
		if (f == VK_FORMAT_B8G8R8A8_UNORM || f == VK_FORMAT_R8G8B8A8_UNORM || f == VK_FORMAT_B8G8R8A8_SRGB ||
		    f == VK_FORMAT_R8G8B8A8_SRGB)
			p->format = formats[i], found = 1;
	}
	if (!found) return VK_ERROR_FORMAT_NOT_SUPPORTED;
	uint32_t count = caps.minImageCount < 2 ? 2 : caps.minImageCount;
	if (caps.maxImageCount && count > caps.maxImageCount) count = caps.maxImageCount;
	VkSwapchainCreateInfoKHR ci = {VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR};
	ci.surface = p->surface;
	ci.minImageCount = count;
	ci.imageFormat = p->format.format;
	ci.imageColorSpace = p->format.colorSpace;
	ci.imageExtent = ext;
	ci.imageArrayLayers = 1;
	ci.imageUsage = VK_IMAGE_USAGE_TRANSFER_DST_BIT;
	ci.imageSharingMode = VK_SHARING_MODE_EXCLUSIVE;
	ci.preTransform = caps.currentTransform;
	ci.compositeAlpha = VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR;
	if (!(caps.supportedCompositeAlpha & ci.compositeAlpha))
		for (uint32_t b = 1; b <= VK_COMPOSITE_ALPHA_INHERIT_BIT_KHR; b <<= 1)
			if (caps.supportedCompositeAlpha & b) {
				ci.compositeAlpha = (VkCompositeAlphaFlagBitsKHR)b;
				break;
			}
	ci.presentMode = VK_PRESENT_MODE_FIFO_KHR; // always supported
	ci.clipped = VK_TRUE;
	ci.oldSwapchain = p->swap;
	VkSwapchainKHR swap;
	p->DeviceWaitIdle(p->dev);
	r = p->CreateSwapchainKHR(p->dev, &ci, NULL, &swap);
	if (p->swap) p->DestroySwapchainKHR(p->dev, p->swap, NULL);
	p->swap = VK_NULL_HANDLE;
	destroy_swapchain_images(p);
	if (r != VK_SUCCESS) return r;
	p->swap = swap;
	uint32_t n = KVC_MAX_IMAGES;
	r = p->GetSwapchainImagesKHR(p->dev, swap, &n, p->images);
	if (r < 0) return r;
	VkSemaphoreCreateInfo sci = {VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
	for (uint32_t i = 0; i < n; i++) {
		if ((r = p->CreateSemaphore(p->dev, &sci, NULL, &p->rendered[i])) != VK_SUCCESS) return r;
		p->nimages = i + 1;
	}
	p->extent = ext;
	return ensure_staging(p, (VkDeviceSize)ext.width * ext.height * 4);
}

VkResult kvc_present_extent(kvc_present *p, uint32_t fbw, uint32_t fbh, uint32_t *w, uint32_t *h, int *bgra) {
	if (!p->swap || p->extent.width != fbw || p->extent.height != fbh) {
		VkResult r = create_swapchain(p, fbw, fbh);
		if (r != VK_SUCCESS) return r;
	}
	*w = p->swap ? p->extent.width : 0;
	*h = p->swap ? p->extent.height : 0;
	*bgra = p->format.format == VK_FORMAT_B8G8R8A8_UNORM || p->format.format == VK_FORMAT_B8G8R8A8_SRGB;
	return VK_SUCCESS;
}

static void image_barrier(kvc_present *p, VkImage img, VkImageLayout from, VkImageLayout to, VkAccessFlags src,
                          VkAccessFlags dst, VkPipelineStageFlags sstage, VkPipelineStageFlags dstage) {
	VkImageMemoryBarrier b = {VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER};
	b.srcAccessMask = src;
	b.dstAccessMask = dst;
	b.oldLayout = from;
	b.newLayout = to;
	b.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	b.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	b.image = img;
	b.subresourceRange.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	b.subresourceRange.levelCount = 1;
	b.subresourceRange.layerCount = 1;
	p->CmdPipelineBarrier(p->cmd, sstage, dstage, 0, 0, NULL, 0, NULL, 1, &b);
}

VkResult kvc_present_frame(kvc_present *p, const void *pixels, uint64_t bytes) {
	if (!p->swap) return VK_ERROR_OUT_OF_DATE_KHR;
	if (bytes != (uint64_t)p->extent.width * p->extent.height * 4) return VK_ERROR_OUT_OF_DATE_KHR;
	uint32_t idx;
	VkResult r = p->AcquireNextImageKHR(p->dev, p->swap, 1000000000ull, p->acquired, VK_NULL_HANDLE, &idx);
	if (r == VK_ERROR_OUT_OF_DATE_KHR) p->extent.width = 0; // recreate at the next kvc_present_extent
	if (r != VK_SUCCESS && r != VK_SUBOPTIMAL_KHR) return r;
	memcpy(p->mapped, pixels, bytes);
	p->ResetCommandBuffer(p->cmd, 0);
	VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
	p->BeginCommandBuffer(p->cmd, &bi);
	VkImage img = p->images[idx];
	image_barrier(p, img, VK_IMAGE_LAYOUT_UNDEFINED, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 0,
	              VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT);
	VkBufferImageCopy c = {0};
	c.imageSubresource.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	c.imageSubresource.layerCount = 1;
	c.imageExtent.width = p->extent.width;
	c.imageExtent.height = p->extent.height;
	c.imageExtent.depth = 1;
	p->CmdCopyBufferToImage(p->cmd, p->staging, img, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &c);
	image_barrier(p, img, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, VK_IMAGE_LAYOUT_PRESENT_SRC_KHR,
	              VK_ACCESS_TRANSFER_WRITE_BIT, 0, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT);
	p->EndCommandBuffer(p->cmd);
	VkPipelineStageFlags wait = VK_PIPELINE_STAGE_TRANSFER_BIT;
	VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
	si.waitSemaphoreCount = 1;
	si.pWaitSemaphores = &p->acquired;
	si.pWaitDstStageMask = &wait;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &p->cmd;
	si.signalSemaphoreCount = 1;
	si.pSignalSemaphores = &p->rendered[idx];
	p->ResetFences(p->dev, 1, &p->fence);
	if ((r = p->QueueSubmit(p->queue, 1, &si, p->fence)) != VK_SUCCESS) return r;
	// The staging buffer and the acquire semaphore are reused next frame: wait for this copy.
	if ((r = p->WaitForFences(p->dev, 1, &p->fence, VK_TRUE, 5000000000ull)) != VK_SUCCESS) return r;
	VkPresentInfoKHR pi = {VK_STRUCTURE_TYPE_PRESENT_INFO_KHR};
	pi.waitSemaphoreCount = 1;
	pi.pWaitSemaphores = &p->rendered[idx];
	pi.swapchainCount = 1;
	pi.pSwapchains = &p->swap;
	pi.pImageIndices = &idx;
	r = p->QueuePresentKHR(p->queue, &pi);
	if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) p->extent.width = 0;
	return r == VK_SUBOPTIMAL_KHR ? VK_SUCCESS : r;
}

const char *kvc_present_device_name(kvc_present *p) { return p->name; }

void kvc_present_destroy(kvc_present *p) {
	if (!p) return;
	if (p->dev && p->DestroyDevice) {
		if (p->DeviceWaitIdle) p->DeviceWaitIdle(p->dev);
		if (p->staging) {
			p->UnmapMemory(p->dev, p->staging_mem);
			p->DestroyBuffer(p->dev, p->staging, NULL);
			p->FreeMemory(p->dev, p->staging_mem, NULL);
		}
		destroy_swapchain_images(p);
		if (p->swap) p->DestroySwapchainKHR(p->dev, p->swap, NULL);
		if (p->acquired) p->DestroySemaphore(p->dev, p->acquired, NULL);
		if (p->fence) p->DestroyFence(p->dev, p->fence, NULL);
		if (p->pool) p->DestroyCommandPool(p->dev, p->pool, NULL);
		p->DestroyDevice(p->dev, NULL);
	}
	if (p->surface) p->DestroySurfaceKHR(p->inst, p->surface, NULL);
	if (p->messenger) p->DestroyMessenger(p->inst, p->messenger, NULL);
	if (p->inst) p->DestroyInstance(p->inst, NULL);
	free(p);
}
