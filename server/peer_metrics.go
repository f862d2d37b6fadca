package server

import "github.com/prometheus/client_golang/prometheus"

// peerCollector exports the cluster's shard traffic: reads from owners,
// fallbacks to storage, and shards served to other nodes.
type peerCollector struct{ s *Server }

var (
	descPeerReads     = desc("peer_reads_total", "Shards read from their owner node.")
	descPeerFallbacks = desc("peer_fallbacks_total", "Reads from an owner (whole shards and sample ranges) that failed and went to storage.")
	descPeerServed    = desc("peer_served_total", "Shards served to other nodes.")
	descMembers       = desc("cluster_members", "Live members of the cluster as this node sees it.")
	descPreSent       = desc("pipeline_peer_samples_sent_total", "Samples of this node's pipeline streams preprocessed by their shards' owners (preprocess_on ANY).")
	descPreFallbacks  = desc("pipeline_peer_fallbacks_total", "Samples sent to their shard's owner for preprocessing and done here after all.")
	descPreServed     = desc("pipeline_peer_samples_served_total", "Samples preprocessed for other nodes' pipeline streams.")
)

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerReads, descPeerFallbacks, descPeerServed, descMembers, descPreSent, descPreFallbacks, descPreServed} {
		ch <- d
	}
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descPeerReads, prometheus.CounterValue, float64(c.s.shards.PeerReads()))
	ch <- prometheus.MustNewConstMetric(descPeerFallbacks, prometheus.CounterValue, float64(c.s.shards.Fallbacks()))
	ch <- prometheus.MustNewConstMetric(descPeerServed, prometheus.CounterValue, float64(c.s.peerServed.Load()))
	ch <- prometheus.MustNewConstMetric(descPreSent, prometheus.CounterValue, float64(c.s.ready.sent.Load()))
	ch <- prometheus.MustNewConstMetric(descPreFallbacks, prometheus.CounterValue, float64(c.s.ready.fallbacks.Load()))
	ch <- prometheus.MustNewConstMetric(descPreServed, prometheus.CounterValue, float64(c.s.ready.served.Load()))
	members := 1
	if c.s.cfg.Cluster != nil {
		members = len(c.s.cfg.Cluster.Alive())
	}
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(members))
}
