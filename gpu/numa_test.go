package gpu

import (
	"errors"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// regionPolicy reads the memory policy of the mapping holding b's first
// byte: get_mempolicy(MPOL_F_ADDR), the mode and the nodes in its mask.
func regionPolicy(t *testing.T, b []byte) (mode int, nodes []int) {
	t.Helper()
	var m int32
	mask := make([]uint64, 64) // 4096 nodes, more than any kernel's nr_node_ids
	if _, _, e := unix.Syscall6(unix.SYS_GET_MEMPOLICY, uintptr(unsafe.Pointer(&m)),
		uintptr(unsafe.Pointer(&mask[0])), uintptr(len(mask)*64),
		uintptr(unsafe.Pointer(&b[0])), mpolFAddr, 0); e != 0 {
		t.Fatalf("get_mempolicy: %v", e)
	}
	for i := range len(mask) * 64 {
		if mask[i/64]&(1<<(i%64)) != 0 {
			nodes = append(nodes, i)
		}
	}
	return int(m), nodes
}

// skipWithoutNUMA skips when the host (or a seccomp filter, as Docker's
// default one without CAP_SYS_NICE) gives no NUMA syscalls.
func skipWithoutNUMA(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("no NUMA syscalls here: %v", err)
	}
}

// fill writes every byte of b and checks one.
func fill(t *testing.T, b []byte) {
	t.Helper()
	for i := range b {
		b[i] = byte(i * 13)
	}
	if b[len(b)-1] != byte((len(b)-1)*13) {
		t.Fatal("region did not keep a write")
	}
}

func TestAllocPinnedOnPlacesPages(t *testing.T) {
	nodes := hostNUMANodes(SysfsRoot)
	if len(nodes) == 0 {
		t.Skip("no NUMA nodes in sysfs")
	}
	node := slices.Min(nodes)
	p, err := AllocPinnedOn(2<<20+5, node)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	skipWithoutNUMA(t, p.NodeErr)
	if p.NodeErr != nil || p.Node != node {
		t.Fatalf("node %d, err %v; want node %d", p.Node, p.NodeErr, node)
	}
	if mode, got := regionPolicy(t, p.Bytes()); mode != mpolPreferred || !slices.Equal(got, []int{node}) {
		t.Fatalf("region policy mode %d nodes %v; want MPOL_PREFERRED on [%d]", mode, got, node)
	}
	fill(t, p.Bytes())
	if got, err := p.PageNode(); err != nil || got != node {
		t.Fatalf("PageNode = %d, %v; want %d", got, err, node)
	}
	t.Logf("node %d, huge pages %v, locked %v (%v)", p.Node, p.HugePages, p.Locked, p.LockErr)
}

// TestAllocPinnedOnMissingNode asks for nodes the host lacks: placement
// fails into NodeErr, and the region is still a working region.
func TestAllocPinnedOnMissingNode(t *testing.T) {
	past := 0
	if nodes := hostNUMANodes(SysfsRoot); len(nodes) > 0 {
		past = slices.Max(nodes) + 1
	}
	for _, node := range []int{past, 4095, maxNUMANode, 1 << 30} {
		p, err := AllocPinnedOn(3*Align+1, node)
		if err != nil {
			t.Fatalf("node %d: %v", node, err)
		}
		skipWithoutNUMA(t, p.NodeErr)
		if p.NodeErr == nil || p.Node != -1 {
			t.Fatalf("node %d: placed on %d with no error", node, p.Node)
		}
		if !p.Locked && p.LockErr == nil {
			t.Fatalf("node %d: not locked and no reason", node)
		}
		fill(t, p.Bytes())
		if _, err := p.PageNode(); err != nil {
			skipWithoutNUMA(t, err)
			t.Fatalf("node %d: PageNode of a written page: %v", node, err)
		}
		t.Logf("node %d: %v", node, p.NodeErr)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAllocPinnedHasNoNode(t *testing.T) {
	p, err := AllocPinned(Align)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Node != -1 || p.NodeErr != nil {
		t.Fatalf("node %d, err %v; want -1 and no error", p.Node, p.NodeErr)
	}
}

// TestPageNodeOfUntouchedPage uses a mapping that is neither locked nor
// written: PageNode must say so rather than report the zero page's node.
func TestPageNodeOfUntouchedPage(t *testing.T) {
	b, err := unix.Mmap(-1, 0, 2*unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(b) }()
	if _, err := pageNode(b); !errors.Is(err, errPageNotTouched) {
		t.Fatalf("untouched page: %v, want errPageNotTouched", err)
	}
	b[0] = 1
	n, err := pageNode(b)
	skipWithoutNUMA(t, err)
	if err != nil || n < 0 {
		t.Fatalf("written page: node %d, %v", n, err)
	}
	if _, err := pageNode(nil); err == nil {
		t.Fatal("page node of no region succeeded")
	}
}

func TestPageNodeAfterClose(t *testing.T) {
	p, err := AllocPinned(Align)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PageNode(); err == nil {
		t.Fatal("PageNode after Close succeeded")
	}
}
