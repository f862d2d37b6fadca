package server

import (
	"encoding/json"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/server/status"
)

// StatusSnapshot returns what the status page shows now.
func (s *Server) StatusSnapshot() status.Snapshot {
	st := s.Stats()
	cm := s.cache.Metrics()
	now := time.Now()
	snap := status.Snapshot{
		TimeUnixMs: now.UnixMilli(),
		Node: status.Node{Name: s.nodeName(), Version: version(), GoVersion: runtime.Version(), StartedUnixMs: s.started.UnixMilli(),
			GPUs: len(s.host.GPUs.Devices), CuFile: s.host.CuFile, Auth: s.cfg.Auth != nil, TLS: s.cfg.TLS != nil},
		Cache: status.Cache{
			Memory:       tier(cm.Memory),
			Disk:         tier(cm.Disk),
			Misses:       cm.Misses,
			Corrupt:      cm.Corrupt,
			Errors:       cm.Errors,
			KeepFraction: s.prefetcher.KeepFraction(),
		},
		Storage: status.Storage{Requests: st.GetStorageRequests(), Bytes: st.GetStorageBytes(),
			RangeRequests: st.GetStorageRangeRequests(), RangeBytes: st.GetStorageRangeBytes()},
		Peers:   status.Peers{Reads: s.shards.PeerReads(), Fallbacks: s.shards.Fallbacks(), Served: s.peerServed.Load()},
		Streams: []status.Stream{},
		Hints:   s.hints.list(now),
	}
	if gets := cm.Memory.Hits + cm.Disk.Hits + cm.Misses; gets > 0 {
		snap.Cache.HitRate = float64(cm.Memory.Hits+cm.Disk.Hits) / float64(gets)
	}
	if r := st.GetHost().GetMemoryRegion(); r != nil {
		snap.Cache.Pinned = status.Pinned{RegionLocked: r.GetLocked(), RegionBytes: r.GetBytes(), RegionReason: r.GetLockReason()}
	}
	p := &snap.Cache.Pinned
	p.ShmLeases, p.ShmLeasedBytes = st.GetShmLeases(), st.GetShmLeasedBytes()
	p.ShmRegions, p.ShmRegionBytes = st.GetShmRegions(), st.GetShmRegionBytes()
	p.KeptSubsetShare = snap.Cache.KeepFraction
	snap.Storage.Reads, snap.Storage.ReadErrors, snap.Storage.ReadP50, snap.Storage.ReadP99 = readLatency(s.hist.storage)
	for _, c := range st.GetCounting() {
		snap.Counting = append(snap.Counting, status.Counting{Dataset: c.GetUrl(), Done: c.GetShardsCounted(), Total: c.GetShardsTotal()})
	}
	snap.Cluster = s.clusterStatus()
	for _, t := range s.streams.list() {
		snap.Streams = append(snap.Streams, status.Stream{ID: t.id, Dataset: t.url, Epoch: t.epoch, Rank: t.rank, WorldSize: t.world,
			BatchSize: t.batch, Position: t.position.Load(), Total: t.total.Load(), Samples: t.samples.Load(), Bytes: t.bytes.Load(),
			Steps: t.steps.Load(), StallSeconds: time.Duration(t.stall.Load()).Seconds(), StartedUnixMs: t.started.UnixMilli(),
			Client: t.client, Shm: t.shm})
	}
	return snap
}

func tier(m cache.TierMetrics) status.Tier {
	return status.Tier{Bytes: m.Bytes, Capacity: m.Capacity, Entries: m.Entries, Hits: m.Hits, Evictions: m.Evictions}
}

// clusterStatus lists the members as this node sees them; a single node
// lists itself.
func (s *Server) clusterStatus() status.Cluster {
	node := s.cfg.Cluster
	if node == nil {
		return status.Cluster{Members: []status.Member{{Name: s.nodeName(), State: "alive", Self: true,
			CapacityBytes: s.cfg.Cache.MemoryBytes + s.cfg.Cache.DiskBytes}}}
	}
	c := status.Cluster{Enabled: true}
	for _, m := range node.Members() {
		c.Members = append(c.Members, status.Member{Name: m.Name, Gossip: m.Addr, GRPC: m.Meta.GRPCAddr, Zone: m.Meta.Zone,
			State: m.State, CapacityBytes: m.Meta.Capacity, Self: m.Name == node.Name()})
	}
	return c
}

// readLatency sums the storage read histogram over its labels: reads,
// failed reads, and the median and 99th percentile (interpolated within
// buckets; 0 before any read).
func readLatency(h *prometheus.HistogramVec) (reads, errs uint64, p50, p99 float64) {
	ch := make(chan prometheus.Metric, 16)
	go func() { h.Collect(ch); close(ch) }()
	var bounds []float64
	var counts []uint64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.GetHistogram() == nil {
			continue
		}
		hist := d.GetHistogram()
		reads += hist.GetSampleCount()
		for _, l := range d.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == "error" {
				errs += hist.GetSampleCount()
			}
		}
		if bounds == nil {
			for _, b := range hist.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
			}
			counts = make([]uint64, len(bounds))
		}
		for i, b := range hist.GetBucket() {
			if i < len(counts) {
				counts[i] += b.GetCumulativeCount()
			}
		}
	}
	return reads, errs, quantile(0.5, bounds, counts, reads), quantile(0.99, bounds, counts, reads)
}

// quantile estimates the q-quantile from cumulative bucket counts, as
// PromQL's histogram_quantile does (linear within a bucket; the largest
// finite bound when the quantile falls past it).
func quantile(q float64, bounds []float64, cum []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * float64(total)
	i := sort.Search(len(cum), func(i int) bool { return float64(cum[i]) >= rank })
	if i == len(cum) {
		return bounds[len(bounds)-1]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = bounds[i-1], float64(cum[i-1])
	}
	in := float64(cum[i]) - below
	if in <= 0 || math.IsInf(bounds[i], 1) {
		return bounds[i]
	}
	return lo + (bounds[i]-lo)*(rank-below)/in
}

// version is the binary's module version and VCS revision, as the build
// recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, st := range bi.Settings {
		if st.Key == "vcs.revision" && len(st.Value) >= 12 {
			v += " " + st.Value[:12]
		}
	}
	return v
}

// nodeName is this node's cluster name, else the host's name.
func (s *Server) nodeName() string {
	if s.cfg.Cluster != nil {
		return s.cfg.Cluster.Name()
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "local"
}

// handleStatus is GET /v1/status: the status page's snapshot as JSON.
func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(s.StatusSnapshot())
}

// commonPrefix is the longest common prefix of the objects' URLs, cut
// back to a folder or name boundary, with the shard count: what a hint
// warms, in words.
func commonPrefix(objs []storage.Object) string {
	if len(objs) == 0 {
		return ""
	}
	p := objs[0].URL
	for _, o := range objs[1:] {
		for !strings.HasPrefix(o.URL, p) {
			p = p[:len(p)-1]
		}
	}
	if len(objs) == 1 {
		return p
	}
	return strings.ToValidUTF8(p, "") + "… (" + strconv.Itoa(len(objs)) + " shards)"
}
