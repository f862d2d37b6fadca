package storage

import "sync/atomic"

// Metrics is a snapshot of what a Source has done since it was made.
type Metrics struct {
	// Requests counts requests sent to storage: for S3 every HTTP request,
	// retries included; for file:// every Stat, List and ReadAt call.
	Requests uint64
	// Bytes counts object bytes delivered into callers' buffers by ReadAt.
	Bytes uint64
}

// Counters holds a Source's live counters, for the Sources of other
// packages (s3) to keep as this package's do. The zero value is ready; it
// is safe for concurrent use.
type Counters struct {
	requests atomic.Uint64
	bytes    atomic.Uint64
}

// Request counts one request sent to storage.
func (c *Counters) Request() { c.requests.Add(1) }

// Read counts n object bytes delivered into a caller's buffer.
func (c *Counters) Read(n int) { c.bytes.Add(uint64(n)) }

// Snapshot returns the counts so far.
func (c *Counters) Snapshot() Metrics {
	return Metrics{Requests: c.requests.Load(), Bytes: c.bytes.Load()}
}
