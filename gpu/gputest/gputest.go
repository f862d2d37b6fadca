// Package gputest has test helpers for code that keeps data in gpu
// regions. It imports only gpu of Stoker.
package gputest

import (
	"testing"

	"github.com/stoker-data/stoker/gpu"
)

// PoisonArena is a real gpu.Arena that overwrites what is freed with 0xDB,
// so that bytes read after their owner freed them show up as wrong bytes
// rather than as the right bytes by luck.
type PoisonArena struct{ *gpu.Arena }

// Free poisons b, up to its capacity, and frees it.
func (p PoisonArena) Free(b []byte) {
	full := b[:cap(b)]
	for i := range full {
		full[i] = 0xDB
	}
	p.Arena.Free(b)
}

// NewPoisonRegion maps an unlocked region of n bytes, closed when the test
// ends (after the cleanups registered later, such as a server's
// shutdown), and returns it with a PoisonArena over it.
func NewPoisonRegion(tb testing.TB, n int) (*gpu.Pinned, PoisonArena) {
	tb.Helper()
	region, err := gpu.AllocRegion(n, gpu.RegionOptions{Node: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { region.Close() })
	return region, PoisonArena{gpu.NewArena(region)}
}
