package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-data/stoker/gpu"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/shm"
)

// setupHost probes the host (unless the caller did) and opens the
// shared-memory registry in its shm folder, sweeping regions that dead
// servers left behind.
func (s *Server) setupHost() {
	if s.cfg.Host != nil {
		s.host = *s.cfg.Host
	} else {
		h, err := gpu.Probe()
		if err != nil {
			s.log.Warn("gpu probe", "err", err)
		}
		s.host = h
	}
	dir := s.cfg.Shm.Dir
	if dir == "" {
		dir = s.host.ShmDir
	}
	if dir == "" {
		dir = gpu.ShmDir()
	}
	d := DefaultShmConfig()
	if s.cfg.Shm.RegionBytes <= 0 {
		s.cfg.Shm.RegionBytes = d.RegionBytes
	}
	if s.cfg.Shm.MaxRegionBytes <= 0 {
		s.cfg.Shm.MaxRegionBytes = max(d.MaxRegionBytes, s.cfg.Shm.RegionBytes)
	}
	s.shm = shm.New(dir)
	s.shm.Sweep()
}

// Host returns what the server found on its host at start.
func (s *Server) Host() gpu.Host { return s.host }

// hostStats adds the host and shared-memory figures to a Stats snapshot.
func (s *Server) hostStats(st *stokerv1.StatsResponse) {
	sh := s.shm.Stats()
	st.ShmRegions = uint64(sh.Regions)
	st.ShmRegionBytes = uint64(sh.RegionBytes)
	st.ShmLeases = uint64(sh.Leases)
	st.ShmLeasedBytes = uint64(sh.LeasedBytes)
	st.ShmBytesServed = sh.Served
	st.ShmWaits = sh.Waits
	st.ShmExtentBytes = sh.ExtentBytes
	st.ShmTierBytes = sh.TierBytes
	st.Host = HostProto(s.host)
	st.Host.MemoryRegion = s.region.info
}

// HostProto converts a probe to its message.
func HostProto(h gpu.Host) *stokerv1.HostInfo {
	out := &stokerv1.HostInfo{
		Nvml: h.GPUs.NVML, NvmlReason: h.GPUs.Reason, DriverVersion: h.GPUs.DriverVersion,
		MemlockBytes: h.MemlockBytes, HugePageBytes: h.HugePageBytes, HugePagesFree: h.HugePagesFree,
		Cufile: h.CuFile, CufileReason: h.CuFileReason, ShmDir: h.ShmDir, IpcLock: h.IPCLock,
	}
	for _, n := range h.NUMANodes {
		out.NumaNodes = append(out.NumaNodes, int32(n))
	}
	for _, g := range h.GPUs.Devices {
		out.Gpus = append(out.Gpus, &stokerv1.GpuDevice{Index: uint32(g.Index), Name: g.Name, Uuid: g.UUID,
			MemoryBytes: g.MemoryBytes, PciBusId: g.BusID, NumaNode: int32(g.NUMANode)})
	}
	return out
}

// hostCollector exports the GPUs found and shared-memory delivery.
type hostCollector struct{ s *Server }

var (
	descGPUs        = prometheus.NewDesc("stoker_gpu_info", "A GPU NVML reported (value 1).", []string{"index", "name", "uuid", "pci_bus_id", "numa_node"}, nil)
	descGPUMemory   = prometheus.NewDesc("stoker_gpu_memory_bytes", "Total memory of a GPU.", []string{"index"}, nil)
	descNVML        = desc("nvml_available", "1 when libnvidia-ml was found at start.")
	descCuFile      = desc("cufile_available", "1 when libcufile was found and its driver opened.")
	descShmRegions  = desc("shm_regions", "Shared-memory regions open (one per local stream).")
	descShmBytes    = desc("shm_region_bytes", "Total size of the open shared-memory regions.")
	descShmLeases   = desc("shm_leases", "Shared-memory leases held by clients.")
	descShmLeased   = desc("shm_leased_bytes", "Bytes of the shared-memory leases held by clients.")
	descShmServed   = desc("shm_bytes_served_total", "Sample bytes delivered through shared memory.")
	descShmWaits    = desc("shm_waits_total", "Times a stream waited for a client to release shared memory.")
	descShmTier     = desc("shm_tier_bytes_total", "Sample bytes handed to local clients in place in the shared memory tier (no copy).")
	descShmDetached = desc("shm_detached_regions", "Shared-memory regions kept past their stream for views their client still holds.")
	descShmFallback = desc("shm_fallbacks_total", "Stream messages sent with their bytes in them because a client's held views filled its region.")
	hostDescriptors = []*prometheus.Desc{descGPUs, descGPUMemory, descNVML, descCuFile, descShmRegions, descShmBytes, descShmLeases, descShmLeased, descShmServed, descShmWaits, descShmTier,
		descShmDetached, descShmFallback,
		descRegionBytes, descRegionLocked, descRegionHuge, descRegionNode}
)

func (c *hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range hostDescriptors {
		ch <- d
	}
}

func (c *hostCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.s.host
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, g := range h.GPUs.Devices {
		idx := strconv.Itoa(g.Index)
		gauge(descGPUs, 1, idx, g.Name, g.UUID, g.BusID, strconv.Itoa(g.NUMANode))
		gauge(descGPUMemory, float64(g.MemoryBytes), idx)
	}
	gauge(descNVML, boolValue(h.GPUs.NVML))
	gauge(descCuFile, boolValue(h.CuFile))
	c.s.collectRegion(ch)
	sh := c.s.shm.Stats()
	gauge(descShmRegions, float64(sh.Regions))
	gauge(descShmBytes, float64(sh.RegionBytes))
	gauge(descShmLeases, float64(sh.Leases))
	gauge(descShmLeased, float64(sh.LeasedBytes))
	ch <- prometheus.MustNewConstMetric(descShmServed, prometheus.CounterValue, float64(sh.Served))
	ch <- prometheus.MustNewConstMetric(descShmWaits, prometheus.CounterValue, float64(sh.Waits))
	ch <- prometheus.MustNewConstMetric(descShmTier, prometheus.CounterValue, float64(sh.TierBytes))
	gauge(descShmDetached, float64(sh.Detached))
	ch <- prometheus.MustNewConstMetric(descShmFallback, prometheus.CounterValue, float64(sh.Fallbacks))
}
