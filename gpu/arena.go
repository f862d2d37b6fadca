package gpu

import (
	"fmt"
	"sync"
)

// Arena hands out byte slices of a Pinned region to the memory tier: a
// first-fit allocator over free extents, each aligned to Align bytes, with
// neighbours merged on Free. Safe for concurrent use.
type Arena struct {
	region *Pinned
	align  int

	mu   sync.Mutex // guards free and used
	free []extent   // sorted by offset, never adjacent
	used int
}

type extent struct{ off, n int }

// Align is the alignment of every allocation: 4 KiB, what O_DIRECT and
// cuFile want.
const Align = 4096

// NewArena carves allocations out of region; the caller closes the region
// after the arena's last use.
func NewArena(region *Pinned) *Arena {
	b := region.Bytes()
	return &Arena{region: region, align: Align, free: []extent{{0, cap(b) / Align * Align}}}
}

// Alloc returns n bytes of the region, or false when no free extent is big
// enough (the caller evicts and retries, or uses the Go heap).
func (a *Arena) Alloc(n int) ([]byte, bool) {
	if n <= 0 {
		return nil, false
	}
	size := roundUp(n, a.align)
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, e := range a.free {
		if e.n < size {
			continue
		}
		if e.n == size {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = extent{e.off + size, e.n - size}
		}
		a.used += size
		b := a.region.Bytes()[e.off : e.off+n : e.off+size]
		return b, true
	}
	return nil, false
}

// Free returns b, which Alloc gave, to the arena. Freeing anything else,
// or twice, panics: it would hand the same bytes to two owners.
func (a *Arena) Free(b []byte) {
	off := a.offset(b)
	size := cap(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	i := 0
	for i < len(a.free) && a.free[i].off < off {
		i++
	}
	if (i > 0 && a.free[i-1].off+a.free[i-1].n > off) || (i < len(a.free) && off+size > a.free[i].off) {
		panic(fmt.Sprintf("gpu: arena free of [%d,%d) overlaps free space", off, off+size))
	}
	a.free = append(a.free, extent{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = extent{off, size}
	if i+1 < len(a.free) && a.free[i].off+a.free[i].n == a.free[i+1].off {
		a.free[i].n += a.free[i+1].n
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == a.free[i].off {
		a.free[i-1].n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	a.used -= size
}

// Used is the bytes allocated now, in whole aligned extents.
func (a *Arena) Used() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}

// offset finds b's place in the region, panicking when b is not from it.
func (a *Arena) offset(b []byte) int {
	base := a.region.Bytes()
	if cap(b) == 0 || cap(b)%a.align != 0 {
		panic("gpu: arena free of a slice it did not allocate")
	}
	// Compare addresses through the slices' first elements.
	off := int(uintptrOf(&b[:1][0])) - int(uintptrOf(&base[:1][0]))
	if off < 0 || off+cap(b) > cap(base) || off%a.align != 0 {
		panic("gpu: arena free of a slice it did not allocate")
	}
	return off
}
