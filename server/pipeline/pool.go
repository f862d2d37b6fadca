package pipeline

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Config sets a Pool.
type Config struct {
	// Workers is the number of samples transformed at once; 0 is
	// GOMAXPROCS (the cores the server may use).
	Workers int
	// MaxImagePixels refuses larger images (width x height) before
	// decoding them: Pillow's MAX_IMAGE_PIXELS by default.
	MaxImagePixels int64
	// MemoryBytes bounds the bytes all workers' images decode to at once
	// (a worker waits for room); an image needing more is refused.
	MemoryBytes int64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxImagePixels: 89_478_485, // Pillow's: about 0.25 GiB of RGB
		MemoryBytes:    1 << 30,    // 1 GiB: a few of the largest images at once, any number of usual ones
	}
}

// ErrClosed means the pool was closed.
var ErrClosed = errors.New("pipeline: pool closed")

// Pool is the workers that transform samples for every stream of a
// server. Safe for concurrent use; Close it once no Run is in progress.
type Pool struct {
	cfg  Config
	jobs chan job
	mem  *semaphore.Weighted
	quit chan struct{}
	wg   sync.WaitGroup // the workers

	mu     sync.Mutex // guards closed and the Add calls of runs
	closed bool
	runs   sync.WaitGroup // Run calls in progress

	samples   atomic.Uint64
	busy      atomic.Int64 // nanoseconds workers spent on samples (wall time: a loaded host counts its waits)
	errors    atomic.Uint64
	dctScaled atomic.Uint64
	bytesOut  atomic.Uint64
}

// job is one sample of a batch to transform into dst.
type job struct {
	ctx  context.Context
	b    *Batch
	i    int
	dst  []byte
	done func(i int, err error)
}

// NewPool starts the workers.
func NewPool(cfg Config) *Pool {
	d := DefaultConfig()
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxImagePixels <= 0 {
		cfg.MaxImagePixels = d.MaxImagePixels
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = d.MemoryBytes
	}
	p := &Pool{cfg: cfg, jobs: make(chan job, cfg.Workers), mem: semaphore.NewWeighted(cfg.MemoryBytes), quit: make(chan struct{})}
	for range cfg.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// Close stops the workers once every Run in progress has returned.
// Idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.runs.Wait()
	close(p.quit)
	p.wg.Wait()
}

func (p *Pool) work() {
	defer p.wg.Done()
	w := &worker{pool: p}
	for {
		select {
		case j := <-p.jobs:
			t := time.Now()
			err := j.ctx.Err()
			if err == nil {
				err = w.sample(j.ctx, j.b, j.i, j.dst)
			}
			p.busy.Add(int64(time.Since(t)))
			j.done(j.i, err)
		case <-p.quit:
			return
		}
	}
}

// Run transforms the batch's samples into dst (at least b.Size() bytes),
// on the pool's workers, and returns once no worker touches dst any
// more. A sample that fails is its *SampleError (the first in sample
// order), unless the pipeline masks it; ctx ending stops the batch.
func (p *Pool) Run(ctx context.Context, b *Batch, dst []byte) error {
	return p.run(ctx, b, dst, nil)
}

// RunSamples is Run for the samples i with which[i] alone: the others'
// rows are left as they are (the caller writes them, with PutRows, or
// runs them later). Their __valid__ entries are set too; the pool counts
// only the samples run, and their rows' bytes.
func (p *Pool) RunSamples(ctx context.Context, b *Batch, dst []byte, which []bool) error {
	if len(which) != len(b.inputs) {
		return errorf("pipeline: %d samples chosen of a batch of %d", len(which), len(b.inputs))
	}
	return p.run(ctx, b, dst, which)
}

func (p *Pool) run(ctx context.Context, b *Batch, dst []byte, which []bool) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.runs.Add(1)
	p.mu.Unlock()
	defer p.runs.Done()
	if len(dst) < b.size {
		return errorf("pipeline: a buffer of %d bytes for a batch of %d", len(dst), b.size)
	}
	for i := range b.inputs {
		if (which == nil || which[i]) && b.inputs[i].Deferred && b.errs[i] == nil {
			return errorf("pipeline: sample %q run before its fields came (Fill)", b.inputs[i].Key)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // guards errs, first
	errs := make([]error, len(b.inputs))
	first := -1
	var pending sync.WaitGroup
	done := func(i int, err error) {
		defer pending.Done()
		if err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		errs[i] = err
		if !b.p.mask && IsSampleError(err) && (first < 0 || i < first) {
			first = i
			cancel() // the stream fails: stop the other samples
		}
	}
	var err error
	for i := range b.inputs {
		if which != nil && !which[i] {
			continue
		}
		if b.errs[i] != nil { // masked in Prepare
			b.zero(i, dst)
			continue
		}
		pending.Add(1)
		select {
		case p.jobs <- job{ctx: ctx, b: b, i: i, dst: dst, done: done}:
		case <-ctx.Done():
			pending.Done()
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	pending.Wait()
	if first >= 0 {
		p.errors.Add(1)
		return errs[first]
	}
	if err == nil {
		err = ctx.Err()
	}
	for i, e := range errs {
		switch {
		case e == nil:
		case b.p.mask && IsSampleError(e):
			p.errors.Add(1)
			b.errs[i] = e
			b.zero(i, dst)
		case err == nil:
			err = e
		}
	}
	if err != nil {
		return err
	}
	if b.valid >= 0 {
		t := b.tensors[b.valid]
		for i := range b.inputs {
			if which != nil && !which[i] {
				continue
			}
			dst[t.Offset+i] = 1
			if b.errs[i] != nil {
				dst[t.Offset+i] = 0
			}
		}
	}
	if which == nil {
		p.samples.Add(uint64(len(b.inputs)))
		p.bytesOut.Add(uint64(b.size))
		return nil
	}
	for i, w := range which {
		if w {
			p.samples.Add(1)
			p.bytesOut.Add(uint64(b.RowBytes(i)))
		}
	}
	return nil
}

// Stats is what a pool has done.
type Stats struct {
	Workers   int
	Samples   uint64
	Busy      time.Duration
	Errors    uint64
	DCTScaled uint64
	BytesOut  uint64
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	return Stats{Workers: p.cfg.Workers, Samples: p.samples.Load(), Busy: time.Duration(p.busy.Load()),
		Errors: p.errors.Load(), DCTScaled: p.dctScaled.Load(), BytesOut: p.bytesOut.Load()}
}
