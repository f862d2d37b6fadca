package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// open makes a region of size bytes without a ring, closed at the end.
func open(t *testing.T, reg *Registry, size int) *Region {
	t.Helper()
	g, err := reg.Open(size, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// alloc leases n bytes that must be free: a lease that waits fails the
// test (after a hang guard) instead of hanging it.
func alloc(t *testing.T, g *Region, n int, step uint64) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := g.Alloc(ctx, n, 0, step)
	if err != nil {
		t.Fatalf("alloc %d bytes for step %d: %v", n, step, err)
	}
	return l
}

// TestRegionReleasedOutOfOrder: leases go in order from where the last
// one ended; a lease that does not fit the end wraps to the start.
func TestRegionReleasedOutOfOrder(t *testing.T) {
	const k = 256 << 10
	reg := New(t.TempDir())
	g := open(t, reg, 4*k)
	a, b, c := alloc(t, g, k, 1), alloc(t, g, k, 2), alloc(t, g, k, 3)
	if a.Offset() != 0 || b.Offset() != k || c.Offset() != 2*k || a.ID() == 0 || b.ID() != a.ID()+1 {
		t.Fatalf("leases at %d, %d, %d with ids %d, %d", a.Offset(), b.Offset(), c.Offset(), a.ID(), b.ID())
	}
	if unknown := g.Release([]uint64{b.ID()}); unknown != 0 {
		t.Fatalf("%d unknown ids", unknown)
	}
	if s := reg.Stats(); s.Leases != 2 || s.LeasedBytes != 2*k {
		t.Fatalf("after releasing b: %d leases of %d bytes", s.Leases, s.LeasedBytes)
	}
	// Releasing a frees a and b: 2k from the start, so 2k do not fit at
	// the end (k left) but do at the start, the end's k as padding.
	if unknown := g.Release([]uint64{a.ID(), a.ID()}); unknown != 1 {
		t.Fatalf("a released twice: %d unknown, want 1", unknown)
	}
	d := alloc(t, g, 2*k, 4)
	if d.Offset() != 0 || d.Len() != 2*k || len(g.Bytes(d)) != 2*k {
		t.Fatalf("wrapped lease at %d of %d bytes", d.Offset(), d.Len())
	}
	if s := reg.Stats(); s.Leases != 2 || s.LeasedBytes != 3*k || s.Waits != 0 {
		t.Fatalf("after the wrap: %d leases of %d bytes, %d waits", s.Leases, s.LeasedBytes, s.Waits)
	}
	// A lease's bytes are the region's: the file, mapped again, has them.
	copy(g.Bytes(d), "lease d")
	if f, err := os.ReadFile(g.Path()); err != nil || len(f) != g.Size() || string(f[:7]) != "lease d" {
		t.Fatalf("region file: %d bytes (%v), want %d starting with d's", len(f), err, g.Size())
	}
}

func TestRegionTooBig(t *testing.T) {
	reg := New(t.TempDir())
	g := open(t, reg, 1<<20)
	if _, err := g.Alloc(context.Background(), 1<<20+1, 0, 1); !errors.Is(err, ErrTooBig) {
		t.Fatalf("a lease over the region: %v, want ErrTooBig", err)
	}
	// A step never waits on its own leases: when they fill the region the
	// step is too big.
	alloc(t, g, 768<<10, 1)
	if _, err := g.Alloc(context.Background(), 512<<10, 0, 1); !errors.Is(err, ErrTooBig) {
		t.Fatalf("a step's parts over the region: %v, want ErrTooBig", err)
	}
	if s := reg.Stats(); s.Leases != 1 || s.Waits != 0 {
		t.Fatalf("%d leases, %d waits: a refused lease was counted", s.Leases, s.Waits)
	}
}

// TestRegionFullWaits: a lease that does not fit waits until ctx ends, or
// the region closes.
func TestRegionFullWaits(t *testing.T) {
	reg := New(t.TempDir())
	g := open(t, reg, 1<<20)
	alloc(t, g, 1<<20, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Alloc(ctx, 1, 0, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("alloc in a full region, ctx ended: %v", err)
	}
	if w := reg.Stats().Waits; w != 1 {
		t.Fatalf("%d waits, want 1", w)
	}
	done := make(chan error, 1)
	go func() {
		_, err := g.Alloc(context.Background(), 1, 0, 2)
		done <- err
	}()
	g.Close()
	if err := <-done; !errors.Is(err, ErrRegionClosed) {
		t.Fatalf("alloc across Close: %v, want ErrRegionClosed", err)
	}
	g.Drain(context.Background()) // returns at once on a closed region
}

// TestRegionAttach: what is attached to a lease runs once, when it is
// released, when the region closes, or at once on a closed region.
func TestRegionAttach(t *testing.T) {
	reg := New(t.TempDir())
	g := open(t, reg, 1<<20)
	runs := map[string]int{}
	unpin := func(name string) []func() { return []func(){func() { runs[name]++ }} }
	a, b := alloc(t, g, 1000, 1), alloc(t, g, 1000, 1)
	g.Attach(a, unpin("a"))
	g.Attach(b, unpin("b"))
	g.Attach(b, nil) // nothing to attach: b keeps its own
	g.Release([]uint64{a.ID()})
	if runs["a"] != 1 || runs["b"] != 0 {
		t.Fatalf("after releasing a: %v", runs)
	}
	g.Close()
	g.Close()
	g.Attach(a, unpin("late"))
	if runs["a"] != 1 || runs["b"] != 1 || runs["late"] != 1 {
		t.Fatalf("after close: %v, want each once", runs)
	}
}

// TestRegistryClose: a closed region is gone from the registry, its file
// and its figures; its ids are unknown.
func TestRegistryClose(t *testing.T) {
	dir := t.TempDir()
	reg := New(dir)
	if reg.Dir() != dir {
		t.Fatalf("Dir %q, want %q", reg.Dir(), dir)
	}
	g, err := reg.Open(RingBytes+1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	h := open(t, reg, 1<<20)
	l := alloc(t, g, 1000, 1)
	if l.Offset() < g.Ring() || g.Ring() != RingBytes || h.Ring() != 0 {
		t.Fatalf("lease at %d, rings of %d and %d bytes", l.Offset(), g.Ring(), h.Ring())
	}
	if reg.Get(g.ID()) != g || reg.Get(h.ID()) != h || reg.Get("nope") != nil {
		t.Fatal("Get does not find the open regions by id")
	}
	if base := filepath.Base(g.Path()); filepath.Dir(g.Path()) != dir || base != fmt.Sprintf("stoker-%d-%s.shm", os.Getpid(), g.ID()) {
		t.Fatalf("region file %s", g.Path())
	}
	reg.AddServed(3)
	reg.AddExtentBytes(5)
	reg.AddTierBytes(7)
	want := Stats{Regions: 2, RegionBytes: int64(g.Size() + h.Size()), Leases: 1, LeasedBytes: 1000, Served: 3, ExtentBytes: 5, TierBytes: 7}
	if s := reg.Stats(); s != want {
		t.Fatalf("Stats %+v, want %+v", s, want)
	}
	g.Close()
	if unknown := g.Release([]uint64{l.ID()}); unknown != 1 {
		t.Fatalf("release on a closed region: %d unknown, want 1", unknown)
	}
	want = Stats{Regions: 1, RegionBytes: int64(h.Size()), Served: 3, ExtentBytes: 5, TierBytes: 7}
	if s := reg.Stats(); s != want || reg.Get(g.ID()) != nil {
		t.Fatalf("after close: Stats %+v, want %+v", s, want)
	}
	if _, err := os.Stat(g.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("region file after close: %v", err)
	}
}

// TestSweep removes the region files of processes that are gone, and no
// others.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	reg := New(dir)
	g := open(t, reg, 4096)
	const gone = 1<<22 + 1 // over the largest pid_max: no process has it
	files := map[string]bool{
		fmt.Sprintf("stoker-%d-abc.shm", gone):             false,
		fmt.Sprintf("stoker-%d-tier.shm", gone):            false,
		fmt.Sprintf("stoker-%d-abc.shm", os.Getpid()):      true,
		fmt.Sprintf("stoker-%d-abc.shm", os.Getppid()):     true,
		fmt.Sprintf("stoker-%d-abc.other", gone):           true,
		"stoker-x-abc.shm":                                 true,
		filepath.Base(g.Path()):                            true,
		fmt.Sprintf("not-stoker-%d-abc.shm", gone):         true,
		fmt.Sprintf("stoker-%d-abc.shm.partial", gone):     true,
		fmt.Sprintf("stoker-%d-abc-def.shm", os.Getppid()): true,
	}
	for name := range files {
		if name == filepath.Base(g.Path()) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg.Sweep()
	for name, kept := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v (%v)", name, err == nil, kept, err)
		}
	}
}
