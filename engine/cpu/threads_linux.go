package cpu

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// physicalCores counts the cores of the CPUs in this process's affinity mask (a cpuset or taskset, as
// Kubernetes and Slurm set them), from /sys's thread_siblings_list; 0 when it cannot tell.
func physicalCores() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	var cpus []int
	for c := range 1 << 14 {
		if len(cpus) == set.Count() {
			break
		}
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return countCores(cpus, func(c int) (string, bool) {
		b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", c))
		return strings.TrimSpace(string(b)), err == nil
	})
}
