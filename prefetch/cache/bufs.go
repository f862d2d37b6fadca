package cache

import "sync"

// Range reads from the disk tier read into buffers that their Ref hands
// back at Release, for the next read to reuse. A stream reads sample after
// sample; a fresh buffer for each made the garbage collector run every few
// dozen samples when the live heap is small, as it is with the memory
// tier in a pinned region (see BenchmarkDiskTierSample).
const (
	minPooled   = 4 << 10 // the smallest buffer kept
	poolClasses = 11      // sizes kept: minPooled to minPooled<<10 (4 MiB); larger are not kept
)

// bufPool recycles buffers by size: class i holds buffers of minPooled<<i
// bytes. Safe for concurrent use.
type bufPool struct {
	classes [poolClasses]sync.Pool
}

// get returns a buffer of at least n bytes, to be handed back with put.
func (p *bufPool) get(n int64) *[]byte {
	i := poolClass(n)
	if i < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[i].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, minPooled<<i)
	return &b
}

// put hands back a buffer get returned; its bytes may then be reused at
// once.
func (p *bufPool) put(b *[]byte) {
	n := int64(len(*b))
	if i := poolClass(n); i >= 0 && minPooled<<i == n {
		p.classes[i].Put(b)
	}
}

// poolClass is the class of buffers that holds n bytes, or -1 when no
// class does.
func poolClass(n int64) int {
	for i := range poolClasses {
		if n <= minPooled<<i {
			return i
		}
	}
	return -1
}
