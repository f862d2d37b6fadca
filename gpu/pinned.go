package gpu

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Pinned is one anonymous mmap'd region of host memory: huge pages when
// the pool has room, else normal pages advised toward transparent huge
// pages, placed on a NUMA node when asked, locked with mlock when
// RLIMIT_MEMLOCK allows. A client may register it with CUDA
// (cudaHostRegister) so copies to the GPU are DMA. Bytes stays valid until
// Close; Close is idempotent.
type Pinned struct {
	mem []byte
	// HugePages says whether the region is backed by explicit huge pages.
	HugePages bool
	// Locked says whether mlock succeeded; LockErr says why not.
	Locked  bool
	LockErr error
	// Path is the region's file when it is shared (RegionOptions.Path).
	Path string
	// Node is the NUMA node the region prefers (mbind MPOL_PREFERRED), -1
	// when no node was asked for or binding failed; NodeErr says why it
	// failed. PageNode tells where the pages actually are.
	Node    int
	NodeErr error

	once sync.Once
	err  error
}

// AllocPinned maps n bytes with no NUMA placement: AllocPinnedOn(n, -1).
func AllocPinned(n int) (*Pinned, error) { return AllocPinnedOn(n, -1) }

// AllocPinnedOn maps n bytes (rounded up to the page, or huge page, size)
// preferring NUMA node node, or anywhere when node < 0. The node is bound
// before mlock faults the pages in, so they land on it. Failing to bind
// (no such node, a kernel without NUMA, a seccomp filter refusing mbind)
// is not an error: the region is returned with Node -1 and NodeErr set.
func AllocPinnedOn(n int, node int) (*Pinned, error) {
	return AllocRegion(n, RegionOptions{Node: node, Lock: true})
}

// RegionOptions shape a region.
type RegionOptions struct {
	// Node is the NUMA node to prefer; -1 for none.
	Node int
	// Lock asks for mlock, which faults every page in at once and keeps
	// them resident; without it pages are faulted in as first written and
	// the region is not pinned (Locked false, LockErr nil).
	Lock bool
	// Path, when set, makes the region a file there (under /dev/shm) mapped
	// shared, for other processes on the host to map too; its pages are
	// allocated up front (fallocate), so a full folder is an error now, not
	// a SIGBUS later. Close removes the file. No explicit huge pages then.
	Path string
}

// AllocRegion maps n bytes as AllocPinnedOn does, locking them only when
// opt.Lock is set.
func AllocRegion(n int, opt RegionOptions) (*Pinned, error) {
	node := opt.Node
	if n <= 0 {
		return nil, fmt.Errorf("gpu: pinned region of %d bytes", n)
	}
	p := &Pinned{Node: -1}
	var file *os.File // a shared region's, until its pages are allocated
	if opt.Path != "" {
		mem, f, err := mapFile(opt.Path, roundUp(n, unix.Getpagesize()))
		if err != nil {
			return nil, err
		}
		defer f.Close() // the mapping outlives the descriptor
		p.mem, p.Path, file = mem, opt.Path, f
	}
	if hp, free := hugePages("/proc/meminfo"); p.mem == nil && hp > 0 && free*hp >= uint64(n) {
		size := roundUp(n, int(hp))
		if mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB); err == nil {
			p.mem, p.HugePages = mem, true
		}
	}
	if p.mem == nil {
		mem, err := unix.Mmap(-1, 0, roundUp(n, unix.Getpagesize()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, fmt.Errorf("gpu: mmap pinned region of %d bytes: %w", n, err)
		}
		_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // a hint; kernels without THP refuse it
		p.mem = mem
	}
	if node >= 0 {
		if err := bindNode(p.mem, node); err != nil {
			p.NodeErr = err
		} else {
			p.Node = node
		}
	}
	if file != nil { // after mbind: the pages are allocated on the node
		if err := unix.Fallocate(int(file.Fd()), 0, 0, int64(len(p.mem))); err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("gpu: allocate shared region %s of %d bytes: %w", opt.Path, len(p.mem), err)
		}
	}
	if opt.Lock {
		if err := unix.Mlock(p.mem); err != nil {
			p.LockErr = fmt.Errorf("gpu: mlock %d bytes (raise RLIMIT_MEMLOCK, e.g. ulimit -l unlimited): %w", len(p.mem), err)
		} else {
			p.Locked = true
		}
	}
	p.mem = p.mem[:n:len(p.mem)]
	return p, nil
}

// mapFile creates path, sized, and maps it shared; the caller allocates
// its pages and closes the file.
func mapFile(path string, size int) ([]byte, *os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("gpu: create shared region: %w", err)
	}
	fail := func(err error) ([]byte, *os.File, error) {
		f.Close()
		_ = os.Remove(path)
		return nil, nil, fmt.Errorf("gpu: shared region %s of %d bytes: %w", path, size, err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		return fail(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	return mem, f, nil
}

// Bytes is the region.
func (p *Pinned) Bytes() []byte { return p.mem }

// Close unmaps the region.
func (p *Pinned) Close() error {
	p.once.Do(func() {
		if p.mem != nil {
			p.err = unix.Munmap(p.mem[:cap(p.mem)])
			p.mem = nil
			if p.Path != "" {
				_ = os.Remove(p.Path)
			}
		}
	})
	return p.err
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
