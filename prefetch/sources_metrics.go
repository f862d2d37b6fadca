package prefetch

// Metrics sums the request and byte counters of every source that keeps
// them.
func (s *Sources) Metrics() SourceMetrics {
	var m SourceMetrics
	for _, src := range s.byScheme {
		if c, ok := src.(interface{ Metrics() SourceMetrics }); ok {
			sm := c.Metrics()
			m.Requests += sm.Requests
			m.Bytes += sm.Bytes
		}
	}
	return m
}
