// kvcvk.h: the C half of engine/vk. Every struct the driver reads is built here, in C memory, and lives for
// the whole Vulkan call. Handles cross into Go as uint64_t; function pointers are loaded at run time through
// dlopen("libvulkan.so.1") + vkGetInstanceProcAddr/vkGetDeviceProcAddr, so the binary never links libvulkan.
#ifndef KVCVK_H
#define KVCVK_H

#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#define KVC_MAX_HEAPS 16
#define KVC_MAX_TYPES 32
#define KVC_MAX_DESCRIPTORS 64

typedef struct kvc_inst {
	VkInstance inst;
	VkDebugUtilsMessengerEXT messenger;
	uint32_t api;
	PFN_vkDestroyInstance DestroyInstance;
	PFN_vkEnumeratePhysicalDevices EnumeratePhysicalDevices;
	PFN_vkGetPhysicalDeviceProperties GetPhysicalDeviceProperties;
	PFN_vkGetPhysicalDeviceProperties2 GetPhysicalDeviceProperties2;
	PFN_vkGetPhysicalDeviceFeatures2 GetPhysicalDeviceFeatures2;
	PFN_vkGetPhysicalDeviceMemoryProperties GetPhysicalDeviceMemoryProperties;
	PFN_vkGetPhysicalDeviceQueueFamilyProperties GetPhysicalDeviceQueueFamilyProperties;
	PFN_vkEnumerateDeviceExtensionProperties EnumerateDeviceExtensionProperties;
	PFN_vkCreateDevice CreateDevice;
	PFN_vkGetDeviceProcAddr GetDeviceProcAddr;
	PFN_vkCreateDebugUtilsMessengerEXT CreateDebugUtilsMessengerEXT;
	PFN_vkDestroyDebugUtilsMessengerEXT DestroyDebugUtilsMessengerEXT;
} kvc_inst;

#define KVC_DEVICE_FUNCS(X)                                                                                    \
	X(DestroyDevice) X(GetDeviceQueue) X(CreateBuffer) X(DestroyBuffer) X(GetBufferMemoryRequirements)         \
	X(AllocateMemory) X(FreeMemory) X(BindBufferMemory) X(MapMemory) X(UnmapMemory) X(CreateShaderModule)      \
	X(DestroyShaderModule) X(CreateDescriptorSetLayout) X(DestroyDescriptorSetLayout) X(CreatePipelineLayout)  \
	X(DestroyPipelineLayout) X(CreatePipelineCache) X(DestroyPipelineCache) X(GetPipelineCacheData)           \
	X(CreateComputePipelines) X(DestroyPipeline) X(CreateDescriptorPool) X(DestroyDescriptorPool)               \
	X(AllocateDescriptorSets) X(UpdateDescriptorSets) X(CreateCommandPool) X(DestroyCommandPool)                \
	X(AllocateCommandBuffers) X(ResetCommandBuffer) X(BeginCommandBuffer) X(EndCommandBuffer)                  \
	X(CmdBindPipeline) X(CmdBindDescriptorSets) X(CmdPushConstants) X(CmdDispatch) X(CmdPipelineBarrier)       \
	X(CmdCopyBuffer) X(CmdFillBuffer) X(CmdUpdateBuffer) X(CmdResetQueryPool) X(CmdWriteTimestamp)              \
	X(CreateQueryPool) X(DestroyQueryPool) X(GetQueryPoolResults) X(CreateFence) X(DestroyFence)              \
	X(ResetFences) X(WaitForFences) X(QueueSubmit) X(DeviceWaitIdle)

typedef struct kvc_dev {
	VkDevice dev;
	VkQueue queue;
#define KVC_DECL(n) PFN_vk##n n;
	KVC_DEVICE_FUNCS(KVC_DECL)
#undef KVC_DECL
} kvc_dev;

// kvc_devinfo: everything engine/vk reports about a physical device (plain data, safe in Go memory).
typedef struct kvc_devinfo {
	char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
	char driver_name[VK_MAX_DRIVER_NAME_SIZE];
	char driver_info[VK_MAX_DRIVER_INFO_SIZE];
	uint8_t cache_uuid[VK_UUID_SIZE];
	uint32_t vendor_id, device_id, api_version, driver_version, device_type, driver_id;

	uint32_t heap_count;
	uint64_t heap_size[KVC_MAX_HEAPS];
	uint32_t heap_flags[KVC_MAX_HEAPS];
	uint32_t type_count;
	uint32_t type_flags[KVC_MAX_TYPES];
	uint32_t type_heap[KVC_MAX_TYPES];

	uint64_t max_storage_buffer_range, max_memory_allocation_size, max_buffer_size;
	uint64_t min_storage_buffer_offset_alignment;
	uint32_t max_compute_shared_memory_size, max_compute_work_group_invocations;
	uint32_t max_compute_work_group_size[3], max_compute_work_group_count[3];
	uint32_t max_push_constants_size, max_bound_descriptor_sets, max_per_stage_descriptor_storage_buffers;
	uint32_t subgroup_size, subgroup_ops, subgroup_stages, subgroup_min, subgroup_max, subgroup_required_stages;
	float timestamp_period;
	uint32_t timestamp_compute_and_graphics, timestamp_valid_bits;
	int32_t queue_family; // -1: no compute queue

	int32_t shader_float16, shader_int8, shader_int16, shader_int64;
	int32_t storage_buffer16, storage_buffer8, uniform_storage8, push_constant8, push_constant16;
	int32_t buffer_float32_atomic_add, subgroup_size_control, compute_full_subgroups;

	int32_t ext_atomic_float, ext_subgroup_size_control, ext_portability_subset, ext_maintenance4;
} kvc_devinfo;

// kvc_features: what a device is created with; exactly these are enabled.
typedef struct kvc_features {
	int32_t shader_float16, shader_int8, shader_int16, shader_int64;
	int32_t storage_buffer16, storage_buffer8, uniform_storage8, push_constant8, push_constant16;
	int32_t buffer_float32_atomic_add, subgroup_size_control, compute_full_subgroups;
} kvc_features;

// kvc_load dlopens the loader; install=0 only checks that path is a usable loader.
int kvc_load(const char *path, int install, char *err, int errlen);
uint32_t kvc_instance_version(void);
PFN_vkGetInstanceProcAddr kvc_instance_proc_addr(void); // the loaded loader's, NULL before kvc_load
// kvc_fill_messenger: a debug messenger that records warnings and errors for instance id (Instance.Messages).
void kvc_fill_messenger(VkDebugUtilsMessengerCreateInfoEXT *m, int id);
int kvc_has_layer(const char *name);
int kvc_has_instance_ext(const char *layer, const char *name); // layer NULL: the loader's and drivers'
VkResult kvc_create_instance(uint32_t api, int validation, int sync_validation, int debug_utils, int portability, int id,
                             kvc_inst **out);
void kvc_destroy_instance(kvc_inst *in);
VkResult kvc_enum_physical(kvc_inst *in, uint32_t *count, uint64_t *out);
void kvc_query_device(kvc_inst *in, uint64_t phys, kvc_devinfo *out);
VkResult kvc_create_device(kvc_inst *in, uint64_t phys, const kvc_devinfo *info, const kvc_features *want,
                           kvc_dev **out, char *err, int errlen);
void kvc_destroy_device(kvc_dev *d);

VkResult kvc_create_buffer(kvc_dev *d, uint64_t size, uint32_t usage, uint64_t *buf, uint64_t *req_size,
                           uint64_t *req_align, uint32_t *req_bits);
void kvc_destroy_buffer(kvc_dev *d, uint64_t buf);
VkResult kvc_alloc_memory(kvc_dev *d, uint64_t size, uint32_t type, uint64_t *mem);
void kvc_free_memory(kvc_dev *d, uint64_t mem);
VkResult kvc_bind_buffer(kvc_dev *d, uint64_t buf, uint64_t mem, uint64_t off);
VkResult kvc_map(kvc_dev *d, uint64_t mem, void **ptr);
void kvc_unmap(kvc_dev *d, uint64_t mem);

VkResult kvc_create_pipeline_cache(kvc_dev *d, const void *data, size_t n, uint64_t *out);
VkResult kvc_pipeline_cache_data(kvc_dev *d, uint64_t cache, size_t *n, void *data);
void kvc_destroy_pipeline_cache(kvc_dev *d, uint64_t cache);
VkResult kvc_create_kernel(kvc_dev *d, uint64_t cache, const uint32_t *code, size_t code_bytes, const uint32_t *spec,
                           uint32_t nspec, uint32_t push_bytes, const uint32_t *counts, uint32_t nbind,
                           uint32_t required_subgroup, int full_subgroups, uint64_t *out3);
void kvc_destroy_kernel(kvc_dev *d, uint64_t dsl, uint64_t layout, uint64_t pipe);

VkResult kvc_create_desc_pool(kvc_dev *d, uint32_t max_sets, uint32_t ndesc, uint64_t *out);
void kvc_destroy_desc_pool(kvc_dev *d, uint64_t pool);
VkResult kvc_alloc_desc_set(kvc_dev *d, uint64_t pool, uint64_t dsl, uint64_t *out);
void kvc_update_desc_set(kvc_dev *d, uint64_t set, uint32_t nbind, const uint32_t *counts, const uint64_t *bufs,
                         const uint64_t *offs, const uint64_t *ranges);

VkResult kvc_create_cmd(kvc_dev *d, uint32_t family, uint64_t *pool, uint64_t *cmd);
void kvc_destroy_cmd_pool(kvc_dev *d, uint64_t pool);
VkResult kvc_begin(kvc_dev *d, uint64_t cmd);
VkResult kvc_end(kvc_dev *d, uint64_t cmd);
void kvc_cmd_dispatch(kvc_dev *d, uint64_t cmd, uint64_t pipe, uint64_t layout, uint64_t set, const void *push,
                      uint32_t push_len, uint32_t x, uint32_t y, uint32_t z);
void kvc_cmd_barrier(kvc_dev *d, uint64_t cmd);
void kvc_cmd_host_barrier(kvc_dev *d, uint64_t cmd);
void kvc_cmd_copy(kvc_dev *d, uint64_t cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off,
                  uint64_t size);
void kvc_cmd_update(kvc_dev *d, uint64_t cmd, uint64_t dst, uint64_t off, uint64_t size, const void *data);
void kvc_cmd_fill(kvc_dev *d, uint64_t cmd, uint64_t dst, uint64_t off, uint64_t size, uint32_t value);
void kvc_cmd_reset_queries(kvc_dev *d, uint64_t cmd, uint64_t pool, uint32_t first, uint32_t count);
void kvc_cmd_timestamp(kvc_dev *d, uint64_t cmd, uint64_t pool, uint32_t query);
VkResult kvc_create_query_pool(kvc_dev *d, uint32_t count, uint64_t *out);
void kvc_destroy_query_pool(kvc_dev *d, uint64_t pool);
VkResult kvc_query_results(kvc_dev *d, uint64_t pool, uint32_t first, uint32_t count, uint64_t *out);
VkResult kvc_create_fence(kvc_dev *d, uint64_t *out);
void kvc_destroy_fence(kvc_dev *d, uint64_t fence);
VkResult kvc_submit_wait(kvc_dev *d, uint64_t cmd, uint64_t fence, uint64_t timeout_ns);
VkResult kvc_device_wait_idle(kvc_dev *d);

#endif
