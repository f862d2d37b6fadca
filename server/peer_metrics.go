package server

import "github.com/prometheus/client_golang/prometheus"

// peerCollector exports the cluster's shard traffic: reads from owners,
// fallbacks to storage, and shards served to other nodes.
type peerCollector struct{ s *Server }

var (
	descPeerReads     = desc("peer_reads_total", "Shards read from their owner node.")
	descPeerFallbacks = desc("peer_fallbacks_total", "Reads from an owner that failed and went to storage.")
	descPeerServed    = desc("peer_served_total", "Shards served to other nodes.")
	descMembers       = desc("cluster_members", "Live members of the cluster as this node sees it.")
)

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerReads, descPeerFallbacks, descPeerServed, descMembers} {
		ch <- d
	}
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descPeerReads, prometheus.CounterValue, float64(c.s.shards.PeerReads()))
	ch <- prometheus.MustNewConstMetric(descPeerFallbacks, prometheus.CounterValue, float64(c.s.shards.Fallbacks()))
	ch <- prometheus.MustNewConstMetric(descPeerServed, prometheus.CounterValue, float64(c.s.peerServed.Load()))
	members := 1
	if c.s.cfg.Cluster != nil {
		members = len(c.s.cfg.Cluster.Alive())
	}
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(members))
}
