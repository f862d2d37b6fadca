//go:build cgo

package gpu

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// discover uses go-nvml, which dlopens libnvidia-ml.so.1 at Init: with no
// library Init returns ERROR_LIBRARY_NOT_FOUND, reported as no NVML.
func discover(sysfs string) (Discovery, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		if errors.Is(ret, nvml.ERROR_LIBRARY_NOT_FOUND) || errors.Is(ret, nvml.ERROR_DRIVER_NOT_LOADED) || errors.Is(ret, nvml.ERROR_NO_PERMISSION) {
			return Discovery{Reason: nvml.ErrorString(ret)}, nil
		}
		return Discovery{Reason: nvml.ErrorString(ret)}, fmt.Errorf("gpu: nvml init: %s", nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	d := Discovery{NVML: true}
	if v, ret := nvml.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		d.DriverVersion = v
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return d, fmt.Errorf("gpu: nvml device count: %s", nvml.ErrorString(ret))
	}
	for i := range n {
		dev, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return d, fmt.Errorf("gpu: nvml device %d: %s", i, nvml.ErrorString(ret))
		}
		g := Device{Index: i, NUMANode: -1}
		g.Name, _ = dev.GetName()
		g.UUID, _ = dev.GetUUID()
		if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryBytes = m.Total
		}
		if p, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
			b := make([]byte, 0, len(p.BusId))
			for _, c := range p.BusId {
				if c == 0 {
					break
				}
				b = append(b, byte(c))
			}
			g.BusID = normalizeBusID(string(b))
			g.NUMANode = numaNode(sysfs, g.BusID)
		}
		d.Devices = append(d.Devices, g)
	}
	return d, nil
}
