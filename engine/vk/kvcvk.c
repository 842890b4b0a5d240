// kvcvk.c: see kvcvk.h.
#include "kvcvk.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

#define H(T, x) ((T)(uintptr_t)(x))
#define U(x) ((uint64_t)(uintptr_t)(x))

static void *lib;
static PFN_vkGetInstanceProcAddr gipa;
static PFN_vkCreateInstance create_instance;
static PFN_vkEnumerateInstanceExtensionProperties enum_inst_ext;
static PFN_vkEnumerateInstanceLayerProperties enum_inst_layers;
static PFN_vkEnumerateInstanceVersion enum_inst_version;

int kvc_load(const char *path, int install, char *err, int errlen) {
	if (install && lib) return 0;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return 1;
	}
	PFN_vkGetInstanceProcAddr g = (PFN_vkGetInstanceProcAddr)dlsym(h, "vkGetInstanceProcAddr");
	if (!g) {
		snprintf(err, errlen, "%s has no vkGetInstanceProcAddr", path);
		dlclose(h);
		return 2;
	}
	PFN_vkCreateInstance ci = (PFN_vkCreateInstance)g(NULL, "vkCreateInstance");
	PFN_vkEnumerateInstanceExtensionProperties ee =
	    (PFN_vkEnumerateInstanceExtensionProperties)g(NULL, "vkEnumerateInstanceExtensionProperties");
	PFN_vkEnumerateInstanceLayerProperties el =
	    (PFN_vkEnumerateInstanceLayerProperties)g(NULL, "vkEnumerateInstanceLayerProperties");
	if (!ci || !ee || !el) {
		snprintf(err, errlen, "%s lacks the global Vulkan functions", path);
		dlclose(h);
		return 3;
	}
	if (!install) {
		dlclose(h);
		return 0;
	}
	create_instance = ci;
	enum_inst_ext = ee;
	enum_inst_layers = el;
	enum_inst_version = (PFN_vkEnumerateInstanceVersion)g(NULL, "vkEnumerateInstanceVersion");
	gipa = g;
	lib = h;
	return 0;
}

PFN_vkGetInstanceProcAddr kvc_instance_proc_addr(void) { return gipa; }

uint32_t kvc_instance_version(void) {
	uint32_t v = VK_API_VERSION_1_0;
	if (enum_inst_version) enum_inst_version(&v);
	return v;
}

int kvc_has_layer(const char *name) {
	uint32_t n = 0;
	if (enum_inst_layers(&n, NULL) != VK_SUCCESS || n == 0) return 0;
	VkLayerProperties *p = calloc(n, sizeof *p);
	int found = 0;
	if (enum_inst_layers(&n, p) >= 0)
		for (uint32_t i = 0; i < n; i++)
			if (strcmp(p[i].layerName, name) == 0) found = 1;
	free(p);
	return found;
}

int kvc_has_instance_ext(const char *layer, const char *name) {
	uint32_t n = 0;
	if (enum_inst_ext(layer, &n, NULL) != VK_SUCCESS || n == 0) return 0;
	VkExtensionProperties *p = calloc(n, sizeof *p);
	int found = 0;
	if (enum_inst_ext(layer, &n, p) >= 0)
		for (uint32_t i = 0; i < n; i++)
			if (strcmp(p[i].extensionName, name) == 0) found = 1;
	free(p);
	return found;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                VkDebugUtilsMessageTypeFlagsEXT types,
                                                const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
	kvcGoDebugMessage((int)(intptr_t)user, (int)sev, (int)types,
	                  (char *)(data && data->pMessage ? data->pMessage : "(no message)"));
	return VK_FALSE;
}

static void fill_messenger_info(VkDebugUtilsMessengerCreateInfoEXT *m, int id) {
	memset(m, 0, sizeof *m);
	m->sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
	m->messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
	m->messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
	                 VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
	m->pfnUserCallback = debug_cb;
	m->pUserData = (void *)(intptr_t)id;
}

void kvc_fill_messenger(VkDebugUtilsMessengerCreateInfoEXT *m, int id) { fill_messenger_info(m, id); }

VkResult kvc_create_instance(uint32_t api, int validation, int sync_validation, int debug_utils, int portability, int id,
                             kvc_inst **out) {
	VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "kvc";
	app.pEngineName = "kvc";
	app.apiVersion = api;
	const char *exts[4];
	uint32_t next = 0;
	if (debug_utils) exts[next++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
	if (portability) exts[next++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
	if (sync_validation) exts[next++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
	// Synchronization validation checks the barriers kvc inserts from its own hazard tracking.
	VkValidationFeatureEnableEXT enables[1] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
	VkValidationFeaturesEXT vf = {VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
	vf.enabledValidationFeatureCount = 1;
	vf.pEnabledValidationFeatures = enables;
	const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
	VkDebugUtilsMessengerCreateInfoEXT msg;
	fill_messenger_info(&msg, id);
	VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ci.pApplicationInfo = &app;
	ci.enabledExtensionCount = next;
	ci.ppEnabledExtensionNames = exts;
	if (validation) {
		ci.enabledLayerCount = 1;
		ci.ppEnabledLayerNames = layers;
	}
	if (portability) ci.flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
	const void **tail = &ci.pNext;
	if (debug_utils) *tail = &msg, tail = &msg.pNext;
	if (sync_validation) *tail = &vf, tail = &vf.pNext;
	VkInstance inst = VK_NULL_HANDLE;
	VkResult r = create_instance(&ci, NULL, &inst);
	if (r != VK_SUCCESS) return r;
	kvc_inst *in = calloc(1, sizeof *in);
	in->inst = inst;
	in->api = api;
#define IL(n) in->n = (PFN_vk##n)gipa(inst, "vk" #n)
	IL(DestroyInstance);
	IL(EnumeratePhysicalDevices);
	IL(GetPhysicalDeviceProperties);
	IL(GetPhysicalDeviceProperties2);
	IL(GetPhysicalDeviceFeatures2);
	IL(GetPhysicalDeviceMemoryProperties);
	IL(GetPhysicalDeviceQueueFamilyProperties);
	IL(EnumerateDeviceExtensionProperties);
	IL(CreateDevice);
	IL(GetDeviceProcAddr);
	IL(CreateDebugUtilsMessengerEXT);
	IL(DestroyDebugUtilsMessengerEXT);
#undef IL
	if (!in->DestroyInstance || !in->EnumeratePhysicalDevices || !in->GetPhysicalDeviceProperties2 ||
	    !in->GetPhysicalDeviceFeatures2 || !in->CreateDevice || !in->GetDeviceProcAddr) {
		if (in->DestroyInstance) in->DestroyInstance(inst, NULL);
		free(in);
		return VK_ERROR_INITIALIZATION_FAILED;
	}
	if (debug_utils && in->CreateDebugUtilsMessengerEXT) {
		msg.pNext = NULL; // it chained the validation features for vkCreateInstance
		r = in->CreateDebugUtilsMessengerEXT(inst, &msg, NULL, &in->messenger);
		if (r != VK_SUCCESS) in->messenger = VK_NULL_HANDLE;
	}
	*out = in;
	return VK_SUCCESS;
}

void kvc_destroy_instance(kvc_inst *in) {
	if (!in) return;
	if (in->messenger && in->DestroyDebugUtilsMessengerEXT)
		in->DestroyDebugUtilsMessengerEXT(in->inst, in->messenger, NULL);
	in->DestroyInstance(in->inst, NULL);
	free(in);
}

VkResult kvc_enum_physical(kvc_inst *in, uint32_t *count, uint64_t *out) {
	uint32_t n = 0;
	VkResult r = in->EnumeratePhysicalDevices(in->inst, &n, NULL);
	if (r != VK_SUCCESS) return r;
	if (n > *count) n = *count;
	VkPhysicalDevice *p = calloc(n ? n : 1, sizeof *p);
	r = in->EnumeratePhysicalDevices(in->inst, &n, p);
	if (r >= 0) {
		for (uint32_t i = 0; i < n; i++) out[i] = U(p[i]);
		*count = n;
		r = VK_SUCCESS;
	}
	free(p);
	return r;
}

static int has_ext(const VkExtensionProperties *p, uint32_t n, const char *name) {
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(p[i].extensionName, name) == 0) return 1;
	return 0;
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

void kvc_query_device(kvc_inst *in, uint64_t physh, kvc_devinfo *o) {
	VkPhysicalDevice phys = H(VkPhysicalDevice, physh);
	memset(o, 0, sizeof *o);

	uint32_t next = 0;
	in->EnumerateDeviceExtensionProperties(phys, NULL, &next, NULL);
	VkExtensionProperties *ext = calloc(next ? next : 1, sizeof *ext);
	in->EnumerateDeviceExtensionProperties(phys, NULL, &next, ext);
	o->ext_atomic_float = has_ext(ext, next, VK_EXT_SHADER_ATOMIC_FLOAT_EXTENSION_NAME);
	o->ext_subgroup_size_control = has_ext(ext, next, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
	o->ext_portability_subset = has_ext(ext, next, "VK_KHR_portability_subset");
	o->ext_maintenance4 = has_ext(ext, next, VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
	free(ext);

	VkPhysicalDeviceProperties base;
	in->GetPhysicalDeviceProperties(phys, &base);
	// The version we may use is the lower of the device's and the instance's.
	uint32_t api = min_u32(base.apiVersion, in->api);
	int v13 = api >= VK_API_VERSION_1_3;

	VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
	VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
	VkPhysicalDeviceMaintenance3Properties m3 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
	VkPhysicalDeviceDriverProperties drv = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
	VkPhysicalDeviceSubgroupSizeControlProperties sgc = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
	VkPhysicalDeviceMaintenance4Properties m4 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
	void **tail = &p2.pNext;
	*tail = &sg, tail = &sg.pNext;
	*tail = &m3, tail = &m3.pNext;
	int have_driver = api >= VK_API_VERSION_1_2;
	if (have_driver) *tail = &drv, tail = &drv.pNext;
	int have_sgc = v13 || o->ext_subgroup_size_control;
	if (have_sgc) *tail = &sgc, tail = &sgc.pNext;
	int have_m4 = v13 || o->ext_maintenance4;
	if (have_m4) *tail = &m4, tail = &m4.pNext;
	in->GetPhysicalDeviceProperties2(phys, &p2);

	VkPhysicalDeviceProperties *p = &p2.properties;
	snprintf(o->name, sizeof o->name, "%s", p->deviceName);
	memcpy(o->cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
	o->vendor_id = p->vendorID;
	o->device_id = p->deviceID;
	o->api_version = p->apiVersion;
	o->driver_version = p->driverVersion;
	o->device_type = p->deviceType;
	if (have_driver) {
		snprintf(o->driver_name, sizeof o->driver_name, "%s", drv.driverName);
		snprintf(o->driver_info, sizeof o->driver_info, "%s", drv.driverInfo);
		o->driver_id = drv.driverID;
	}
	VkPhysicalDeviceLimits *l = &p->limits;
	o->max_storage_buffer_range = l->maxStorageBufferRange;
	o->max_memory_allocation_size = m3.maxMemoryAllocationSize;
	o->max_buffer_size = have_m4 ? m4.maxBufferSize : m3.maxMemoryAllocationSize;
	o->min_storage_buffer_offset_alignment = l->minStorageBufferOffsetAlignment;
	o->max_compute_shared_memory_size = l->maxComputeSharedMemorySize;
	o->max_compute_work_group_invocations = l->maxComputeWorkGroupInvocations;
	for (int i = 0; i < 3; i++) {
		o->max_compute_work_group_size[i] = l->maxComputeWorkGroupSize[i];
		o->max_compute_work_group_count[i] = l->maxComputeWorkGroupCount[i];
	}
	o->max_push_constants_size = l->maxPushConstantsSize;
	o->max_bound_descriptor_sets = l->maxBoundDescriptorSets;
	o->max_per_stage_descriptor_storage_buffers = l->maxPerStageDescriptorStorageBuffers;
	o->subgroup_size = sg.subgroupSize;
	o->subgroup_ops = sg.supportedOperations;
	o->subgroup_stages = sg.supportedStages;
	o->subgroup_min = have_sgc ? sgc.minSubgroupSize : sg.subgroupSize;
	o->subgroup_max = have_sgc ? sgc.maxSubgroupSize : sg.subgroupSize;
	o->subgroup_required_stages = have_sgc ? sgc.requiredSubgroupSizeStages : 0;
	o->timestamp_period = l->timestampPeriod;
	o->timestamp_compute_and_graphics = l->timestampComputeAndGraphics;

	VkPhysicalDeviceMemoryProperties mp;
	in->GetPhysicalDeviceMemoryProperties(phys, &mp);
	o->heap_count = min_u32(mp.memoryHeapCount, KVC_MAX_HEAPS);
	for (uint32_t i = 0; i < o->heap_count; i++) {
		o->heap_size[i] = mp.memoryHeaps[i].size;
		o->heap_flags[i] = mp.memoryHeaps[i].flags;
	}
	o->type_count = min_u32(mp.memoryTypeCount, KVC_MAX_TYPES);
	for (uint32_t i = 0; i < o->type_count; i++) {
		o->type_flags[i] = mp.memoryTypes[i].propertyFlags;
		o->type_heap[i] = mp.memoryTypes[i].heapIndex;
	}

	// Queue: the first compute family, preferring one with timestamps.
	uint32_t nq = 0;
	in->GetPhysicalDeviceQueueFamilyProperties(phys, &nq, NULL);
	VkQueueFamilyProperties *q = calloc(nq ? nq : 1, sizeof *q);
	in->GetPhysicalDeviceQueueFamilyProperties(phys, &nq, q);
	o->queue_family = -1;
	for (uint32_t i = 0; i < nq; i++) {
		if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
		if (o->queue_family < 0 || (o->timestamp_valid_bits == 0 && q[i].timestampValidBits > 0)) {
			o->queue_family = (int32_t)i;
			o->timestamp_valid_bits = q[i].timestampValidBits;
		}
	}
	free(q);

	if (api < VK_API_VERSION_1_2) return; // features below need the 1.1/1.2 structs; Go refuses such devices
	VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
	VkPhysicalDeviceVulkan11Features f11 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
	VkPhysicalDeviceVulkan12Features f12 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
	VkPhysicalDeviceVulkan13Features f13 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
	VkPhysicalDeviceSubgroupSizeControlFeatures fsg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
	VkPhysicalDeviceShaderAtomicFloatFeaturesEXT fat = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_FLOAT_FEATURES_EXT};
	tail = &f2.pNext;
	*tail = &f11, tail = &f11.pNext;
	*tail = &f12, tail = &f12.pNext;
	if (v13)
		*tail = &f13, tail = &f13.pNext;
	else if (o->ext_subgroup_size_control)
		*tail = &fsg, tail = &fsg.pNext;
	if (o->ext_atomic_float) *tail = &fat, tail = &fat.pNext;
	in->GetPhysicalDeviceFeatures2(phys, &f2);
	o->shader_int16 = f2.features.shaderInt16;
	o->shader_int64 = f2.features.shaderInt64;
	o->storage_buffer16 = f11.storageBuffer16BitAccess;
	o->push_constant16 = f11.storagePushConstant16;
	o->shader_float16 = f12.shaderFloat16;
	o->shader_int8 = f12.shaderInt8;
	o->storage_buffer8 = f12.storageBuffer8BitAccess;
	o->uniform_storage8 = f12.uniformAndStorageBuffer8BitAccess;
	o->push_constant8 = f12.storagePushConstant8;
	if (v13) {
		o->subgroup_size_control = f13.subgroupSizeControl;
		o->compute_full_subgroups = f13.computeFullSubgroups;
	} else if (o->ext_subgroup_size_control) {
		o->subgroup_size_control = fsg.subgroupSizeControl;
		o->compute_full_subgroups = fsg.computeFullSubgroups;
	}
	if (o->ext_atomic_float) o->buffer_float32_atomic_add = fat.shaderBufferFloat32AtomicAdd;
}

VkResult kvc_create_device(kvc_inst *in, uint64_t physh, const kvc_devinfo *info, const kvc_features *w,
                           kvc_dev **out, char *err, int errlen) {
	VkPhysicalDevice phys = H(VkPhysicalDevice, physh);
	uint32_t api = min_u32(info->api_version, in->api);
	int v13 = api >= VK_API_VERSION_1_3;
	float prio = 1.0f;
	VkDeviceQueueCreateInfo qi = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
	qi.queueFamilyIndex = (uint32_t)info->queue_family;
	qi.queueCount = 1;
	qi.pQueuePriorities = &prio;

	VkPhysicalDeviceFeatures2 f2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
	VkPhysicalDeviceVulkan11Features f11 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
	VkPhysicalDeviceVulkan12Features f12 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
	VkPhysicalDeviceVulkan13Features f13 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
	VkPhysicalDeviceSubgroupSizeControlFeatures fsg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
	VkPhysicalDeviceShaderAtomicFloatFeaturesEXT fat = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_ATOMIC_FLOAT_FEATURES_EXT};
	f2.features.shaderInt16 = w->shader_int16 != 0;
	f2.features.shaderInt64 = w->shader_int64 != 0;
	f11.storageBuffer16BitAccess = w->storage_buffer16 != 0;
	f11.storagePushConstant16 = w->push_constant16 != 0;
	f12.shaderFloat16 = w->shader_float16 != 0;
	f12.shaderInt8 = w->shader_int8 != 0;
	f12.storageBuffer8BitAccess = w->storage_buffer8 != 0;
	f12.uniformAndStorageBuffer8BitAccess = w->uniform_storage8 != 0;
	f12.storagePushConstant8 = w->push_constant8 != 0;
	const char *exts[4];
	uint32_t next = 0;
	void **tail = &f2.pNext;
	*tail = &f11, tail = &f11.pNext;
	*tail = &f12, tail = &f12.pNext;
	int want_sg = w->subgroup_size_control || w->compute_full_subgroups;
	if (want_sg && v13) {
		f13.subgroupSizeControl = w->subgroup_size_control != 0;
		f13.computeFullSubgroups = w->compute_full_subgroups != 0;
		*tail = &f13, tail = &f13.pNext;
	} else if (want_sg) {
		if (!info->ext_subgroup_size_control) {
			snprintf(err, errlen, "subgroup size control needs Vulkan 1.3 or %s", VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
			return VK_ERROR_FEATURE_NOT_PRESENT;
		}
		fsg.subgroupSizeControl = w->subgroup_size_control != 0;
		fsg.computeFullSubgroups = w->compute_full_subgroups != 0;
		*tail = &fsg, tail = &fsg.pNext;
		exts[next++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
	}
	if (w->buffer_float32_atomic_add) {
		if (!info->ext_atomic_float) {
			snprintf(err, errlen, "shaderBufferFloat32AtomicAdd needs %s", VK_EXT_SHADER_ATOMIC_FLOAT_EXTENSION_NAME);
			return VK_ERROR_FEATURE_NOT_PRESENT;
		}
		fat.shaderBufferFloat32AtomicAdd = VK_TRUE;
		*tail = &fat, tail = &fat.pNext;
		exts[next++] = VK_EXT_SHADER_ATOMIC_FLOAT_EXTENSION_NAME;
	}
	if (info->ext_portability_subset) exts[next++] = "VK_KHR_portability_subset";

	VkDeviceCreateInfo ci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
	ci.pNext = &f2;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &qi;
	ci.enabledExtensionCount = next;
	ci.ppEnabledExtensionNames = exts;
	VkDevice dev = VK_NULL_HANDLE;
	VkResult r = in->CreateDevice(phys, &ci, NULL, &dev);
	if (r != VK_SUCCESS) {
		snprintf(err, errlen, "vkCreateDevice failed");
		return r;
	}
	kvc_dev *d = calloc(1, sizeof *d);
	d->dev = dev;
#define KVC_LOAD(n)                                                                                            \
	d->n = (PFN_vk##n)in->GetDeviceProcAddr(dev, "vk" #n);                                                    \
	if (!d->n) {                                                                                              \
		snprintf(err, errlen, "the driver lacks vk" #n);                                                      \
		goto fail;                                                                                            \
	}
	KVC_DEVICE_FUNCS(KVC_LOAD)
#undef KVC_LOAD
	d->GetDeviceQueue(dev, (uint32_t)info->queue_family, 0, &d->queue);
	*out = d;
	return VK_SUCCESS;
fail:;
	PFN_vkDestroyDevice destroy = (PFN_vkDestroyDevice)in->GetDeviceProcAddr(dev, "vkDestroyDevice");
	if (destroy) destroy(dev, NULL);
	free(d);
	return VK_ERROR_INITIALIZATION_FAILED;
}

void kvc_destroy_device(kvc_dev *d) {
	if (!d) return;
	d->DestroyDevice(d->dev, NULL);
	free(d);
}

VkResult kvc_create_buffer(kvc_dev *d, uint64_t size, uint32_t usage, uint64_t *buf, uint64_t *req_size,
                           uint64_t *req_align, uint32_t *req_bits) {
	VkBufferCreateInfo ci = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	ci.size = size;
	ci.usage = usage;
	ci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	VkBuffer b = VK_NULL_HANDLE;
	VkResult r = d->CreateBuffer(d->dev, &ci, NULL, &b);
	if (r != VK_SUCCESS) return r;
	VkMemoryRequirements req;
	d->GetBufferMemoryRequirements(d->dev, b, &req);
	*buf = U(b);
	*req_size = req.size;
	*req_align = req.alignment;
	*req_bits = req.memoryTypeBits;
	return VK_SUCCESS;
}

void kvc_destroy_buffer(kvc_dev *d, uint64_t buf) { d->DestroyBuffer(d->dev, H(VkBuffer, buf), NULL); }

VkResult kvc_alloc_memory(kvc_dev *d, uint64_t size, uint32_t type, uint64_t *mem) {
	VkMemoryAllocateInfo ai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	ai.allocationSize = size;
	ai.memoryTypeIndex = type;
	VkDeviceMemory m = VK_NULL_HANDLE;
	VkResult r = d->AllocateMemory(d->dev, &ai, NULL, &m);
	*mem = U(m);
	return r;
}

void kvc_free_memory(kvc_dev *d, uint64_t mem) { d->FreeMemory(d->dev, H(VkDeviceMemory, mem), NULL); }

VkResult kvc_bind_buffer(kvc_dev *d, uint64_t buf, uint64_t mem, uint64_t off) {
	return d->BindBufferMemory(d->dev, H(VkBuffer, buf), H(VkDeviceMemory, mem), off);
}

VkResult kvc_map(kvc_dev *d, uint64_t mem, void **ptr) {
	return d->MapMemory(d->dev, H(VkDeviceMemory, mem), 0, VK_WHOLE_SIZE, 0, ptr);
}

void kvc_unmap(kvc_dev *d, uint64_t mem) { d->UnmapMemory(d->dev, H(VkDeviceMemory, mem)); }

VkResult kvc_create_pipeline_cache(kvc_dev *d, const void *data, size_t n, uint64_t *out) {
	VkPipelineCacheCreateInfo ci = {VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
	ci.initialDataSize = n;
	ci.pInitialData = data;
	VkPipelineCache c = VK_NULL_HANDLE;
	VkResult r = d->CreatePipelineCache(d->dev, &ci, NULL, &c);
	*out = U(c);
	return r;
}

VkResult kvc_pipeline_cache_data(kvc_dev *d, uint64_t cache, size_t *n, void *data) {
	return d->GetPipelineCacheData(d->dev, H(VkPipelineCache, cache), n, data);
}

void kvc_destroy_pipeline_cache(kvc_dev *d, uint64_t cache) {
	d->DestroyPipelineCache(d->dev, H(VkPipelineCache, cache), NULL);
}

VkResult kvc_create_kernel(kvc_dev *d, uint64_t cache, const uint32_t *code, size_t code_bytes, const uint32_t *spec,
                           uint32_t nspec, uint32_t push_bytes, const uint32_t *counts, uint32_t nbind,
                           uint32_t required_subgroup, int full_subgroups, uint64_t *out3) {
	VkResult r;
	VkDescriptorSetLayoutBinding *b = calloc(nbind ? nbind : 1, sizeof *b);
	for (uint32_t i = 0; i < nbind; i++) {
		b[i].binding = i;
		b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		b[i].descriptorCount = counts[i];
		b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	}
	VkDescriptorSetLayoutCreateInfo dci = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
	dci.bindingCount = nbind;
	dci.pBindings = b;
	VkDescriptorSetLayout dsl = VK_NULL_HANDLE;
	VkPipelineLayout layout = VK_NULL_HANDLE;
	VkShaderModule mod = VK_NULL_HANDLE;
	VkPipeline pipe = VK_NULL_HANDLE;
	VkSpecializationMapEntry *se = calloc(nspec ? nspec : 1, sizeof *se);
	uint32_t *sdata = calloc(nspec ? nspec : 1, sizeof *sdata);
	r = d->CreateDescriptorSetLayout(d->dev, &dci, NULL, &dsl);
	if (r != VK_SUCCESS) goto done;

	VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes};
	VkPipelineLayoutCreateInfo lci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
	lci.setLayoutCount = 1;
	lci.pSetLayouts = &dsl;
	if (push_bytes) {
		lci.pushConstantRangeCount = 1;
		lci.pPushConstantRanges = &pr;
	}
	r = d->CreatePipelineLayout(d->dev, &lci, NULL, &layout);
	if (r != VK_SUCCESS) goto done;

	VkShaderModuleCreateInfo mci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
	mci.codeSize = code_bytes;
	mci.pCode = code;
	r = d->CreateShaderModule(d->dev, &mci, NULL, &mod);
	if (r != VK_SUCCESS) goto done;

	for (uint32_t i = 0; i < nspec; i++) {
		se[i].constantID = i;
		se[i].offset = i * 4;
		se[i].size = 4;
		sdata[i] = spec[i];
	}
	VkSpecializationInfo si = {nspec, se, nspec * 4, sdata};
	VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rs = {
	    VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
	rs.requiredSubgroupSize = required_subgroup;
	VkComputePipelineCreateInfo pci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
	pci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	pci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	pci.stage.module = mod;
	pci.stage.pName = "main";
	pci.stage.pSpecializationInfo = nspec ? &si : NULL;
	if (required_subgroup) pci.stage.pNext = &rs;
	if (full_subgroups) pci.stage.flags |= VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
	pci.layout = layout;
	r = d->CreateComputePipelines(d->dev, H(VkPipelineCache, cache), 1, &pci, NULL, &pipe);

done:
	if (mod) d->DestroyShaderModule(d->dev, mod, NULL);
	if (r != VK_SUCCESS) {
		if (pipe) d->DestroyPipeline(d->dev, pipe, NULL);
		if (layout) d->DestroyPipelineLayout(d->dev, layout, NULL);
		if (dsl) d->DestroyDescriptorSetLayout(d->dev, dsl, NULL);
	} else {
		out3[0] = U(dsl);
		out3[1] = U(layout);
		out3[2] = U(pipe);
	}
	free(b);
	free(se);
	free(sdata);
	return r;
}

void kvc_destroy_kernel(kvc_dev *d, uint64_t dsl, uint64_t layout, uint64_t pipe) {
	d->DestroyPipeline(d->dev, H(VkPipeline, pipe), NULL);
	d->DestroyPipelineLayout(d->dev, H(VkPipelineLayout, layout), NULL);
	d->DestroyDescriptorSetLayout(d->dev, H(VkDescriptorSetLayout, dsl), NULL);
}

VkResult kvc_create_desc_pool(kvc_dev *d, uint32_t max_sets, uint32_t ndesc, uint64_t *out) {
	VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, ndesc};
	VkDescriptorPoolCreateInfo ci = {VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
	ci.maxSets = max_sets;
	ci.poolSizeCount = 1;
	ci.pPoolSizes = &ps;
	VkDescriptorPool p = VK_NULL_HANDLE;
	VkResult r = d->CreateDescriptorPool(d->dev, &ci, NULL, &p);
	*out = U(p);
	return r;
}

void kvc_destroy_desc_pool(kvc_dev *d, uint64_t pool) {
	d->DestroyDescriptorPool(d->dev, H(VkDescriptorPool, pool), NULL);
}

VkResult kvc_alloc_desc_set(kvc_dev *d, uint64_t pool, uint64_t dslh, uint64_t *out) {
	VkDescriptorSetLayout dsl = H(VkDescriptorSetLayout, dslh);
	VkDescriptorSetAllocateInfo ai = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
	ai.descriptorPool = H(VkDescriptorPool, pool);
	ai.descriptorSetCount = 1;
	ai.pSetLayouts = &dsl;
	VkDescriptorSet s = VK_NULL_HANDLE;
	VkResult r = d->AllocateDescriptorSets(d->dev, &ai, &s);
	*out = U(s);
	return r;
}

void kvc_update_desc_set(kvc_dev *d, uint64_t set, uint32_t nbind, const uint32_t *counts, const uint64_t *bufs,
                         const uint64_t *offs, const uint64_t *ranges) {
	VkDescriptorBufferInfo info[KVC_MAX_DESCRIPTORS];
	VkWriteDescriptorSet w[KVC_MAX_DESCRIPTORS];
	uint32_t k = 0, nw = 0;
	for (uint32_t i = 0; i < nbind && nw < KVC_MAX_DESCRIPTORS; i++) {
		if (k + counts[i] > KVC_MAX_DESCRIPTORS) break; // Go checks the total first
		memset(&w[nw], 0, sizeof w[nw]);
		w[nw].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
		w[nw].dstSet = H(VkDescriptorSet, set);
		w[nw].dstBinding = i;
		w[nw].descriptorCount = counts[i];
		w[nw].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		w[nw].pBufferInfo = &info[k];
		for (uint32_t j = 0; j < counts[i]; j++, k++) {
			info[k].buffer = H(VkBuffer, bufs[k]);
			info[k].offset = offs[k];
			info[k].range = ranges[k];
		}
		nw++;
	}
	d->UpdateDescriptorSets(d->dev, nw, w, 0, NULL);
}

VkResult kvc_create_cmd(kvc_dev *d, uint32_t family, uint64_t *pool, uint64_t *cmd) {
	VkCommandPoolCreateInfo ci = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
	ci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	ci.queueFamilyIndex = family;
	VkCommandPool p = VK_NULL_HANDLE;
	VkResult r = d->CreateCommandPool(d->dev, &ci, NULL, &p);
	if (r != VK_SUCCESS) return r;
	VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
	ai.commandPool = p;
	ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	ai.commandBufferCount = 1;
	VkCommandBuffer c = VK_NULL_HANDLE;
	r = d->AllocateCommandBuffers(d->dev, &ai, &c);
	if (r != VK_SUCCESS) {
		d->DestroyCommandPool(d->dev, p, NULL);
		return r;
	}
	*pool = U(p);
	*cmd = U(c);
	return VK_SUCCESS;
}

void kvc_destroy_cmd_pool(kvc_dev *d, uint64_t pool) { d->DestroyCommandPool(d->dev, H(VkCommandPool, pool), NULL); }

VkResult kvc_begin(kvc_dev *d, uint64_t cmd) {
	VkCommandBuffer c = H(VkCommandBuffer, cmd);
	VkResult r = d->ResetCommandBuffer(c, 0);
	if (r != VK_SUCCESS) return r;
	VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
	return d->BeginCommandBuffer(c, &bi);
}

VkResult kvc_end(kvc_dev *d, uint64_t cmd) { return d->EndCommandBuffer(H(VkCommandBuffer, cmd)); }

void kvc_cmd_dispatch(kvc_dev *d, uint64_t cmd, uint64_t pipe, uint64_t layout, uint64_t set, const void *push,
                      uint32_t push_len, uint32_t x, uint32_t y, uint32_t z) {
	VkCommandBuffer c = H(VkCommandBuffer, cmd);
	VkDescriptorSet s = H(VkDescriptorSet, set);
	d->CmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, H(VkPipeline, pipe));
	d->CmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, H(VkPipelineLayout, layout), 0, 1, &s, 0, NULL);
	if (push_len) d->CmdPushConstants(c, H(VkPipelineLayout, layout), VK_SHADER_STAGE_COMPUTE_BIT, 0, push_len, push);
	d->CmdDispatch(c, x, y, z);
}

// One barrier kind covers every hazard between compute shaders and transfers on this queue.
void kvc_cmd_barrier(kvc_dev *d, uint64_t cmd) {
	VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
	                   VK_ACCESS_TRANSFER_WRITE_BIT;
	VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
	d->CmdPipelineBarrier(H(VkCommandBuffer, cmd), st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

// Device writes become visible to host reads after the fence wait.
void kvc_cmd_host_barrier(kvc_dev *d, uint64_t cmd) {
	VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
	d->CmdPipelineBarrier(H(VkCommandBuffer, cmd), VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
	                      VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

void kvc_cmd_copy(kvc_dev *d, uint64_t cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off,
                  uint64_t size) {
	VkBufferCopy r = {src_off, dst_off, size};
	d->CmdCopyBuffer(H(VkCommandBuffer, cmd), H(VkBuffer, src), H(VkBuffer, dst), 1, &r);
}

void kvc_cmd_update(kvc_dev *d, uint64_t cmd, uint64_t dst, uint64_t off, uint64_t size, const void *data) {
	d->CmdUpdateBuffer(H(VkCommandBuffer, cmd), H(VkBuffer, dst), off, size, data);
}

void kvc_cmd_reset_queries(kvc_dev *d, uint64_t cmd, uint64_t pool, uint32_t first, uint32_t count) {
	d->CmdResetQueryPool(H(VkCommandBuffer, cmd), H(VkQueryPool, pool), first, count);
}

void kvc_cmd_timestamp(kvc_dev *d, uint64_t cmd, uint64_t pool, uint32_t query) {
	d->CmdWriteTimestamp(H(VkCommandBuffer, cmd), VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, H(VkQueryPool, pool), query);
}

VkResult kvc_create_query_pool(kvc_dev *d, uint32_t count, uint64_t *out) {
	VkQueryPoolCreateInfo ci = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
	ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
	ci.queryCount = count;
	VkQueryPool p = VK_NULL_HANDLE;
	VkResult r = d->CreateQueryPool(d->dev, &ci, NULL, &p);
	*out = U(p);
	return r;
}

void kvc_destroy_query_pool(kvc_dev *d, uint64_t pool) { d->DestroyQueryPool(d->dev, H(VkQueryPool, pool), NULL); }

VkResult kvc_query_results(kvc_dev *d, uint64_t pool, uint32_t first, uint32_t count, uint64_t *out) {
	return d->GetQueryPoolResults(d->dev, H(VkQueryPool, pool), first, count, (size_t)count * 8, out, 8,
	                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
}

VkResult kvc_create_fence(kvc_dev *d, uint64_t *out) {
	VkFenceCreateInfo ci = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	VkFence f = VK_NULL_HANDLE;
	VkResult r = d->CreateFence(d->dev, &ci, NULL, &f);
	*out = U(f);
	return r;
}

void kvc_destroy_fence(kvc_dev *d, uint64_t fence) { d->DestroyFence(d->dev, H(VkFence, fence), NULL); }

VkResult kvc_submit_wait(kvc_dev *d, uint64_t cmd, uint64_t fence, uint64_t timeout_ns) {
	VkCommandBuffer c = H(VkCommandBuffer, cmd);
	VkFence f = H(VkFence, fence);
	VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
	si.commandBufferCount = 1;
	si.pCommandBuffers = &c;
	VkResult r = d->QueueSubmit(d->queue, 1, &si, f);
	if (r != VK_SUCCESS) return r;
	r = d->WaitForFences(d->dev, 1, &f, VK_TRUE, timeout_ns);
	if (r != VK_SUCCESS) return r;
	return d->ResetFences(d->dev, 1, &f);
}

VkResult kvc_device_wait_idle(kvc_dev *d) { return d->DeviceWaitIdle(d->dev); }

void kvc_cmd_fill(kvc_dev *d, uint64_t cmd, uint64_t dst, uint64_t off, uint64_t size, uint32_t value) {
	d->CmdFillBuffer(H(VkCommandBuffer, cmd), H(VkBuffer, dst), off, size, value);
}
