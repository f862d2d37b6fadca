package shm

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// ringClient writes released ids into a region's ring as a client does.
type ringClient struct{ g *Region }

func (c ringClient) release(ids ...uint64) {
	written := (*atomic.Uint64)(unsafe.Pointer(&c.g.mem[0]))
	w := written.Load()
	for k, id := range ids {
		off := ringFirst + 8*int((w+uint64(k))%ringSlots)
		(*atomic.Uint64)(unsafe.Pointer(&c.g.mem[off])).Store(id)
	}
	written.Store(w + uint64(len(ids)))
}

func TestShmRingReleasesWithoutACall(t *testing.T) {
	reg := New(t.TempDir())
	const size = RingBytes + 1<<20
	g, err := reg.Open(size, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Leases never overlap the ring.
	a, err := g.Alloc(ctx, 600<<10, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.off < RingBytes {
		t.Fatalf("lease at %d overlaps the ring (%d bytes)", a.off, RingBytes)
	}
	// The region is full: the next step's lease waits until the client
	// writes a's id to the ring, with no release call.
	got := make(chan *Lease, 1)
	go func() {
		l, err := g.Alloc(ctx, 600<<10, 0, 2)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("a lease was made while the region was full")
	case <-time.After(5 * ringPoll): // several looks at the ring, with nothing in it
	}
	ringClient{g}.release(a.id)
	b := <-got
	if b == nil || b.off < RingBytes || b.off+b.n > size {
		t.Fatalf("lease after the ring's release: %+v", b)
	}
	if n := reg.leases.Load(); n != 1 {
		t.Fatalf("%d leases held, want 1", n)
	}
	// drain reads the ring too.
	ringClient{g}.release(b.id)
	g.Drain(ctx)
	if ctx.Err() != nil || reg.leases.Load() != 0 {
		t.Fatalf("drain: %v, %d leases held", ctx.Err(), reg.leases.Load())
	}
}

func TestShmRingUntrustedWrites(t *testing.T) {
	reg := New(t.TempDir())
	g, err := reg.Open(RingBytes+1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	l, err := g.Alloc(ctx, 1000, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Ids not held are counted and ignored; a counter far ahead of what
	// the ring holds is read as a full ring, without reading past it.
	ringClient{g}.release(l.id+100, l.id+200)
	(*atomic.Uint64)(unsafe.Pointer(&g.mem[0])).Add(10 * ringSlots)
	if _, err := g.Alloc(ctx, 1000, 0, 1); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	unknown, overruns := g.ringUnknown, g.ringOverruns
	g.mu.Unlock()
	if overruns != 1 || unknown < 2 {
		t.Fatalf("overruns %d (want 1), unknown ids %d (want at least 2)", overruns, unknown)
	}
	if n := reg.leases.Load(); n != 2 {
		t.Fatalf("%d leases held, want 2: a bad ring released what it should not", n)
	}
	if w, r := (*atomic.Uint64)(unsafe.Pointer(&g.mem[0])).Load(), (*atomic.Uint64)(unsafe.Pointer(&g.mem[8])).Load(); r != w {
		t.Fatalf("the server read up to %d of %d", r, w)
	}
}

func TestShmRegionWithoutRing(t *testing.T) {
	reg := New(t.TempDir())
	g, err := reg.Open(1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	l, err := g.Alloc(context.Background(), 1<<20, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.off != 0 {
		t.Fatalf("a region without a ring starts its leases at %d", l.off)
	}
}
