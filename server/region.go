package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stoker-data/stoker/gpu"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// memoryRegion is the server's memory-tier region, when it has one.
type memoryRegion struct {
	pinned *gpu.Pinned // nil: the Go heap, or a caller-supplied Allocator
	info   *stokerv1.MemoryRegion
}

// setupMemoryRegion maps the memory tier's region, as gpu.PlanRegion says,
// and gives the cache an arena over it. A caller-supplied Cache.Memory is
// used as it is. A region that cannot be mapped leaves the tier on the
// heap, with a warning.
func (s *Server) setupMemoryRegion() {
	c := &s.cfg.Cache
	info := &stokerv1.MemoryRegion{NumaNode: -1}
	s.region = memoryRegion{info: info}
	switch {
	case c.MemoryBytes == 0:
		info.Reason = "no memory tier"
		return
	case c.Memory != nil:
		info.Region, info.Bytes, info.Reason = true, uint64(c.MemoryBytes), "supplied by the caller"
		return
	}
	p := gpu.PlanRegion(s.host, s.cfg.MemoryRegion, uint64(c.MemoryBytes))
	info.LockReason, info.NumaReason = p.LockWhy, p.NodeWhy
	if !p.Region {
		info.Reason = "--memory-region heap"
		s.log.Info("memory tier: on the Go heap", "bytes", c.MemoryBytes)
		return
	}
	opt := gpu.RegionOptions{Node: p.Node, Lock: p.Lock}
	info.ShareReason = p.ShareWhy
	var r *gpu.Pinned
	var err error
	if p.Share {
		opt.Path = filepath.Join(s.shm.Dir(), fmt.Sprintf("stoker-%d-tier.shm", os.Getpid()))
		// A file by this name is an earlier stokerd's that had our pid (a
		// restarted container keeps its shm folder and its pid 1); clients
		// that map it keep their mapping.
		if err := os.Remove(opt.Path); err == nil {
			s.log.Info("memory tier: removed a tier file left by an earlier stokerd with this pid", "file", opt.Path)
		}
		if r, err = gpu.AllocRegion(int(c.MemoryBytes), opt); err != nil {
			info.ShareReason = "private: " + err.Error()
			s.log.Warn("memory tier: cannot share its region (is the shm folder big enough?); keeping it private", "err", err)
			opt.Path = ""
		}
	}
	if r == nil {
		if r, err = gpu.AllocRegion(int(c.MemoryBytes), opt); err != nil {
			info.Reason = err.Error()
			s.log.Warn("memory tier: cannot map its region; using the Go heap", "err", err)
			return
		}
	}
	info.SharedPath = r.Path
	s.region.pinned = r
	c.Memory = gpu.NewArena(r)
	info.Region, info.Bytes, info.Locked, info.HugePages, info.NumaNode = true, uint64(c.MemoryBytes), r.Locked, r.HugePages, int32(r.Node)
	if r.LockErr != nil {
		info.LockReason = r.LockErr.Error()
	}
	if r.NodeErr != nil {
		info.NumaReason = r.NodeErr.Error()
	}
	level := s.log.Info
	if (p.Lock && !r.Locked) || (p.Node >= 0 && r.Node < 0) {
		level = s.log.Warn
	}
	level("memory tier: one mapped region", "bytes", humanize.IBytes(uint64(c.MemoryBytes)), "huge_pages", r.HugePages,
		"locked", r.Locked, "lock", info.LockReason, "numa_node", r.Node, "numa", info.NumaReason, "shared", r.Path, "share", info.ShareReason)
}

// closeMemoryRegion unmaps the region once the cache, closed, has no Refs
// left; if ctx ends first the region stays mapped (a held Ref may still be
// read), which only a process about to exit should see.
func (s *Server) closeMemoryRegion(ctx context.Context) {
	if s.region.pinned == nil {
		return
	}
	select {
	case <-s.cache.Drained():
		_ = s.region.pinned.Close()
	case <-ctx.Done():
		s.log.Warn("memory tier: entries still referenced at shutdown; its region stays mapped")
	}
}

// closeRegionNow unmaps the region of a cache that was never opened.
func (s *Server) closeRegionNow() {
	if s.region.pinned != nil {
		_ = s.region.pinned.Close()
	}
}

var (
	descRegionBytes  = desc("memory_region_bytes", "Size of the memory tier's mapped region (0: on the Go heap).")
	descRegionLocked = desc("memory_region_locked", "1 when the memory tier's region is locked in RAM (mlock).")
	descRegionHuge   = desc("memory_region_huge_pages", "1 when the memory tier's region is backed by huge pages.")
	descRegionNode   = desc("memory_region_numa_node", "NUMA node the memory tier's region prefers (-1: none).")
)

// collectRegion exports the region's facts.
func (s *Server) collectRegion(ch chan<- prometheus.Metric) {
	info := s.region.info
	size := float64(0)
	if info.GetRegion() {
		size = float64(info.GetBytes())
	}
	for d, v := range map[*prometheus.Desc]float64{
		descRegionBytes: size, descRegionLocked: boolValue(info.GetLocked()), descRegionHuge: boolValue(info.GetHugePages()), descRegionNode: float64(info.GetNumaNode()),
	} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
}
