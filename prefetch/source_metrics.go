package prefetch

import "sync/atomic"

// SourceMetrics is a snapshot of what a Source has done since it was made.
type SourceMetrics struct {
	// Requests counts requests sent to storage: for S3 every HTTP request,
	// retries included; for file:// every Stat, List and ReadAt call.
	Requests uint64
	// Bytes counts object bytes delivered into callers' buffers by ReadAt.
	Bytes uint64
}

// sourceCounters holds a Source's live counters. Safe for concurrent use.
type sourceCounters struct {
	requests atomic.Uint64
	bytes    atomic.Uint64
}

func (c *sourceCounters) request()   { c.requests.Add(1) }
func (c *sourceCounters) read(n int) { c.bytes.Add(uint64(n)) }
func (c *sourceCounters) snapshot() SourceMetrics {
	return SourceMetrics{Requests: c.requests.Load(), Bytes: c.bytes.Load()}
}
