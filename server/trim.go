package server

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// A burst of streams leaves the Go heap large after they close: gRPC
// encodes every message into pooled buffers, and a pool, like the heap's
// goal, grows with the bytes sent between two collections, so hundreds of
// MiB stay resident, unused, until the runtime's scavenger gets to them.
// The trimmer hands that memory back to the system once the open streams
// fall to a quarter of a burst's peak.

const (
	// trimMinPeak is the smallest burst worth trimming after: a few
	// streams open and closed are a trainer's ordinary life.
	trimMinPeak = 16
	// trimEvery bounds how often memory is trimmed: each trim is two
	// full collections.
	trimEvery = 10 * time.Second
)

// trimmer returns freed heap memory to the system when asked, at most
// once every trimEvery, in a goroutine started by the first ask and ended
// by stop. Safe for concurrent use.
type trimmer struct {
	kick chan struct{} // a trim is wanted (buffered: asks while one runs fold into one)
	done chan struct{} // closed by stop
	wg   sync.WaitGroup

	mu      sync.Mutex // guards started, stopped
	started bool
	stopped bool
}

func newTrimmer() *trimmer {
	return &trimmer{kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// want asks for a trim; it never blocks.
func (t *trimmer) want() {
	t.mu.Lock()
	if !t.started && !t.stopped {
		t.started = true
		t.wg.Add(1)
		go t.run()
	}
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *trimmer) run() {
	defer t.wg.Done()
	for {
		select {
		case <-t.done:
			return
		case <-t.kick:
		}
		// Two collections: the first moves sync.Pool's buffers to its
		// victim cache, the second frees them; FreeOSMemory then returns
		// the pages.
		runtime.GC()
		debug.FreeOSMemory()
		select {
		case <-t.done:
			return
		case <-time.After(trimEvery):
		}
	}
}

// stop ends the trimmer and waits for it. Safe to call more than once.
func (t *trimmer) stop() {
	t.mu.Lock()
	if !t.stopped {
		t.stopped = true
		close(t.done)
	}
	t.mu.Unlock()
	t.wg.Wait()
}
