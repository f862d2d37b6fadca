//go:build cgo

package gpu

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// The few NVML entry points Stoker calls, through pointers found with
// dlsym in libnvidia-ml.so.1: no NVML header is compiled (the full one
// marks dozens of functions deprecated, and a build that compiled it
// printed a warning for each) and nothing is linked at build time. The
// types are NVML's own, laid out as nvml.h declares them.
typedef int nvml_return;
typedef void *nvml_device;
typedef struct { unsigned long long total, free, used; } nvml_memory;
typedef struct {
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
} nvml_pci_info;

static void *nvml_open(void) { return dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL); }
static void *nvml_sym(void *h, const char *name) { return dlsym(h, name); }
static const char *nvml_dlerror(void) { const char *e = dlerror(); return e ? e : "unknown dlopen error"; }
static nvml_return nvml_call(void *f) { return ((nvml_return (*)(void))f)(); }
static const char *nvml_error_string(void *f, nvml_return r) { return ((const char *(*)(nvml_return))f)(r); }
static nvml_return nvml_string(void *f, char *buf, unsigned int n) { return ((nvml_return (*)(char *, unsigned int))f)(buf, n); }
static nvml_return nvml_count(void *f, unsigned int *n) { return ((nvml_return (*)(unsigned int *))f)(n); }
static nvml_return nvml_handle(void *f, unsigned int i, nvml_device *d) { return ((nvml_return (*)(unsigned int, nvml_device *))f)(i, d); }
static nvml_return nvml_device_string(void *f, nvml_device d, char *buf, unsigned int n) { return ((nvml_return (*)(nvml_device, char *, unsigned int))f)(d, buf, n); }
static nvml_return nvml_memory_info(void *f, nvml_device d, nvml_memory *m) { return ((nvml_return (*)(nvml_device, nvml_memory *))f)(d, m); }
static nvml_return nvml_pci(void *f, nvml_device d, nvml_pci_info *p) { return ((nvml_return (*)(nvml_device, nvml_pci_info *))f)(d, p); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// NVML return codes Stoker branches on (nvmlReturn_t).
const (
	nvmlSuccess            = 0
	nvmlErrNoPermission    = 4
	nvmlErrDriverNotLoaded = 9
	nvmlErrLibNotFound     = 12
)

// Buffer sizes nvml.h gives for the strings it fills.
const (
	nvmlDriverVersionLen = 80 // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
	nvmlNameLen          = 96 // NVML_DEVICE_NAME_V2_BUFFER_SIZE
	nvmlUUIDLen          = 96 // NVML_DEVICE_UUID_V2_BUFFER_SIZE
)

// nvmlLib is libnvidia-ml's entry points; each may be nil where the
// library lacks it (the versioned ones fall back to older versions).
type nvmlLib struct {
	init, shutdown, errorString, driverVersion unsafe.Pointer
	count, handle, name, uuid, memoryInfo, pci unsafe.Pointer
}

// openNVML dlopens libnvidia-ml.so.1; the reason is dlopen's when it
// cannot be found, or names the entry point missing.
func openNVML() (*nvmlLib, string) {
	h := C.nvml_open()
	if h == nil {
		return nil, C.GoString(C.nvml_dlerror())
	}
	// sym finds the first of names the library has: a versioned entry
	// point, then its older versions.
	sym := func(names ...string) unsafe.Pointer {
		for _, n := range names {
			cs := C.CString(n)
			p := C.nvml_sym(h, cs)
			C.free(unsafe.Pointer(cs))
			if p != nil {
				return p
			}
		}
		return nil
	}
	l := &nvmlLib{
		init:          sym("nvmlInit_v2", "nvmlInit"),
		shutdown:      sym("nvmlShutdown"),
		errorString:   sym("nvmlErrorString"),
		driverVersion: sym("nvmlSystemGetDriverVersion"),
		count:         sym("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"),
		handle:        sym("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"),
		name:          sym("nvmlDeviceGetName"),
		uuid:          sym("nvmlDeviceGetUUID"),
		memoryInfo:    sym("nvmlDeviceGetMemoryInfo"),
		pci:           sym("nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"),
	}
	for name, p := range map[string]unsafe.Pointer{"nvmlInit": l.init, "nvmlShutdown": l.shutdown, "nvmlErrorString": l.errorString,
		"nvmlDeviceGetCount": l.count, "nvmlDeviceGetHandleByIndex": l.handle} {
		if p == nil {
			return nil, "libnvidia-ml.so.1 lacks " + name
		}
	}
	return l, ""
}

// errorText is NVML's words for r.
func (l *nvmlLib) errorText(r C.nvml_return) string {
	if s := C.nvml_error_string(l.errorString, r); s != nil {
		return C.GoString(s)
	}
	return fmt.Sprintf("NVML error %d", int(r))
}

// discover asks libnvidia-ml for the host's GPUs. No library, no driver
// or no permission is no NVML, with the reason; a failure after that is
// an error naming the call.
func discover(sysfs string) (Discovery, error) {
	l, why := openNVML()
	if l == nil {
		return Discovery{Reason: why}, nil
	}
	if r := C.nvml_call(l.init); r != nvmlSuccess {
		switch r {
		case nvmlErrLibNotFound, nvmlErrDriverNotLoaded, nvmlErrNoPermission:
			return Discovery{Reason: l.errorText(r)}, nil
		}
		return Discovery{Reason: l.errorText(r)}, fmt.Errorf("gpu: nvml init: %s", l.errorText(r))
	}
	defer func() { C.nvml_call(l.shutdown) }()
	d := Discovery{NVML: true}
	if l.driverVersion != nil {
		var buf [nvmlDriverVersionLen]C.char
		if C.nvml_string(l.driverVersion, &buf[0], nvmlDriverVersionLen) == nvmlSuccess {
			d.DriverVersion = C.GoString(&buf[0])
		}
	}
	var n C.uint
	if r := C.nvml_count(l.count, &n); r != nvmlSuccess {
		return d, fmt.Errorf("gpu: nvml device count: %s", l.errorText(r))
	}
	for i := range int(n) {
		var dev C.nvml_device
		if r := C.nvml_handle(l.handle, C.uint(i), &dev); r != nvmlSuccess {
			return d, fmt.Errorf("gpu: nvml device %d: %s", i, l.errorText(r))
		}
		g := Device{Index: i, NUMANode: -1}
		g.Name = l.deviceString(l.name, dev, nvmlNameLen)
		g.UUID = l.deviceString(l.uuid, dev, nvmlUUIDLen)
		if l.memoryInfo != nil {
			var m C.nvml_memory
			if C.nvml_memory_info(l.memoryInfo, dev, &m) == nvmlSuccess {
				g.MemoryBytes = uint64(m.total)
			}
		}
		if l.pci != nil {
			var p C.nvml_pci_info
			if C.nvml_pci(l.pci, dev, &p) == nvmlSuccess {
				g.BusID = normalizeBusID(C.GoString(&p.bus_id[0]))
				g.NUMANode = numaNode(sysfs, g.BusID)
			}
		}
		d.Devices = append(d.Devices, g)
	}
	return d, nil
}

// deviceString calls a device's string getter (name, UUID); "" when the
// library lacks it or it fails.
func (l *nvmlLib) deviceString(f unsafe.Pointer, dev C.nvml_device, size int) string {
	if f == nil {
		return ""
	}
	buf := make([]C.char, size)
	if C.nvml_device_string(f, dev, &buf[0], C.uint(size)) != nvmlSuccess {
		return ""
	}
	return C.GoString(&buf[0])
}
