// Package storagetest is the conformance suite every storage.Source passes:
// one set of tests, run against the file source and the S3 source alike.
package storagetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Harness is what the suite needs of one Source implementation.
type Harness struct {
	// Source is the Source under test.
	Source storage.Source
	// Base is a URL ending in "/" under which nothing exists yet; the suite
	// puts its objects under it, each test in its own sub-prefix.
	Base string
	// Put creates or overwrites the object Base+name with data. Nested
	// names ("a/b/c") must work.
	Put func(t testing.TB, name string, data []byte)
	// Missing is a URL prefix whose bucket or folder does not exist: List
	// of it must be ErrNotFound.
	Missing string
	// Metrics, if set, returns the Source's counters; the suite checks that
	// ReadAt counts its bytes and requests.
	Metrics func() storage.Metrics
}

// Run runs the suite. Its subtests run one after another; within them,
// Sources are used from many goroutines.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness, string)
	}{
		{"Stat", testStat},
		{"List", testList},
		{"ListMissing", testListMissing},
		{"ReadAt", testReadAt},
		{"ReadAtChanged", testReadAtChanged},
		{"Fetch", testFetch},
		{"FetchChanged", testFetchChanged},
		{"Concurrent", testConcurrent},
		{"Metrics", testMetrics},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h, h.Base+tc.name+"/") })
	}
}

// put creates base+name through the harness and returns its URL.
func put(t *testing.T, h Harness, base, name string, data []byte) string {
	t.Helper()
	h.Put(t, base[len(h.Base):]+name, data)
	return base + name
}

// Data returns n bytes that are a pure function of seed.
func Data(seed string, n int) []byte {
	f := fnv.New64a()
	f.Write([]byte(seed))
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], f.Sum64())
	r := rand.New(rand.NewChaCha8(key))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// wantKind fails t unless err is an *Error of kind.
func wantKind(t *testing.T, what string, err, kind error) *storage.Error {
	t.Helper()
	var e *storage.Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v (%T), want a *prefetch.Error of kind %q", what, err, err, kind)
	}
	return e
}

func testStat(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	data := Data("stat", 1000)
	url := put(t, h, base, "obj.tar", data)
	o, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatalf("Stat(%s): %v", url, err)
	}
	if o.URL != url || o.Size != int64(len(data)) || o.ETag == "" {
		t.Fatalf("Stat(%s) = %+v, want URL %s, Size %d and an ETag", url, o, url, len(data))
	}
	again, err := h.Source.Stat(ctx, url)
	if err != nil || again != o {
		t.Fatalf("second Stat = %+v, %v; want %+v", again, err, o)
	}
	put(t, h, base, "obj.tar", Data("stat2", 1001))
	changed, err := h.Source.Stat(ctx, url)
	if err != nil || changed.ETag == o.ETag || changed.Size != 1001 {
		t.Fatalf("Stat after rewrite = %+v, %v; want size 1001 and an ETag other than %s", changed, err, o.ETag)
	}

	missing := base + "missing.tar"
	_, err = h.Source.Stat(ctx, missing)
	if e := wantKind(t, "Stat of a missing object", err, storage.ErrNotFound); e.Object != missing || e.Op == "" {
		t.Errorf("Stat of a missing object: Op %q Object %q, want an op and %s", e.Op, e.Object, missing)
	}
	_, err = h.Source.Stat(ctx, "nosuchscheme://x/y")
	_ = wantKind(t, "Stat of another scheme's URL", err, storage.ErrBadURL)
}

func testList(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	names := []string{"b.tar", "a/2.tar", "a/1.tar", "a/sub/3.tar", "ab.tar", "a-c.tar", "c/x"}
	for i, n := range names {
		put(t, h, base, n, Data(n, 10+i))
	}
	urls := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, base+n)
		}
		return out
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", urls("a-c.tar", "a/1.tar", "a/2.tar", "a/sub/3.tar", "ab.tar", "b.tar", "c/x")},
		{"a", urls("a-c.tar", "a/1.tar", "a/2.tar", "a/sub/3.tar", "ab.tar")},
		{"a/", urls("a/1.tar", "a/2.tar", "a/sub/3.tar")},
		{"a/sub/", urls("a/sub/3.tar")},
		{"a/s", urls("a/sub/3.tar")},
		{"b.tar", urls("b.tar")},
		{"c/x", urls("c/x")},
		{"zzz", nil},
		{"a/zz", nil},
	}
	for _, tc := range tests {
		got, err := h.Source.List(ctx, base+tc.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", base+tc.prefix, err)
			continue
		}
		var gotURLs []string
		for _, o := range got {
			gotURLs = append(gotURLs, o.URL)
			st, err := h.Source.Stat(ctx, o.URL)
			if err != nil || st != o {
				t.Errorf("List(%q) gave %+v; Stat gives %+v, %v", base+tc.prefix, o, st, err)
			}
		}
		if !slices.Equal(gotURLs, tc.want) {
			t.Errorf("List(%q) = %q, want %q", base+tc.prefix, gotURLs, tc.want)
		}
	}
}

func testListMissing(t *testing.T, h Harness, base string) {
	_, err := h.Source.List(context.Background(), h.Missing)
	_ = wantKind(t, "List of a missing bucket or folder", err, storage.ErrNotFound)
}

func testReadAt(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	const size = 100 << 10
	data := Data("readat", size)
	url := put(t, h, base, "obj.tar", data)
	st, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []storage.Object{st, {URL: url}} {
		for _, tc := range []struct {
			name    string
			off     int64
			n       int
			wantErr error
		}{
			{"whole", 0, size, nil},
			{"first byte", 0, 1, nil},
			{"middle", 4097, 50000, nil},
			{"last byte", size - 1, 1, nil},
			{"empty", 10, 0, nil},
			{"across the end", size - 10, 20, storage.ErrCorrupt},
			{"at the end", size, 1, storage.ErrCorrupt},
			{"far past the end", 10 * size, 5, storage.ErrCorrupt},
			{"negative offset", -1, 5, storage.ErrCorrupt},
		} {
			p := make([]byte, tc.n)
			err := h.Source.ReadAt(ctx, obj, p, tc.off)
			if tc.wantErr != nil {
				e := wantKind(t, fmt.Sprintf("ReadAt %s (etag %q)", tc.name, obj.ETag), err, tc.wantErr)
				if e.Object != url || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("ReadAt %s: %v: want object %s and io.ErrUnexpectedEOF", tc.name, err, url)
				}
				continue
			}
			if err != nil {
				t.Errorf("ReadAt %s (etag %q): %v", tc.name, obj.ETag, err)
			} else if !bytes.Equal(p, data[tc.off:tc.off+int64(tc.n)]) {
				t.Errorf("ReadAt %s (etag %q): wrong bytes", tc.name, obj.ETag)
			}
		}
	}
	missing := storage.Object{URL: base + "missing.tar", Size: 10, ETag: st.ETag}
	err = h.Source.ReadAt(ctx, missing, make([]byte, 5), 0)
	if e := wantKind(t, "ReadAt of a missing object", err, storage.ErrNotFound); e.Object != missing.URL {
		t.Errorf("ReadAt of a missing object names %q, want %s", e.Object, missing.URL)
	}
}

func testReadAtChanged(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	url := put(t, h, base, "obj.tar", Data("v1", 4096))
	old, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	v2 := Data("v2", 4097) // another size too, so that coarse timestamps cannot hide the change
	put(t, h, base, "obj.tar", v2)
	err = h.Source.ReadAt(ctx, old, make([]byte, 100), 0)
	if e := wantKind(t, "ReadAt with the old ETag", err, storage.ErrChanged); e.Object != url {
		t.Errorf("ErrChanged names %q, want %s", e.Object, url)
	}
	cur, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if err := h.Source.ReadAt(ctx, cur, p, 3000); err != nil || !bytes.Equal(p, v2[3000:3100]) {
		t.Fatalf("ReadAt with the new ETag: %v (bytes equal: %v)", err, bytes.Equal(p, v2[3000:3100]))
	}
}

func testFetch(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	tests := []struct {
		name string
		size int
		opt  storage.FetchOptions
	}{
		{"empty", 0, storage.FetchOptions{}},
		{"small, defaults", 3000, storage.FetchOptions{}},
		{"one part exactly", 64 << 10, storage.FetchOptions{PartSize: 64 << 10}},
		{"parts, even", 1 << 20, storage.FetchOptions{PartSize: 64 << 10, Parallel: 4}},
		{"parts, ragged end", 1<<20 + 123, storage.FetchOptions{PartSize: 100 << 10, Parallel: 3}},
		{"parts, one at a time", 300 << 10, storage.FetchOptions{PartSize: 64 << 10, Parallel: 1}},
	}
	for i, tc := range tests {
		data := Data(tc.name, tc.size)
		url := put(t, h, base, fmt.Sprintf("obj%d.tar", i), data)
		st, err := h.Source.Stat(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range []storage.Object{st, {URL: url}} {
			got, err := storage.Fetch(ctx, h.Source, obj, tc.opt)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Fetch %s (etag %q): %v (%d bytes, want %d, equal %v)", tc.name, obj.ETag, err, len(got), len(data), bytes.Equal(got, data))
			}
		}
		if tc.size > 0 {
			_, err = storage.Fetch(ctx, h.Source, st, storage.FetchOptions{MaxSize: int64(tc.size) - 1})
			_ = wantKind(t, "Fetch over MaxSize", err, storage.ErrTooLarge)
		}
	}
	_, err := storage.Fetch(ctx, h.Source, storage.Object{URL: base + "missing.tar"}, storage.FetchOptions{})
	_ = wantKind(t, "Fetch of a missing object", err, storage.ErrNotFound)
}

func testFetchChanged(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	url := put(t, h, base, "obj.tar", Data("v1", 200<<10))
	old, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	put(t, h, base, "obj.tar", Data("v2", 200<<10+1))
	_, err = storage.Fetch(ctx, h.Source, old, storage.FetchOptions{PartSize: 32 << 10, Parallel: 2})
	_ = wantKind(t, "Fetch with the old ETag", err, storage.ErrChanged)
}

func testConcurrent(t *testing.T, h Harness, base string) {
	ctx := context.Background()
	const objects, size, workers = 4, 256 << 10, 8
	data := make([][]byte, objects)
	objs := make([]storage.Object, objects)
	for i := range objects {
		data[i] = Data(fmt.Sprint("concurrent", i), size)
		url := put(t, h, base, fmt.Sprintf("obj%d.tar", i), data[i])
		var err error
		if objs[i], err = h.Source.Stat(ctx, url); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 10 {
				i := r.IntN(objects)
				off := r.Int64N(size)
				p := make([]byte, r.Int64N(size-off)+1)
				if err := h.Source.ReadAt(ctx, objs[i], p, off); err != nil || !bytes.Equal(p, data[i][off:off+int64(len(p))]) {
					t.Errorf("worker %d: ReadAt %s [%d,+%d): %v", w, objs[i].URL, off, len(p), err)
				}
			}
			i := w % objects
			if _, err := h.Source.Stat(ctx, objs[i].URL); err != nil {
				t.Errorf("worker %d: Stat: %v", w, err)
			}
			if list, err := h.Source.List(ctx, base); err != nil || len(list) != objects {
				t.Errorf("worker %d: List = %d objects, %v", w, len(list), err)
			}
			got, err := storage.Fetch(ctx, h.Source, objs[i], storage.FetchOptions{PartSize: 40 << 10, Parallel: 3})
			if err != nil || !bytes.Equal(got, data[i]) {
				t.Errorf("worker %d: Fetch %s: %v", w, objs[i].URL, err)
			}
		})
	}
	wg.Wait()
}

func testMetrics(t *testing.T, h Harness, base string) {
	if h.Metrics == nil {
		t.Skip("the harness gives no Metrics")
	}
	ctx := context.Background()
	url := put(t, h, base, "obj.tar", Data("metrics", 5000))
	obj, err := h.Source.Stat(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Metrics()
	if err := h.Source.ReadAt(ctx, obj, make([]byte, 1234), 100); err != nil {
		t.Fatal(err)
	}
	after := h.Metrics()
	if after.Bytes-before.Bytes != 1234 || after.Requests <= before.Requests {
		t.Errorf("metrics went from %+v to %+v for one 1234-byte ReadAt", before, after)
	}
}
