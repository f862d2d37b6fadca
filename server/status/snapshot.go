package status

// Snapshot is what the status page shows: one node, its cluster, its
// cache, its open streams, the prefetch hints it runs, and its storage
// and peer traffic. Counters are totals since the server started; the
// page turns them into rates between two snapshots.
type Snapshot struct {
	TimeUnixMs int64      `json:"time_unix_ms"`
	Node       Node       `json:"node"`
	Cluster    Cluster    `json:"cluster"`
	Cache      Cache      `json:"cache"`
	Streams    []Stream   `json:"streams"`
	Hints      []Hint     `json:"hints"`
	Storage    Storage    `json:"storage"`
	Peers      Peers      `json:"peers"`
	Counting   []Counting `json:"counting"`
}

// Node is this server.
type Node struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	GoVersion     string `json:"go_version"`
	StartedUnixMs int64  `json:"started_unix_ms"`
	GPUs          int    `json:"gpus"`
	CuFile        bool   `json:"cufile"`
	Auth          bool   `json:"auth"`
	TLS           bool   `json:"tls"`
}

// Cluster is the membership as this node sees it.
type Cluster struct {
	Enabled bool     `json:"enabled"`
	Members []Member `json:"members"`
}

// Member is one node of the cluster.
type Member struct {
	Name          string `json:"name"`
	Gossip        string `json:"gossip"`
	GRPC          string `json:"grpc"`
	Zone          string `json:"zone"`
	State         string `json:"state"` // alive, suspect, gone
	CapacityBytes int64  `json:"capacity_bytes"`
	Self          bool   `json:"self"`
}

// Cache is the two tiers and what is pinned in them.
type Cache struct {
	Memory       Tier    `json:"memory"`
	Disk         Tier    `json:"disk"`
	Misses       int64   `json:"misses"`
	HitRate      float64 `json:"hit_rate"` // (memory + disk hits) / gets, 0 before any get
	Corrupt      int64   `json:"corrupt"`
	Errors       int64   `json:"errors"`
	KeepFraction float64 `json:"keep_fraction"` // share of the active datasets kept for good
	Pinned       Pinned  `json:"pinned"`
}

// Tier is one cache tier.
type Tier struct {
	Bytes     int64 `json:"bytes"`
	Capacity  int64 `json:"capacity"`
	Entries   int   `json:"entries"`
	Hits      int64 `json:"hits"`
	Evictions int64 `json:"evictions"`
}

// Pinned is what the cache holds that cannot be evicted or paged out.
type Pinned struct {
	RegionLocked    bool    `json:"region_locked"` // the memory tier's region is mlocked
	RegionBytes     uint64  `json:"region_bytes"`
	RegionReason    string  `json:"region_reason"`
	ShmLeases       uint64  `json:"shm_leases"` // batches local clients hold in shared memory
	ShmLeasedBytes  uint64  `json:"shm_leased_bytes"`
	ShmRegions      uint64  `json:"shm_regions"`
	ShmRegionBytes  uint64  `json:"shm_region_bytes"`
	KeptSubsetShare float64 `json:"kept_subset_share"` // same as Cache.KeepFraction
}

// Stream is one open batch stream.
type Stream struct {
	ID            uint64  `json:"id"`
	Dataset       string  `json:"dataset"`
	Epoch         uint64  `json:"epoch"`
	Rank          uint32  `json:"rank"`
	WorldSize     uint32  `json:"world_size"`
	BatchSize     uint32  `json:"batch_size"`
	Position      int64   `json:"position"` // the cursor after the last batch sent
	Total         int64   `json:"total"`    // samples in the epoch, -1 while not counted
	Samples       uint64  `json:"samples"`  // sent by this stream
	Bytes         uint64  `json:"bytes"`
	Steps         uint64  `json:"steps"`
	StallSeconds  float64 `json:"stall_seconds"`
	StartedUnixMs int64   `json:"started_unix_ms"`
	Client        string  `json:"client"`
	Shm           bool    `json:"shm"`
}

// Hint is this node's part of a prefetch hint.
type Hint struct {
	ID            string  `json:"id"`
	What          string  `json:"what"`
	State         string  `json:"state"`
	BytesDone     uint64  `json:"bytes_done"`
	BytesTotal    uint64  `json:"bytes_total"`
	ShardsDone    uint64  `json:"shards_done"`
	ShardsTotal   uint64  `json:"shards_total"`
	StartedUnixMs int64   `json:"started_unix_ms"`
	ETASeconds    float64 `json:"eta_seconds"` // -1 when unknown (nothing done yet, or finished)
	Error         string  `json:"error"`
}

// Storage is the traffic to S3 and local files.
type Storage struct {
	Requests      uint64  `json:"requests"`
	Bytes         uint64  `json:"bytes"`
	RangeRequests uint64  `json:"range_requests"`
	RangeBytes    uint64  `json:"range_bytes"`
	Reads         uint64  `json:"reads"`
	ReadErrors    uint64  `json:"read_errors"`
	ReadP50       float64 `json:"read_p50_seconds"` // from the read histogram's buckets, since start
	ReadP99       float64 `json:"read_p99_seconds"`
}

// Peers is the shard traffic between nodes.
type Peers struct {
	Reads     uint64 `json:"reads"`
	Fallbacks uint64 `json:"fallbacks"`
	Served    uint64 `json:"served"`
}

// Counting is a dataset whose samples are being counted.
type Counting struct {
	Dataset string `json:"dataset"`
	Done    uint64 `json:"done"`
	Total   uint64 `json:"total"`
}
