package storage

// Metrics sums the request and byte counters of every source that keeps
// them.
func (s *Sources) Metrics() Metrics {
	var m Metrics
	for _, src := range s.byScheme {
		if c, ok := src.(interface{ Metrics() Metrics }); ok {
			sm := c.Metrics()
			m.Requests += sm.Requests
			m.Bytes += sm.Bytes
		}
	}
	return m
}
