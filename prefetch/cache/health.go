package cache

import (
	"log/slog"
	"sync"
	"time"
)

const (
	// diskOffAfter is how many disk writes in a row must fail before the
	// disk tier stops taking writes (a full or failed disk fails them all).
	diskOffAfter = 8
	// diskRetryEvery is how often, while writes fail, one is logged and,
	// once the tier is off, one is tried to see whether the disk is back.
	diskRetryEvery = time.Minute
)

// diskHealth follows the disk tier's writes, so that a failing disk gives
// a few clear log lines instead of one warning per shard: the first
// failure is logged, then at most one a minute with the count of those not
// logged; after diskOffAfter failures in a row the tier is off for writes
// (entries stay in memory only; the disk's entries are still read), and
// one write a minute is tried until one succeeds, which turns it on again.
// Safe for concurrent use.
type diskHealth struct {
	mu        sync.Mutex // guards the fields below
	failing   int        // writes failed in a row
	unlogged  int        // failures not logged since the last warning
	lastWarn  time.Time  // when a failure was last logged
	off       bool       // writes are off: only one try per diskRetryEvery
	lastTry   time.Time  // when the off tier last tried a write
	clockFunc func() time.Time
}

func (h *diskHealth) now() time.Time {
	if h.clockFunc != nil {
		return h.clockFunc()
	}
	return time.Now()
}

// try reports whether a disk write should be made now.
func (h *diskHealth) try() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.off {
		return true
	}
	if now := h.now(); now.Sub(h.lastTry) >= diskRetryEvery {
		h.lastTry = now
		return true
	}
	return false
}

// failed records a failed write of object.
func (h *diskHealth) failed(log *slog.Logger, object string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing++
	now := h.now()
	switch {
	case h.failing == diskOffAfter:
		h.off, h.lastTry, h.lastWarn, h.unlogged = true, now, now, 0
		log.Warn("cache: disk tier off for writes: writes keep failing. Shards stay in the memory tier only (entries already on disk are still read); one write a minute is tried until the disk takes them again",
			"failed_in_a_row", h.failing, "object", object, "err", err)
	case h.failing == 1 || now.Sub(h.lastWarn) >= diskRetryEvery:
		log.Warn("cache: disk write failed", "object", object, "err", err, "failed_in_a_row", h.failing, "not_logged", h.unlogged, "disk_tier_off", h.off)
		h.lastWarn, h.unlogged = now, 0
	default:
		h.unlogged++
	}
}

// succeeded records a write that worked.
func (h *diskHealth) succeeded(log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == 0 {
		return
	}
	if h.off {
		log.Info("cache: disk tier back on for writes", "failed_before", h.failing)
	}
	h.failing, h.unlogged, h.off = 0, 0, false
}
