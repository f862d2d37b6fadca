package shm

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// consume sets the ring's consumed counter as a client that holds views
// does: steps before step are the client's.
func (c ringClient) consume(step uint64) {
	(*atomic.Uint64)(unsafe.Pointer(&c.g.mem[16])).Store(step)
}

// openRing makes a region of RingBytes+size bytes with a release ring.
func openRing(t *testing.T, reg *Registry, size int) *Region {
	t.Helper()
	g, err := reg.Open(RingBytes+size, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// TestRegionAllocatesAroundHeld: a lease the client keeps as a view
// (its step consumed, never released) is stepped around, its bytes never
// reused, however many leases come after it.
func TestRegionAllocatesAroundHeld(t *testing.T) {
	const k = 64 << 10
	reg := New(t.TempDir())
	g := openRing(t, reg, 4*k)
	c := ringClient{g}
	a := alloc(t, g, k, 1)
	copy(g.Bytes(a), "kept")
	c.consume(2) // step 1 is the client's: a is a view it keeps
	prev := a
	for step := uint64(2); step < 40; step++ {
		l := alloc(t, g, k+k/2, step) // 1.5k: a's k and two of these do not fit 4k
		if l.off < a.off+a.n && a.off < l.off+l.n {
			t.Fatalf("step %d: lease [%d,+%d) over the held [%d,+%d)", step, l.off, l.n, a.off, a.n)
		}
		if prev != a { // a stays
			c.release(prev.id)
		}
		c.consume(step + 1)
		prev = l
	}
	if string(g.Bytes(a)[:4]) != "kept" {
		t.Fatalf("held lease overwritten: %q", g.Bytes(a)[:4])
	}
	if b, _ := g.Held(); b != k+k+k/2 { // reads the ring: a and the last step are held
		t.Fatalf("%d bytes held, want a's and the last's %d", b, k+k+k/2)
	}
	if s := reg.Stats(); s.Waits != 0 || s.Leases != 2 {
		t.Fatalf("%d waits, %d leases (want 0 and 2: a and the last)", s.Waits, s.Leases)
	}
}

// TestRegionHeldFallsBack: a lease that only the release of views could
// make room for, or that would wait while views hold over half the
// region, is ErrHeld at once; one that leases in flight may make room
// for waits for them.
func TestRegionHeldFallsBack(t *testing.T) {
	const k = 64 << 10
	reg := New(t.TempDir())
	g := openRing(t, reg, 4*k)
	c := ringClient{g}
	a := alloc(t, g, k, 1)
	b := alloc(t, g, 2*k, 2)
	c.consume(2) // a held, b in flight
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// b's release would make room: it waits (here: ctx has ended).
	if _, err := g.Alloc(ctx, 2*k, 0, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("alloc that b's release would fit: %v, want a wait", err)
	}
	// 3.5k fits only without a: ErrHeld, not a wait.
	if _, err := g.Alloc(context.Background(), 3*k+k/2, 0, 3); !errors.Is(err, ErrHeld) {
		t.Fatalf("alloc only a's release would fit: %v, want ErrHeld", err)
	}
	// The step's own leases and the held one fill the region: ErrHeld,
	// where without held views it would be ErrTooBig.
	c.consume(3) // b held as well: 3k of 4k held, over half
	if _, err := g.Alloc(context.Background(), 2*k, 0, 3); !errors.Is(err, ErrHeld) {
		t.Fatalf("alloc with 3k of 4k held: %v, want ErrHeld", err)
	}
	if s := reg.Stats(); s.Waits != 1 {
		t.Fatalf("%d waits, want the one of the first alloc", s.Waits)
	}
	// The views go: room again.
	c.release(a.id, b.id)
	alloc(t, g, 4*k, 3)
	if s := reg.Stats(); s.Leases != 1 || s.LeasedBytes != 4*k {
		t.Fatalf("after the views went: %d leases of %d bytes", s.Leases, s.LeasedBytes)
	}
}

// TestRegionPinsHeld: tier fields held by views count towards the pin
// bound, and a lease whose pins only their release could allow is
// ErrHeld, not a wait.
func TestRegionPinsHeld(t *testing.T) {
	const k = 64 << 10
	reg := New(t.TempDir())
	g := openRing(t, reg, 4*k)
	c := ringClient{g}
	if _, err := g.Alloc(context.Background(), 0, 3*k, 1); err != nil {
		t.Fatal(err)
	}
	c.consume(2)
	if b, p := g.Held(); b != 0 || p != 3*k {
		t.Fatalf("held %d bytes, %d pinned; want 0 and %d", b, p, 3*k)
	}
	if _, err := g.Alloc(context.Background(), 0, 2*k, 2); !errors.Is(err, ErrHeld) {
		t.Fatalf("pins past the bound with views holding the rest: %v, want ErrHeld", err)
	}
}

// TestRegionDetach: a region whose stream ended while the client holds
// views stays open (file, leases) until the client releases them, or
// until no process holds its file's lock.
func TestRegionDetach(t *testing.T) {
	reg := New(t.TempDir())
	wait := func(done <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: region not closed", what)
		}
	}
	for _, how := range []string{"released", "client gone", "registry closed"} {
		g := openRing(t, reg, 1<<20)
		c := ringClient{g}
		l := alloc(t, g, 1000, 1)
		c.consume(2)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.Drain(ctx) // held views only: returns
		waited := ctx.Err() != nil
		cancel()
		if waited {
			t.Fatalf("%s: Drain waited for a held view", how)
		}
		f, err := os.Open(g.Path()) // the client's lock
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var kept int64 = -1
		g.Detach(func(k int64) { kept = k }, func() { close(done) })
		if page := int64(os.Getpagesize()); kept != RingBytes+page {
			t.Fatalf("%s: Detach kept %d bytes, want the ring and one page", how, kept)
		}
		if s := reg.Stats(); s.Detached != 1 || s.Leases != 1 || reg.Get(g.ID()) != g {
			t.Fatalf("%s: detached region: %+v", how, s)
		}
		switch how {
		case "released":
			c.release(l.id)
		case "client gone":
			f.Close()
		case "registry closed":
			reg.Close()
		}
		wait(done, how)
		f.Close()
		if s := reg.Stats(); s.Detached != 0 || s.Leases != 0 || reg.Get(g.ID()) != nil {
			t.Fatalf("%s: after the reap: %+v", how, s)
		}
		if _, err := os.Stat(g.Path()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: region file after the reap: %v", how, err)
		}
	}
	// No lock held (a client that never mapped it, or an old one): closed at once.
	reg = New(t.TempDir())
	g := openRing(t, reg, 1<<20)
	alloc(t, g, 1000, 1)
	closed := false
	g.Detach(func(int64) { t.Fatal("kept a region no client locks") }, func() { closed = true })
	if !closed || reg.Count() != 0 {
		t.Fatalf("a region no client locks: closed %v, %d open", closed, reg.Count())
	}
}

// FuzzRegionAlloc runs orders of allocs, ring releases and consumed
// counters (what a client writes is untrusted) and checks that live
// leases never overlap nor leave the region, the figures add up, and an
// alloc only waits when a lease in flight (not the step's own, not a
// held view) could make room: a client holding views never deadlocks a
// stream.
func FuzzRegionAlloc(f *testing.F) {
	f.Add([]byte{1, 10, 1, 20, 2, 0, 3, 2, 1, 30, 1, 40, 2, 1})
	f.Add([]byte{1, 255, 3, 5, 1, 200, 1, 100, 2, 0, 2, 1, 1, 250})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const unit = 4 << 10
		reg := New(t.TempDir())
		g, err := reg.Open(RingBytes+64*unit, true)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		c := ringClient{g}
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		var live []*Lease
		step := uint64(1)
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%4, uint64(ops[i+1])
			switch op {
			case 0, 1: // alloc arg/4 units (0..63), op 1 of a new step
				if op == 1 {
					step++
				}
				n := int(arg%64) * unit
				l, err := g.Alloc(ended, n, int64(arg%3)*unit, step)
				switch {
				case err == nil:
					live = append(live, l)
				case errors.Is(err, context.Canceled):
					g.mu.Lock()
					inFlight := false
					for _, o := range g.order {
						if o.step != step && !g.heldLocked(o) {
							inFlight = true
						}
					}
					g.mu.Unlock()
					if !inFlight {
						t.Fatalf("alloc of %d bytes for step %d waited with nothing in flight", n, step)
					}
				case errors.Is(err, ErrHeld), errors.Is(err, ErrTooBig):
				default:
					t.Fatal(err)
				}
			case 2: // release the arg-th live lease through the ring
				if len(live) > 0 {
					k := int(arg) % len(live)
					c.release(live[k].id)
					live = append(live[:k], live[k+1:]...)
				}
			case 3: // the client says it has steps before arg whole
				c.consume(arg)
			}
			g.mu.Lock()
			g.readRingLocked()
			var sum int64
			for j, l := range g.order {
				if l.off < g.ring || l.off+l.n > len(g.mem) {
					t.Fatalf("lease [%d,+%d) outside the region", l.off, l.n)
				}
				if j > 0 && g.order[j-1].off+g.order[j-1].n > l.off {
					t.Fatalf("leases overlap: [%d,+%d) and [%d,+%d)", g.order[j-1].off, g.order[j-1].n, l.off, l.n)
				}
				sum += int64(l.n)
			}
			n := len(g.order)
			g.mu.Unlock()
			if s := reg.Stats(); s.Leases != int64(n) || s.LeasedBytes != sum || n != len(live) {
				t.Fatalf("figures %+v, %d leases of %d bytes live, %d handed out", s, n, sum, len(live))
			}
		}
	})
}

// TestRegionDetachGivesBackFreePages: a detached region keeps only the
// pages of the leases still held (on tmpfs, where pages can be punched
// out of the file).
func TestRegionDetachGivesBackFreePages(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "stoker-shm-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	reg := New(dir)
	defer reg.Close()
	g := openRing(t, reg, 1<<20)
	c := ringClient{g}
	a, b := alloc(t, g, 256<<10, 1), alloc(t, g, 256<<10, 2)
	for i := range g.mem[RingBytes:] {
		g.mem[RingBytes+i] = 0xAA
	}
	c.consume(2) // a held; b released
	c.release(b.id)
	f, err := os.Open(g.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	var st0 unix.Stat_t
	_ = unix.Fstat(int(f.Fd()), &st0)
	var kept int64
	g.Detach(func(k int64) { kept = k }, func() {})
	if kept != RingBytes+256<<10 {
		t.Fatalf("kept %d bytes, want the ring and a's %d", kept, RingBytes+256<<10)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if got, want := st.Blocks*512, int64(RingBytes+256<<10); got > want {
		t.Fatalf("the file holds %d bytes after Detach (%d before), want at most %d", got, st0.Blocks*512, want)
	}
	if g.Bytes(a)[0] != 0xAA || g.Bytes(a)[a.Len()-1] != 0xAA {
		t.Fatal("the held lease's bytes were punched out")
	}
}
