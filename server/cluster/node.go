// Package cluster makes the stokerd servers of a job one cluster: gossip
// membership over hashicorp/memberlist (the only importer of memberlist),
// shard ownership by weighted rendezvous hashing over the live members, and
// the client side of the Peer service that reads a shard from its owner.
// It never imports the server that starts it, the clients or the commands.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/stoker-data/stoker/shuffle"
)

// Meta is what a node tells the others about itself.
type Meta struct {
	// GRPCAddr is where the node serves Loader and Peer (host:port).
	GRPCAddr string `json:"grpc"`
	// Capacity is the node's cache size in bytes (memory and disk): its
	// weight in shard ownership.
	Capacity int64 `json:"cap"`
	// Zone is the node's failure domain (rack, availability zone).
	Zone string `json:"zone,omitempty"`
}

// Config configures a Node.
type Config struct {
	// Name is the node's unique name in the cluster; empty means
	// hostname:port of the gossip address.
	Name string
	// BindAddr is the gossip address (TCP and UDP), host:port.
	BindAddr string
	// AdvertiseAddr is the address the others reach this node's gossip
	// at, when it differs from BindAddr (NAT, 0.0.0.0).
	AdvertiseAddr string
	// Join lists gossip addresses of existing members; empty starts a new
	// cluster. A failed join is retried in the background.
	Join []string
	// Key encrypts gossip (AES, 16, 24 or 32 bytes); nil sends it in clear.
	Key []byte
	// Meta is published to the other members.
	Meta Meta
	// RetryJoin is the pause between join attempts that failed.
	RetryJoin time.Duration
	// Reconnect is how often a node retries the members it saw fail (and
	// its Join addresses when it is alone), so that the two sides of a
	// healed network partition find each other again.
	Reconnect time.Duration
	// Forget is how long a member that left or failed is retried and
	// listed before it is forgotten.
	Forget time.Duration
	// LeaveTimeout bounds a graceful leave's broadcast.
	LeaveTimeout time.Duration
	// Peer sets how shards are read from their owners.
	Peer PeerConfig
	// ZoneLocal gives every zone (Meta.Zone) its own owner of each shard,
	// chosen among the zone's live members: storage is read once per zone
	// rather than once per cluster, and no shard crosses zones between
	// nodes (cross-zone traffic is what clouds bill). Set it on every node.
	ZoneLocal bool
}

// DefaultConfig returns the defaults; BindAddr and Meta must still be set.
func DefaultConfig() Config {
	return Config{
		RetryJoin:    time.Second,     // a seed node that starts a moment later is found quickly
		Reconnect:    5 * time.Second, // a healed partition merges within seconds; a dead node costs one dial
		Forget:       time.Hour,       // outlasts a switch reboot or a long partition
		LeaveTimeout: 5 * time.Second, // long enough to gossip the leave to a LAN cluster
		Peer:         DefaultPeerConfig(),
	}
}

// Member is a node as this node sees it.
type Member struct {
	Name  string
	Addr  string // gossip address
	Meta  Meta
	State string // "alive", "suspect", or "gone" (left or failed)
}

// Node is this server's membership in the cluster. Safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	stop chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex            // guards alive, gone
	alive map[string]Member     // members by name, kept from join/leave/update events
	gone  map[string]goneMember // members that left or failed, retried every Reconnect until forgotten

	closeOnce sync.Once
}

// Start joins (or starts) the cluster. It returns once this node listens
// for gossip; joining the given members goes on in the background until
// it succeeds or the node closes.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := DefaultConfig()
	if cfg.RetryJoin <= 0 {
		cfg.RetryJoin = d.RetryJoin
	}
	if cfg.Reconnect <= 0 {
		cfg.Reconnect = d.Reconnect
	}
	if cfg.Forget <= 0 {
		cfg.Forget = d.Forget
	}
	if cfg.LeaveTimeout <= 0 {
		cfg.LeaveTimeout = d.LeaveTimeout
	}
	cfg.Peer = cfg.Peer.withDefaults()
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: bind address %q: %w", cfg.BindAddr, err)
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = net.JoinHostPort(h, strconv.Itoa(port))
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: node metadata is %d bytes, limit %d", len(meta), memberlist.MetaMaxSize)
	}
	n := &Node{cfg: cfg, log: log.With("node", cfg.Name), stop: make(chan struct{}), alive: map[string]Member{}, gone: map[string]goneMember{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if cfg.AdvertiseAddr != "" {
		ah, ap, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: advertise address %q: %w", cfg.AdvertiseAddr, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	if len(cfg.Key) > 0 {
		if err := memberlist.ValidateKey(cfg.Key); err != nil {
			return nil, fmt.Errorf("cluster: gossip key: %w", err)
		}
		mc.SecretKey = cfg.Key
	}
	mc.Delegate = &delegate{meta: meta}
	mc.Events = &events{n: n}
	mc.Logger = slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: listening for gossip on %s: %w", cfg.BindAddr, err)
	}
	n.ml = ml
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			n.log.Warn("cannot join the cluster yet: retrying", "join", cfg.Join, "err", err)
			n.wg.Add(1)
			go n.retryJoin()
		}
	}
	n.wg.Add(1)
	go n.reconnect()
	n.log.Info("cluster node started", "gossip", cfg.BindAddr, "join", cfg.Join, "encrypted", len(cfg.Key) > 0)
	return n, nil
}

func (n *Node) retryJoin() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.RetryJoin)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if _, err := n.ml.Join(n.cfg.Join); err == nil {
			n.log.Info("joined the cluster", "join", n.cfg.Join)
			return
		} else {
			n.log.Debug("join failed", "join", n.cfg.Join, "err", err)
		}
	}
}

// goneMember is a member that left or failed, and when it went.
type goneMember struct {
	m  Member
	at time.Time
}

// reconnect retries the members that went (memberlist does not tell a
// graceful leave from a failure to its event delegate), and the Join addresses while this node
// is alone: memberlist never probes a member it declared dead, so without
// this the sides of a healed partition would stay apart.
func (n *Node) reconnect() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Reconnect)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.mu.Lock()
		var addrs []string
		for name, g := range n.gone {
			if time.Since(g.at) > n.cfg.Forget {
				delete(n.gone, name)
				continue
			}
			addrs = append(addrs, g.m.Addr)
		}
		alone := len(n.alive) <= 1
		n.mu.Unlock()
		if alone {
			addrs = append(addrs, n.cfg.Join...)
		}
		if len(addrs) == 0 {
			continue
		}
		if k, err := n.ml.Join(addrs); k > 0 {
			n.log.Info("reconnected to the cluster", "contacted", k)
		} else {
			n.log.Debug("reconnect failed", "addrs", addrs, "err", err)
		}
	}
}

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Alive returns the live members (this node included), sorted by name.
func (n *Node) Alive() []Member {
	n.mu.Lock()
	out := make([]Member, 0, len(n.alive))
	for _, m := range n.alive {
		out = append(out, m)
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Members returns the live members and, with state "gone", those that
// left or failed and are not forgotten yet, sorted by name.
func (n *Node) Members() []Member {
	var out []Member
	for _, m := range n.ml.Members() {
		out = append(out, member(m))
	}
	n.mu.Lock()
	for _, g := range n.gone {
		if !slices.ContainsFunc(out, func(o Member) bool { return o.Name == g.m.Name }) {
			out = append(out, g.m)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Owner returns the owner of key among the live members of Pool.
func (n *Node) Owner(key string) (Member, bool) {
	return OwnerOf(key, n.Pool())
}

// Pool returns the live members this node's shards are owned among: all
// of them, or with ZoneLocal those of its zone.
func (n *Node) Pool() []Member {
	alive := n.Alive()
	if !n.cfg.ZoneLocal {
		return alive
	}
	return slices.DeleteFunc(alive, func(m Member) bool { return m.Meta.Zone != n.cfg.Meta.Zone })
}

// Pools returns the live members grouped as ownership sees them, for work
// that every owner of a shard does (prefetch hints): one group, or with
// ZoneLocal one per zone, in zone order.
func (n *Node) Pools() [][]Member {
	alive := n.Alive()
	if !n.cfg.ZoneLocal {
		return [][]Member{alive}
	}
	zones := map[string][]Member{}
	for _, m := range alive {
		zones[m.Meta.Zone] = append(zones[m.Meta.Zone], m)
	}
	var out [][]Member
	for _, z := range slices.Sorted(maps.Keys(zones)) {
		out = append(out, zones[z])
	}
	return out
}

// OwnerOf returns the owner of key among members by weighted rendezvous
// hashing on cache capacity; false when members is empty.
func OwnerOf(key string, members []Member) (Member, bool) {
	sm := make([]shuffle.Member, len(members))
	for i, m := range members {
		sm[i] = shuffle.Member{Name: m.Name, Weight: float64(m.Meta.Capacity)}
	}
	i := shuffle.Owner(key, sm)
	if i < 0 {
		return Member{}, false
	}
	return members[i], true
}

// Close leaves the cluster gracefully (the others see "left", not a
// failure) and stops gossip. Safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		if lerr := n.ml.Leave(n.cfg.LeaveTimeout); lerr != nil {
			n.log.Warn("leaving the cluster", "err", lerr)
		}
		err = n.ml.Shutdown()
	})
	return err
}

func member(m *memberlist.Node) Member {
	var meta Meta
	_ = json.Unmarshal(m.Meta, &meta) // a member with unreadable metadata has no gRPC address and weight 1
	state := "alive"
	switch m.State {
	case memberlist.StateSuspect:
		state = "suspect"
	case memberlist.StateDead, memberlist.StateLeft:
		state = "gone"
	}
	return Member{Name: m.Name, Addr: m.Address(), Meta: meta, State: state}
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// delegate publishes this node's metadata; the cluster gossips nothing
// else.
type delegate struct{ meta []byte }

func (d *delegate) NodeMeta(limit int) []byte                  { return d.meta }
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the node's set of live members. memberlist calls it with
// its own locks held: it must not call back into memberlist.
type events struct{ n *Node }

func (e *events) NotifyJoin(m *memberlist.Node) {
	mm := member(m)
	e.n.mu.Lock()
	e.n.alive[m.Name] = mm
	delete(e.n.gone, m.Name)
	e.n.mu.Unlock()
	e.n.log.Info("member joined", "member", m.Name, "grpc", mm.Meta.GRPCAddr, "zone", mm.Meta.Zone)
}

func (e *events) NotifyLeave(m *memberlist.Node) {
	mm := member(m)
	e.n.mu.Lock()
	delete(e.n.alive, m.Name)
	mm.State = "gone"
	e.n.gone[m.Name] = goneMember{m: mm, at: time.Now()}
	e.n.mu.Unlock()
	e.n.log.Info("member left or failed", "member", m.Name, "state", mm.State)
}

func (e *events) NotifyUpdate(m *memberlist.Node) {
	mm := member(m)
	e.n.mu.Lock()
	e.n.alive[m.Name] = mm
	e.n.mu.Unlock()
}
