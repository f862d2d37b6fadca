package gpu

import (
	"fmt"

	"github.com/dustin/go-humanize"
)

// MemoryRegion says where the memory tier's bytes live.
type MemoryRegion string

const (
	// RegionAuto keeps the memory tier in one mmap'd region outside the Go
	// heap (huge pages when the pool has room), placed on the GPUs' NUMA
	// node when there is a choice, and locked with mlock when NVML finds a
	// GPU to copy to. Without a GPU, locking would only pin the cache's
	// pages for nothing, so they are left unlocked.
	RegionAuto MemoryRegion = "auto"
	// RegionLocked is RegionAuto, locked even without a GPU.
	RegionLocked MemoryRegion = "locked"
	// RegionHeap keeps entries on the Go heap, as fetched.
	RegionHeap MemoryRegion = "heap"
)

// ParseMemoryRegion checks a --memory-region value.
func ParseMemoryRegion(s string) (MemoryRegion, error) {
	switch m := MemoryRegion(s); m {
	case RegionAuto, RegionLocked, RegionHeap:
		return m, nil
	case "":
		return RegionAuto, nil
	}
	return "", fmt.Errorf("unknown memory region %q (want auto, locked or heap)", s)
}

// RegionPlan is what a server does with its memory tier on a host: the
// plan, before any mapping; AllocRegion carries it out.
type RegionPlan struct {
	// Region: one mmap'd region; false: the Go heap.
	Region bool
	// Lock: mlock the region; LockWhy says why, or why not.
	Lock    bool
	LockWhy string
	// Node is the NUMA node to prefer, -1 for none; NodeWhy says why.
	Node    int
	NodeWhy string
	// Share: make the region a file in the shm folder that local clients
	// map, so shared-memory streams hand out the tier's own bytes (no
	// copy); ShareWhy says why, or why not.
	Share    bool
	ShareWhy string
}

// PlanRegion decides, from what the host offers, where a memory tier of
// the given size goes. stokerd (package server) follows it and stoker
// doctor prints it.
func PlanRegion(h Host, mode MemoryRegion, bytes uint64) RegionPlan {
	p := RegionPlan{Node: -1}
	if mode == RegionHeap || bytes == 0 {
		p.LockWhy, p.NodeWhy, p.ShareWhy = "on the Go heap", "on the Go heap", "on the Go heap"
		return p
	}
	p.Region = true
	p.Node, p.NodeWhy = MemoryNode(h.GPUs, h.NUMANodes)
	switch {
	case mode == RegionLocked:
		p.Lock, p.LockWhy = true, "--memory-region locked"
	case len(h.GPUs.Devices) > 0:
		p.Lock, p.LockWhy = true, fmt.Sprintf("%d GPU(s) copy from it by DMA", len(h.GPUs.Devices))
	default:
		p.LockWhy = "no GPU on this host, so no DMA to pin for (--memory-region locked locks anyway)"
	}
	// Sharing is for the same clients as locking: those that copy to a GPU.
	// It allocates the whole region up front, in the shm folder.
	p.Share = p.Lock
	p.ShareWhy = p.LockWhy
	if !p.Share {
		p.ShareWhy = "private: " + p.LockWhy
	}
	if p.Lock && !h.LockableBytes(bytes) {
		p.Lock = false
		p.LockWhy = fmt.Sprintf("the mlock limit %s is under the tier's %s: raise it (ulimit -l, LimitMEMLOCK=) or grant CAP_IPC_LOCK",
			humanize.IBytes(h.MemlockBytes), humanize.IBytes(bytes))
	}
	return p
}
