package shm

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// How a detached region (its stream ended while the client held views)
// is watched: its ring every reapPoll, whether its client still lives
// every reapLive.
const (
	reapPoll = 10 * time.Millisecond
	reapLive = 100 * time.Millisecond
)

// Detach ends the region's stream. With no lease live it closes the
// region and calls done at once; else the leases are views the client
// still holds (past the stream, past its Client), so the region stays
// open, its file and its pins kept, until the client releases them
// through the ring or goes away (no process holds the file's lock, see
// clientGone), or the registry closes: then it is closed and done runs.
// Meanwhile the pages of the file that no live lease covers are given
// back to the system, and keep is told, before Detach returns, the bytes
// the region still takes (the ring and the held leases' pages), so the
// caller can count those instead of the whole region. Call it once,
// instead of Close.
func (g *Region) Detach(keep func(kept int64), done func()) {
	g.mu.Lock()
	g.readRingLocked()
	live := len(g.order) > 0 && !g.closed
	var kept int64
	if live {
		kept = g.trimLocked()
	}
	g.mu.Unlock()
	if !live || g.clientGone() {
		g.Close()
		done()
		return
	}
	keep(kept)
	g.reg.detached.Add(1)
	go g.reap(done)
}

// trimLocked gives back the pages of the lease area that no live lease
// touches (MADV_REMOVE punches them out of the file; where the file
// system cannot, they stay) and returns the bytes the region still
// takes: its ring and the pages of its live leases. g.mu is held.
func (g *Region) trimLocked() (kept int64) {
	page := int64(os.Getpagesize())
	down := func(x int64) int64 { return x / page * page }
	up := func(x int64) int64 { return down(x + page - 1) }
	punch := func(a, b int64) { // absolute offsets
		if a, b = up(a), down(b); b > a {
			_ = unix.Madvise(g.mem[a:b], unix.MADV_REMOVE)
		}
	}
	a := int64(g.ring)
	kept = up(a)
	for _, l := range g.order { // by offset
		lo, hi := int64(l.off), int64(l.off+l.n)
		punch(a, lo)
		kept += up(hi) - down(lo) // a page two leases share counts twice: a bound
		a = max(a, hi)
	}
	punch(a, int64(len(g.mem)))
	return min(kept, int64(len(g.mem)))
}

// reap watches a detached region until it can close.
func (g *Region) reap(done func()) {
	defer done()
	defer g.reg.detached.Add(-1)
	defer g.Close()
	t := time.NewTicker(reapPoll)
	defer t.Stop()
	polls := int(reapLive / reapPoll)
	for k := 1; ; k++ {
		select {
		case <-g.reg.closing:
			return
		case <-t.C:
		}
		g.mu.Lock()
		g.readRingLocked()
		empty := g.closed || len(g.order) == 0
		g.mu.Unlock()
		if empty || (k%polls == 0 && g.clientGone()) {
			return
		}
	}
}

// clientGone says whether no process holds the region file's lock: a
// client that maps the region takes a shared flock on it and keeps it
// while any view of it lives (the lock goes with its last descriptor,
// so with the process). A client that never took it (an older one, or
// one that never mapped the region) reads as gone.
func (g *Region) clientGone() bool {
	f, err := os.Open(g.path)
	if err != nil {
		return true
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return true
	}
	return !errors.Is(err, unix.EWOULDBLOCK)
}

// Close closes every region still open, detached ones included (their
// clients' views stay mapped, but the tier's pins go). For the server's
// shutdown, once its streams have ended. Idempotent.
func (r *Registry) Close() {
	r.closeOnce.Do(func() { close(r.closing) })
	r.mu.Lock()
	open := make([]*Region, 0, len(r.regions))
	for _, g := range r.regions {
		open = append(open, g)
	}
	r.mu.Unlock()
	for _, g := range open {
		g.Close()
	}
}
