package prefetch

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// peerRemote reads shards from another Shards in the same process, the way
// the cluster's Peer service does over gRPC: the owner's GetLocal.
type peerRemote struct {
	owner func(storage.Object) *Shards // nil: this node owns it
	down  bool
}

var errPeerDown = errors.New("peer down")

func (r *peerRemote) Fetch(ctx context.Context, o storage.Object) ([]byte, error) {
	owner := r.owner(o)
	switch {
	case owner == nil:
		return nil, ErrLocal
	case r.down:
		return nil, errPeerDown
	}
	ref, err := owner.GetLocal(ctx, o)
	if err != nil {
		return nil, err
	}
	defer ref.Release()
	return bytes.Clone(ref.Bytes()), nil // the wire copies too
}

var _ Remote = (*peerRemote)(nil)

func TestShardsReadFromOwner(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 4, PerShard: 5, SampleSize: 512}, 64<<20)
	_, a := e.fresh(t, 64<<20)
	_, b := e.fresh(t, 64<<20)
	ctx := context.Background()
	// b owns even shards, a odd ones.
	objects := map[string]int{}
	for i := range e.ds.Manifest.Shards {
		objects[e.ds.Object(i).URL] = i
	}
	r := &peerRemote{owner: func(o storage.Object) *Shards {
		if objects[o.URL]%2 == 0 {
			return b
		}
		return nil
	}}
	a.SetRemote(r)
	for i := range e.ds.Manifest.Shards {
		want, err := e.shards.Get(ctx, e.ds.Object(i))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second read is a cache hit on a
			got, err := a.Get(ctx, e.ds.Object(i))
			if err != nil {
				t.Fatalf("shard %d: %v", i, err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("shard %d: bytes differ", i)
			}
			got.Release()
		}
		want.Release()
	}
	if a.Fetches() != 2 || b.Fetches() != 2 || a.PeerReads() != 2 || a.Fallbacks() != 0 {
		t.Fatalf("fetches a=%d b=%d, peer reads %d, fallbacks %d; want 2, 2, 2, 0", a.Fetches(), b.Fetches(), a.PeerReads(), a.Fallbacks())
	}

	// The owner is down: a reads storage itself, and says so.
	_, c := e.fresh(t, 64<<20)
	c.SetRemote(&peerRemote{owner: func(storage.Object) *Shards { return b }, down: true})
	if _, err := c.Get(ctx, e.ds.Object(0)); err != nil {
		t.Fatal(err)
	}
	if c.Fetches() != 1 || c.Fallbacks() != 1 || c.PeerReads() != 0 {
		t.Fatalf("owner down: fetches %d, fallbacks %d, peer reads %d; want 1, 1, 0", c.Fetches(), c.Fallbacks(), c.PeerReads())
	}
	// GetLocal never asks the remote.
	_, d := e.fresh(t, 64<<20)
	d.SetRemote(&peerRemote{owner: func(storage.Object) *Shards { t.Fatal("GetLocal asked the remote"); return nil }})
	if _, err := d.GetLocal(ctx, e.ds.Object(1)); err != nil || d.Fetches() != 1 {
		t.Fatalf("GetLocal: err %v, fetches %d", err, d.Fetches())
	}
}

// rangePeer is a peerRemote that also reads ranges from the owner, and
// may answer with a short range.
type rangePeer struct {
	peerRemote
	short bool
}

func (r *rangePeer) FetchRange(ctx context.Context, o storage.Object, off, n int64) ([]byte, error) {
	data, err := r.Fetch(ctx, o)
	if err != nil {
		return nil, err
	}
	if r.short {
		n--
	}
	return data[off : off+n], nil
}

var _ RangeRemote = (*rangePeer)(nil)

// A sample range read from the owner counts as a peer read; one that fails
// (owner down, or a range of the wrong length) counts as a fallback, as a
// whole shard's does; a shard this node owns counts as neither.
func TestShardsRangeFromOwnerCounts(t *testing.T) {
	e := newPrefetchEnv(t, wds.Synthetic{Shards: 2, PerShard: 5, SampleSize: 512}, 64<<20)
	_, owner := e.fresh(t, 64<<20)
	ctx := context.Background()
	o := e.ds.Object(0)
	for _, tc := range []struct {
		name             string
		peer             *rangePeer
		reads, fallbacks uint64
		ok, local        bool
	}{
		{"owner answers", &rangePeer{peerRemote: peerRemote{owner: func(storage.Object) *Shards { return owner }}}, 1, 0, true, false},
		{"owner down", &rangePeer{peerRemote: peerRemote{owner: func(storage.Object) *Shards { return owner }, down: true}}, 0, 1, false, false},
		{"short range", &rangePeer{peerRemote: peerRemote{owner: func(storage.Object) *Shards { return owner }}, short: true}, 0, 1, false, false},
		{"owned here", &rangePeer{peerRemote: peerRemote{owner: func(storage.Object) *Shards { return nil }}}, 0, 0, false, true},
	} {
		_, s := e.fresh(t, 64<<20)
		s.SetRemote(tc.peer)
		data, err := s.GetRangeRemote(ctx, o, 512, 100)
		if (err == nil) != tc.ok || errors.Is(err, ErrLocal) != tc.local || (tc.ok && len(data) != 100) {
			t.Errorf("%s: %d bytes, err %v", tc.name, len(data), err)
		}
		if s.PeerReads() != tc.reads || s.Fallbacks() != tc.fallbacks {
			t.Errorf("%s: peer reads %d, fallbacks %d; want %d, %d", tc.name, s.PeerReads(), s.Fallbacks(), tc.reads, tc.fallbacks)
		}
	}
}
