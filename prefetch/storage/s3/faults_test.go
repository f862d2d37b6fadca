package s3_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

// A body that stops with its connection left open is read on from where
// it stopped after ReadIdleTimeout; when every attempt stalls, ReadAt
// fails with ErrUnavailable naming the object, the range and the timeout.
// Headers that never come, and a List whose body stalls, are retried too.
func TestS3Stalls(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	data := storagetest.Data("stalls", 64<<10)
	srv.Put(t, "bkt", "k.tar", data)
	srv.Put(t, "bkt", "one.tar", []byte{7})
	proxy := s3test.StartProxy(t, srv)
	const idle = 300 * time.Millisecond
	src := srv.Source(t, proxy.URL, 3, idle)
	obj, err := src.Stat(ctx, "s3://bkt/k.tar")
	if err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, o storage.Object, p []byte, off int64) error {
		return s3test.Within(t, "ReadAt", func() error { return src.ReadAt(ctx, o, p, off) })
	}

	for _, tc := range []struct {
		name   string
		faults []s3test.Fault
	}{
		{"body stalls once", []s3test.Fault{s3test.Stall}},
		{"body stalls twice", []s3test.Fault{s3test.Stall, s3test.Stall}},
		{"headers never come", []s3test.Fault{s3test.Hang}},
		{"stall, then reset", []s3test.Fault{s3test.Stall, s3test.Reset}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Queue(tc.faults...)
			p := make([]byte, 60000)
			start := time.Now()
			if err := read(t, obj, p, 500); err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			if !bytes.Equal(p, data[500:60500]) {
				t.Fatal("ReadAt gave wrong bytes")
			}
			t.Logf("%v: read in %v", tc.faults, time.Since(start).Round(time.Millisecond))
		})
	}

	t.Run("first body byte never comes", func(t *testing.T) {
		proxy.Queue(s3test.Stall) // a 1-byte body: the stall is before its byte
		p := make([]byte, 1)
		if err := read(t, storage.Object{URL: "s3://bkt/one.tar"}, p, 0); err != nil || p[0] != 7 {
			t.Fatalf("ReadAt = %v, byte %d", err, p[0])
		}
	})

	t.Run("every attempt stalls", func(t *testing.T) {
		proxy.Queue(s3test.Stall, s3test.Stall, s3test.Stall)
		start := time.Now()
		err := read(t, obj, make([]byte, 60000), 500)
		took := time.Since(start)
		var e *storage.Error
		if !errors.Is(err, storage.ErrUnavailable) || !errors.As(err, &e) || e.Object != obj.URL {
			t.Fatalf("ReadAt = %v, want ErrUnavailable naming %s", err, obj.URL)
		}
		for _, want := range []string{"bytes [500, 60500)", "after 3 attempts", idle.String(), "idle timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if took < 3*idle {
			t.Errorf("failed after %v, before three idle timeouts of %v", took, idle)
		}
		t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
	})

	t.Run("list body stalls", func(t *testing.T) {
		proxy.Queue(s3test.Stall)
		var objs []storage.Object
		err := s3test.Within(t, "List", func() (err error) { objs, err = src.List(ctx, "s3://bkt/"); return err })
		if err != nil || len(objs) != 2 {
			t.Fatalf("List = %d objects, %v; want 2", len(objs), err)
		}
		if n := proxy.Injected()[s3test.Stall]; n == 0 {
			t.Fatal("no stall was injected")
		}
	})
}

// A store that sends no ETags still gets every object pinned to a
// version: the source's contract holds with "lm:" tokens, List and Stat
// agree on them, and a rewritten object is ErrChanged.
func TestS3WithoutETags(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "noetag")
	proxy := s3test.StartProxy(t, srv)
	proxy.StripETags(true)
	src := srv.Source(t, proxy.URL, 3, 0)
	storagetest.Run(t, storagetest.Harness{
		Source:  src,
		Base:    "s3://noetag/",
		Put:     func(t testing.TB, name string, data []byte) { srv.Put(t, "noetag", name, data) },
		Missing: "s3://no-such-bucket/",
		Metrics: src.Metrics,
	})

	srv.Put(t, "noetag", "v.tar", storagetest.Data("v1", 3000))
	st, err := src.Stat(ctx, "s3://noetag/v.tar")
	if err != nil || !strings.HasPrefix(st.ETag, "lm:") || !strings.HasSuffix(st.ETag, "-3000") {
		t.Fatalf("Stat = %+v, %v; want an lm:…-3000 version", st, err)
	}
	objs, err := src.List(ctx, "s3://noetag/v.tar")
	if err != nil || len(objs) != 1 || objs[0] != st {
		t.Fatalf("List = %+v, %v; want [%+v]", objs, err, st)
	}
	p := make([]byte, 100)
	if err := src.ReadAt(ctx, st, p, 10); err != nil {
		t.Fatalf("ReadAt with an lm version: %v", err)
	}
	srv.Put(t, "noetag", "v.tar", storagetest.Data("v2", 3001))
	if err := src.ReadAt(ctx, st, p, 10); !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("ReadAt of a rewritten object = %v, want ErrChanged", err)
	}
}
