package pipeline

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
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

// A batch made of some samples run here and the others' rows computed in
// another batch (as another node does, masking, with the samples alone)
// and put with PutRows is the batch run whole, __valid__ included.
func TestRunSamplesAndPutRows(t *testing.T) {
	pool := NewPoolForTest(t)
	spec := imagenet(3)
	spec.OnError = "mask"
	p := compile(t, spec)
	all := photos(t, 10, 11, 12, 13, 14, 15)
	whole, wdst, err := run(t, p, pool, 2, all)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Prepare(2, all)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, b.Size())
	here := []bool{true, false, true, false, false, true}
	var away []Input
	for i, h := range here {
		if !h {
			away = append(away, all[i])
		}
	}
	ob, odst, err := run(t, p.Masking(), pool, 2, away)
	if err != nil {
		t.Fatal(err)
	}
	if len(ob.Outputs()) != len(b.Tensors())-1 {
		t.Fatalf("%d outputs of %d tensors", len(ob.Outputs()), len(b.Tensors()))
	}
	before := pool.Stats().Samples
	if err := pool.RunSamples(context.Background(), b, dst, here); err != nil {
		t.Fatal(err)
	}
	if got := pool.Stats().Samples - before; got != 3 {
		t.Errorf("RunSamples counted %d samples, ran 3", got)
	}
	k := 0
	for i, h := range here {
		if h {
			continue
		}
		rows := ob.SampleRows(k, odst)
		if b.PutRows(i, rows[:1], dst) || b.PutRows(i, append([][]byte{rows[0][1:]}, rows[1:]...), dst) {
			t.Fatal("PutRows took rows of the wrong number or length")
		}
		if !b.PutRows(i, rows, dst) {
			t.Fatalf("PutRows refused sample %d", i)
		}
		k++
	}
	if !bytes.Equal(contents(b, dst), contents(whole, wdst)) {
		t.Fatal("the batch put together differs from the batch run whole")
	}
	if err := pool.RunSamples(context.Background(), b, dst, here[:2]); err == nil {
		t.Error("RunSamples took a choice of 2 for a batch of 6")
	}
}

// Deferred samples: Prepare checks their fields are named but reads no
// bytes; a run refuses them until Fill gives them their bytes; filled and
// run, the batch is the batch run whole. A pipeline with text, json or npy
// outputs has rows that depend on the data: it defers nothing.
func TestDeferredAndFill(t *testing.T) {
	pool := NewPoolForTest(t)
	p := compile(t, imagenet(5))
	if !p.FixedRows() || compile(t, &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "t", Field: "txt", Decode: "text"}}}).FixedRows() {
		t.Fatal("FixedRows: images and ints are fixed, text is not")
	}
	all := photos(t, 20, 21, 22, 23)
	whole, wdst, err := run(t, p, pool, 1, all)
	if err != nil {
		t.Fatal(err)
	}
	in := photos(t, 20, 21, 22, 23)
	for _, i := range []int{1, 3} {
		in[i].Deferred = true
		for k := range in[i].Fields {
			in[i].Fields[k].Data = nil // the names alone: the label is not parsed
		}
	}
	b, err := p.Prepare(1, in)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, b.Size())
	if err := pool.Run(context.Background(), b, dst); err == nil {
		t.Fatal("a run with deferred samples not filled")
	}
	if err := b.Fill(0, all[0].Fields); err == nil {
		t.Fatal("Fill of a sample that was not deferred")
	}
	for _, i := range []int{1, 3} {
		if !b.Deferred(i) {
			t.Fatalf("sample %d not deferred", i)
		}
		if err := b.Fill(i, all[i].Fields); err != nil {
			t.Fatal(err)
		}
	}
	if err := pool.Run(context.Background(), b, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents(b, dst), contents(whole, wdst)) {
		t.Fatal("the batch with samples filled late differs from the batch run whole")
	}
	// A deferred sample without the field fails in Prepare, as it would with its bytes.
	in = photos(t, 30)
	in[0].Deferred, in[0].Fields = true, in[0].Fields[1:]
	if _, err := p.Prepare(1, in); !errors.Is(err, ErrMissingField) {
		t.Fatalf("a deferred sample without its image: %v", err)
	}
}
