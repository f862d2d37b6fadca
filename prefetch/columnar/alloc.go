package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// capAllocator is Go's allocator with a bound on any one allocation. The
// decoders size buffers by lengths read from the file (an IPC buffer's
// uncompressed length, a Parquet page's): a corrupt length must fail, not
// allocate gigabytes. Over the bound it panics, and the decoders' recover
// turns that into an *Error.
type capAllocator struct {
	memory.GoAllocator
	limit int
}

// allocFor returns the allocator for decoding a unit of n bytes: up to
// 1024 times its size in one buffer, and at least 64 MiB.
func allocFor(n int) *capAllocator {
	return &capAllocator{limit: max(64<<20, n*1024)}
}

func (a *capAllocator) check(n int) {
	if n > a.limit {
		panic(fmt.Sprintf("a buffer of %d bytes, over the %d this unit's size allows", n, a.limit))
	}
}

func (a *capAllocator) Allocate(n int) []byte {
	a.check(n)
	return a.GoAllocator.Allocate(n)
}

func (a *capAllocator) Reallocate(n int, b []byte) []byte {
	a.check(n)
	return a.GoAllocator.Reallocate(n, b)
}
