package storage

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestPartSize(t *testing.T) {
	const MiB = 1 << 20
	s3 := LinkEstimate{FirstByte: 20 * time.Millisecond, Rate: 90e6} // 1.8 MB a part
	tests := []struct {
		name  string
		size  int64
		e     LinkEstimate
		spare int
		want  int64
	}{
		{"fits one part", 1 * MiB, s3, 0, 1800000},
		{"two equal parts", 2 * MiB, s3, 0, 1 * MiB},
		{"equal parts, rounded to 64 KiB", 8 * MiB, s3, 0, 1664 << 10}, // 5 parts of 1.6 MiB
		{"ragged size: the last part is no larger", 8*MiB + 1, s3, 0, 1664 << 10},
		{"empty object: one read", 0, s3, 0, 1800000},
		{"no estimate: S3's typical link", 8 * MiB, LinkEstimate{}, 0, 2 * MiB}, // 2.25 MB: 4 parts
		{"first byte only: S3's typical link", 8 * MiB, LinkEstimate{FirstByte: time.Second}, 0, 2 * MiB},
		{"rate only: S3's typical link", 8 * MiB, LinkEstimate{Rate: 1e12}, 0, 2 * MiB},
		{"NaN rate: S3's typical link", 8 * MiB, LinkEstimate{FirstByte: time.Millisecond, Rate: math.NaN()}, 0, 2 * MiB},
		{"infinite rate: S3's typical link", 8 * MiB, LinkEstimate{FirstByte: time.Millisecond, Rate: math.Inf(1)}, 0, 2 * MiB},
		{"slow link: the floor", 8 * MiB, LinkEstimate{FirstByte: time.Millisecond, Rate: 10e6}, 0, 1 * MiB},
		{"fast link: the ceiling", 64 * MiB, LinkEstimate{FirstByte: 100 * time.Millisecond, Rate: 1e9}, 0, MaxPartSize},
		{"fast link, small object: one read", 5 * MiB, LinkEstimate{FirstByte: 100 * time.Millisecond, Rate: 1e9}, 0, MaxPartSize},
		{"huge object: no overflow", math.MaxInt64, s3, 0, 1792 << 10},
		{"spare reads: more parts", 8 * MiB, s3, 8, 1 * MiB},
		{"spare reads: down to the smallest part", 2 * MiB, s3, 8, MinPartSize},
		{"spare reads: a small object in two", 1 * MiB, s3, 8, MinPartSize},
		{"spare reads: not split below the smallest part", 600 << 10, s3, 8, 1800000},
		{"fewer spare reads than parts: as busy", 8 * MiB, s3, 3, 1664 << 10},
		{"spare reads on a fast link", 64 * MiB, LinkEstimate{FirstByte: 100 * time.Millisecond, Rate: 1e9}, 8, 8 * MiB},
		{"unbounded spare, huge object: no overflow", math.MaxInt64, s3, math.MaxInt, 576 << 10},
		{"negative spare: as busy", 2 * MiB, s3, -5, 1 * MiB},
	}
	for _, tc := range tests {
		got := PartSize(tc.size, tc.e, tc.spare)
		if got != tc.want {
			t.Errorf("%s: PartSize(%d, %+v, %d) = %d, want %d", tc.name, tc.size, tc.e, tc.spare, got, tc.want)
		}
		if got < MinPartSize || got > MaxPartSize {
			t.Errorf("%s: PartSize = %d, outside [%d, %d]", tc.name, got, MinPartSize, MaxPartSize)
		}
		if tc.size > got && got%partAlign != 0 {
			t.Errorf("%s: PartSize = %d, not whole 64 KiB", tc.name, got)
		}
	}
}

func TestLinkObserve(t *testing.T) {
	var l Link
	if e := l.Estimate(); e != (LinkEstimate{}) {
		t.Fatalf("a new Link estimates %+v, want nothing", e)
	}
	steps := []struct {
		firstByte time.Duration
		n         int
		body      time.Duration
		want      LinkEstimate
	}{
		{20 * time.Millisecond, 1 << 20, 10 * time.Millisecond, LinkEstimate{20 * time.Millisecond, 104857600}}, // the first sample is taken whole
		{28 * time.Millisecond, 64 << 10, time.Microsecond, LinkEstimate{21 * time.Millisecond, 104857600}},     // a small body tells no rate
		{21 * time.Millisecond, 2 << 20, 10 * time.Millisecond, LinkEstimate{21 * time.Millisecond, 104857600 + (209715200-104857600)/8}},
		{0, 1 << 20, 0, LinkEstimate{21 * time.Millisecond, 104857600 + (209715200-104857600)/8}}, // no times: nothing
	}
	for i, s := range steps {
		l.Observe(s.firstByte, s.n, s.body)
		if got := l.Estimate(); got.FirstByte != s.want.FirstByte || math.Abs(got.Rate-s.want.Rate) > 1 {
			t.Errorf("after sample %d: %+v, want %+v", i, got, s.want)
		}
	}
}

// countingSource is a Source that counts the reads in flight at once.
type countingSource struct {
	Source
	mu   sync.Mutex // guards now, most
	now  int
	most int
}

func (s *countingSource) ReadAt(ctx context.Context, obj Object, p []byte, off int64) error {
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	return s.Source.ReadAt(ctx, obj, p, off)
}

func TestFetchGetSlots(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	path := filepath.Join(dir, "a.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := &countingSource{Source: NewFileSource()}
	obj, err := src.Stat(ctx, "file://"+path)
	if err != nil {
		t.Fatal(err)
	}
	slots := NewGetSlots(2)
	var wg sync.WaitGroup
	for range 4 { // 4 fetches of 16 parts, 8 at a time each: at most 2 reads at once
		wg.Go(func() {
			got, err := Fetch(ctx, src, obj, FetchOptions{PartSize: 64 << 10, Parallel: 8, Gets: slots})
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Fetch: %v (%d bytes, equal %v)", err, len(got), bytes.Equal(got, data))
			}
		})
	}
	wg.Wait()
	if src.most > 2 || src.most < 1 {
		t.Errorf("%d reads in flight at once, want at most 2", src.most)
	}

	// A fetch waiting for a slot stops with its context, as a read would:
	// ErrUnavailable, and no read sent.
	held := NewGetSlots(1)
	if err := held.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	src.most = 0
	for _, part := range []int64{0, 64 << 10} { // one read, and parts
		_, err = Fetch(cctx, src, obj, FetchOptions{PartSize: part, Gets: held})
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("part %d: Fetch with no slot and a cancelled context = %v, want ErrUnavailable", part, err)
		}
	}
	if src.most != 0 {
		t.Errorf("%d reads sent without a slot", src.most)
	}
	held.release()
	if _, err := Fetch(ctx, src, obj, FetchOptions{Gets: held}); err != nil {
		t.Errorf("Fetch once the slot is free: %v", err)
	}
}
