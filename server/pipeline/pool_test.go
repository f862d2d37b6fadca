package pipeline

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Batches of several streams share the workers; each gets what it would
// alone.
func TestPoolConcurrentRuns(t *testing.T) {
	pool := newTestPool(t, Config{Workers: 3})
	p := compile(t, imagenet(9))
	b0, dst0, err := run(t, p, NewPoolForTest(t), 0, photos(t, 0, 1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	alone := contents(b0, dst0)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			b, err := p.Prepare(0, photos(t, 0, 1, 2, 3))
			if err != nil {
				t.Error(err)
				return
			}
			dst := make([]byte, b.Size())
			if err := pool.Run(context.Background(), b, dst); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(contents(b, dst), alone) {
				t.Error("a batch run beside others differs from the same batch alone")
			}
		})
	}
	wg.Wait()
	if st := pool.Stats(); st.Samples != 24 || st.Workers != 3 || st.Busy <= 0 {
		t.Errorf("stats %+v", st)
	}
}

// NewPoolForTest is a one-worker pool closed with the test.
func NewPoolForTest(t *testing.T) *Pool { return newTestPool(t, Config{Workers: 1}) }

func TestPoolCancel(t *testing.T) {
	pool := newTestPool(t, Config{Workers: 1})
	p := compile(t, imagenet(9))
	b, err := p.Prepare(0, photos(t, 0, 1, 2, 3, 4, 5, 6, 7))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pool.Run(ctx, b, make([]byte, b.Size())); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled run: %v", err)
	}
	if err := pool.Run(context.Background(), b, make([]byte, 10)); err == nil {
		t.Error("a buffer too small was taken")
	}
	pool.Close()
	pool.Close() // idempotent
	if err := pool.Run(context.Background(), b, make([]byte, b.Size())); !errors.Is(err, ErrClosed) {
		t.Errorf("a run on a closed pool: %v", err)
	}
}

// contents are the bytes of a batch's tensors (not the padding between).
func contents(b *Batch, dst []byte) []byte {
	var out []byte
	for _, t := range b.Tensors() {
		out = append(out, dst[t.Offset:t.Offset+t.Len]...)
	}
	return out
}
