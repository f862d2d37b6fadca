package stoker

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// WithSharedMemory asks for shared-memory delivery: the server places each
// batch's bytes in a region this process maps, and messages carry only
// offsets. The client must reach the server over its unix socket
// ("unix:///path"). regionBytes sizes the region (0: the server's
// default); a larger one lets the server run further ahead.
//
// In this mode a Batch's field bytes live in the shared region, or, when
// the server shares its memory tier (a GPU host: stokerd --memory-region),
// in the tier's own pages with no copy at all; either way they are valid
// only until the loop body that received the batch returns: the iterator
// then gives them back to the server, which reuses them. Copy whatever
// must outlive the iteration.
func WithSharedMemory(regionBytes int) Option {
	return func(o *options) { o.shm, o.shmRegionBytes = true, regionBytes }
}

// WithGPUDirect asks, on top of shared memory, for disk extents: fields of
// shards in the server's disk tier arrive with Field.Extent set (a range of
// a local file) and no Data, for the caller to read straight into GPU
// memory (gpu.ReadToDevice: cuFile, or the pinned fallback). The extent's
// file stays in place while the batch is held, like shared-memory bytes.
// Ask for it where gpu.CuFileAvailable() says cuFile works; elsewhere the
// shared-memory path is the faster one. Implies WithSharedMemory.
func WithGPUDirect(regionBytes int) Option {
	return func(o *options) { o.shm, o.gds, o.shmRegionBytes = true, true, regionBytes }
}

// shmReader maps one stream's region and tracks the leases of the batch
// being assembled. Used by one stream goroutine only.
type shmReader struct {
	api    stokerv1.LoaderClient
	region string
	mem    []byte
	tier   []byte   // the server's memory tier, when it is shared
	leases []uint64 // held by the current batch
}

func (c *Client) newShmReader(req *stokerv1.StreamBatchesRequest) *shmReader {
	if !c.opts.shm {
		return nil
	}
	req.Shm, req.Gds, req.ShmRegionBytes, req.ShmTier = true, c.opts.gds, uint64(max(c.opts.shmRegionBytes, 0)), true
	return &shmReader{api: c.api}
}

// receive maps the region on its first message and points each field's
// Data at its bytes in the mapping, without a copy.
func (r *shmReader) receive(m *stokerv1.StreamBatchesResponse) error {
	if r == nil {
		return nil
	}
	if g := m.GetShmRegion(); g != nil && r.mem == nil {
		mem, err := mapRegion(g.GetPath(), int(g.GetSize()))
		if err != nil {
			return err
		}
		r.region, r.mem = g.GetId(), mem
	}
	if g := m.GetShmTier(); g != nil && r.tier == nil {
		mem, err := mapRegion(g.GetPath(), int(g.GetSize()))
		if err != nil {
			return err
		}
		r.tier = mem
	}
	if l := m.GetShmLease(); l != nil {
		if r.mem == nil {
			return fmt.Errorf("stoker: shm lease %d before its region", l.GetId())
		}
		r.leases = append(r.leases, l.GetId())
	}
	for _, s := range m.GetSamples() {
		for _, f := range s.GetFields() {
			off, n := f.GetShmOffset(), f.GetShmLength()
			if n == 0 || f.GetExtent() != nil {
				continue
			}
			mem, what := r.mem, "the region"
			if f.GetShmTier() {
				mem, what = r.tier, "the memory tier"
			}
			if mem == nil || off+n > uint64(len(mem)) || off+n < off {
				return fmt.Errorf("stoker: shm field %q of sample %q: [%d,+%d) outside %s", f.GetName(), s.GetKey(), off, n, what)
			}
			f.Data = mem[off : off+n : off+n]
		}
	}
	return nil
}

// release gives the current batch's leases back to the server.
func (r *shmReader) release(ctx context.Context) error {
	if r == nil || len(r.leases) == 0 {
		return nil
	}
	ids := r.leases
	r.leases = nil
	_, err := r.api.ReleaseShm(ctx, &stokerv1.ReleaseShmRequest{Region: r.region, Leases: ids})
	if status.Code(err) == codes.NotFound {
		return nil // the stream ended, and the server freed the region with it
	}
	if err != nil {
		return fmt.Errorf("stoker: release shm leases of region %s: %w", r.region, err)
	}
	return nil
}

// close unmaps the region; the server frees what the stream still held
// when the stream ends.
func (r *shmReader) close() {
	if r == nil {
		return
	}
	for _, m := range []*[]byte{&r.mem, &r.tier} {
		if *m != nil {
			_ = unix.Munmap(*m)
			*m = nil
		}
	}
}

// mapRegion maps a region file read-only.
func mapRegion(path string, size int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stoker: open shm region: %w", err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("stoker: map shm region %s (%d bytes): %w", path, size, err)
	}
	return mem, nil
}
