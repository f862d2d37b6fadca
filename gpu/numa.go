package gpu

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory policy modes and get_mempolicy flags from <linux/mempolicy.h>;
// golang.org/x/sys/unix has the syscall numbers but not these.
const (
	mpolPreferred = 1 // MPOL_PREFERRED
	mpolFNode     = 1 << 0
	mpolFAddr     = 1 << 1
)

// maxNUMANode bounds the node a caller may ask for: the kernel reads at
// most a page of nodemask bits (32768) and supports far fewer nodes, so a
// larger id is refused here instead of allocating a mask for it.
const maxNUMANode = 1 << 15

// errPageNotTouched is PageNode's answer for a page no one has written:
// asking the kernel would fault in the shared zero page and report its
// node, not the node the page will get.
var errPageNotTouched = errors.New("page not touched yet")

// bindNode sets the policy of the mapping b (page-aligned, no pages
// faulted in yet) to prefer node: every page faulted in later, by mlock
// or the first write, comes from that node while it has free memory.
//
// MPOL_PREFERRED rather than MPOL_BIND: under BIND a full node makes mlock
// fail, or a later fault kill the process (SIGBUS on a huge page, the OOM
// killer otherwise); a tier spilling onto the other socket is slower, not
// broken, and PageNode shows where the pages went.
func bindNode(b []byte, node int) error {
	if node < 0 || node >= maxNUMANode {
		return fmt.Errorf("gpu: bind region to NUMA node %d: out of range", node)
	}
	mask := make([]uint64, node/64+1)
	mask[node/64] = 1 << (node % 64)
	// maxnode counts one more bit than the mask holds: the kernel reads
	// maxnode-1 bits (libnuma passes the same).
	maxnode := uintptr(len(mask)*64 + 1)
	b = b[:cap(b)]
	_, _, e := unix.Syscall6(unix.SYS_MBIND,
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		mpolPreferred, uintptr(unsafe.Pointer(unsafe.SliceData(mask))), maxnode, 0)
	if e != 0 {
		return fmt.Errorf("gpu: mbind %d bytes to NUMA node %d: %w", len(b), node, e)
	}
	return nil
}

// pageNode asks the kernel which NUMA node holds the first page of b, a
// mapping: get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR). A page not yet faulted
// in is an error (see errPageNotTouched), checked with mincore first.
func pageNode(b []byte) (int, error) {
	if cap(b) == 0 {
		return -1, errors.New("gpu: page node of an empty or closed region")
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	var vec [1]byte
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr, 1, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return -1, fmt.Errorf("gpu: mincore: %w", e)
	}
	if vec[0]&1 == 0 {
		return -1, fmt.Errorf("gpu: page node: %w", errPageNotTouched)
	}
	var node int32
	if _, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY,
		uintptr(unsafe.Pointer(&node)), 0, 0, addr, mpolFNode|mpolFAddr, 0); e != 0 {
		return -1, fmt.Errorf("gpu: get_mempolicy: %w", e)
	}
	return int(node), nil
}

// PageNode is the NUMA node that holds the region's first page, as the
// kernel reports it: the check that placement took (under MPOL_PREFERRED
// a full node sends pages elsewhere). It is an error when the page was
// never touched (the region is not Locked and nothing has written it yet)
// or the kernel has no NUMA support, and after Close; it must not race
// with Close.
func (p *Pinned) PageNode() (int, error) { return pageNode(p.mem) }
