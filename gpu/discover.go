package gpu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Device is one GPU as NVML reports it.
type Device struct {
	Index       int
	Name        string
	UUID        string
	MemoryBytes uint64 // total device memory
	// BusID is the PCI address in sysfs form, e.g. "0000:17:00.0".
	BusID string
	// NUMANode is the host NUMA node the device hangs off; -1 when the
	// host has no NUMA information.
	NUMANode int
}

// Discovery is what NVML said about this host.
type Discovery struct {
	// NVML reports whether libnvidia-ml was found and initialised.
	NVML bool
	// Reason says why NVML is absent ("libnvidia-ml.so.1 not found",
	// "built without cgo"); empty when NVML is present.
	Reason        string
	DriverVersion string
	Devices       []Device
}

// String is a one-line summary for logs.
func (d Discovery) String() string {
	if !d.NVML {
		return "no NVML: " + d.Reason
	}
	if len(d.Devices) == 0 {
		return "NVML " + d.DriverVersion + ": no GPUs"
	}
	parts := make([]string, len(d.Devices))
	for i, g := range d.Devices {
		parts[i] = fmt.Sprintf("%d:%s %s %dMiB bus %s numa %d", g.Index, g.Name, g.UUID, g.MemoryBytes>>20, g.BusID, g.NUMANode)
	}
	return "NVML " + d.DriverVersion + ": " + strings.Join(parts, "; ")
}

// Discover asks NVML for the host's GPUs. A host without NVML (no driver,
// no library, a build without cgo) is a normal answer: NVML false and a
// Reason. An error means NVML was found but failed, and names the call.
func Discover() (Discovery, error) { return discover(SysfsRoot) }

// SysfsRoot is where PCI devices are looked up ("/sys").
const SysfsRoot = "/sys"

// numaNode reads /sys/bus/pci/devices/<busid>/numa_node under root; -1
// when the file is missing or says -1 (no NUMA).
func numaNode(root, busID string) int {
	b, err := os.ReadFile(filepath.Join(root, "bus/pci/devices", strings.ToLower(busID), "numa_node"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// normalizeBusID turns NVML's "00000000:17:00.0" into sysfs's
// "0000:17:00.0" (a 4-digit domain).
func normalizeBusID(id string) string {
	id = strings.ToLower(strings.TrimRight(id, "\x00"))
	dom, rest, ok := strings.Cut(id, ":")
	if !ok {
		return id
	}
	if len(dom) > 4 {
		dom = dom[len(dom)-4:]
	}
	return dom + ":" + rest
}
