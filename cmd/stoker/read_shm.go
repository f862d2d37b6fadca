package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/gpu"
)

// dialRead connects `stoker read` to its server; with --shm the batches
// come through shared memory, which needs the server's unix socket, and
// with --gds cached shards come as disk extents.
func dialRead(tf *dialFlags, shm, gds bool, regionBytes int) (*stoker.Client, error) {
	addr := tf.addr
	if !shm && !gds {
		return tf.dial()
	}
	if !shm {
		return nil, fmt.Errorf("read --gds needs --shm")
	}
	if !strings.HasPrefix(addr, "unix:") { // unix:///path and unix:path
		return nil, fmt.Errorf("read --shm: --server %q is not a unix socket (want unix:///path, the path of stokerd --unix)", addr)
	}
	if gds {
		return tf.dial(stoker.WithGPUDirect(regionBytes))
	}
	return tf.dial(stoker.WithSharedMemory(regionBytes))
}

// extentReader reads the disk extents of a --gds stream so the JSONL
// lines hash the same bytes as every other path. Each extent goes through
// a pinned staging buffer (the path a GPU copy takes without cuFile); the
// bytes are then copied out, since the buffer is reused.
type extentReader struct {
	on      bool
	staging *gpu.Pinned
	files   map[string]*os.File
}

func newExtentReader(on bool) *extentReader {
	return &extentReader{on: on, files: map[string]*os.File{}}
}

func (r *extentReader) fill(b *stoker.Batch) error {
	if !r.on {
		return nil
	}
	for _, s := range b.Samples {
		for _, f := range s.GetFields() {
			x := f.GetExtent()
			if x == nil {
				continue
			}
			e := gpu.Extent{Path: x.GetPath(), Offset: int64(x.GetOffset()), Length: int64(x.GetLength())}
			if r.staging == nil || int64(len(r.staging.Bytes())) < e.Length {
				if r.staging != nil {
					_ = r.staging.Close()
				}
				p, err := gpu.AllocPinned(int(max(e.Length, 1<<20)))
				if err != nil {
					return err
				}
				r.staging = p
			}
			file, ok := r.files[e.Path]
			if !ok {
				var err error
				if file, err = os.Open(e.Path); err != nil {
					return fmt.Errorf("read --gds: sample %q field %q: %w", s.GetKey(), f.GetName(), err)
				}
				r.files[e.Path] = file
			}
			buf, err := gpu.ReadPinned(file, e, r.staging)
			if err != nil {
				return err
			}
			f.Data = append([]byte(nil), buf...)
		}
	}
	// The extents' files may be evicted once the batch is released.
	for p, file := range r.files {
		file.Close()
		delete(r.files, p)
	}
	return nil
}

func (r *extentReader) close() {
	for _, f := range r.files {
		f.Close()
	}
	if r.staging != nil {
		_ = r.staging.Close()
	}
}
