package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/prefetch/wds"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// A hint lists each shard once, in the order the epochs first need them,
// and a byte budget keeps the ones needed first.
func TestHintOrder(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 9, PerShard: 3, SampleSize: 1000, Seed: 1}, nil)
	ds, err := h.srv.catalog.Open(context.Background(), h.url, "")
	if err != nil {
		t.Fatal(err)
	}
	base := shuffle.Settings{Seed: 4, Window: 2}
	objs, err := h.srv.hints.order(ds, base, []uint64{3, 4}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 9 {
		t.Fatalf("%d shards for two epochs, want each of the 9 once", len(objs))
	}
	st := base
	st.Epoch = 3
	plan, err := h.srv.plans.get(ds, st)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(objs); i++ {
		prev, cur := ds.ShardOf(objs[i-1].Key()), ds.ShardOf(objs[i].Key())
		if plan.Rank(prev) > plan.Rank(cur) {
			t.Fatalf("shard %d comes before shard %d but epoch 3 reads it later", prev, cur)
		}
	}
	size := objs[0].Bytes()
	cut, err := h.srv.hints.order(ds, base, []uint64{3, 4}, uint64(3*size+size/2))
	if err != nil {
		t.Fatal(err)
	}
	if len(cut) != 3 || cut[0] != objs[0] || cut[2] != objs[2] {
		t.Fatalf("budget of 3.5 shards kept %d shards, want the first 3", len(cut))
	}
}

func TestPrefetchHintOnOneNode(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 5, SampleSize: 2000, Seed: 2}, nil)
	ctx := context.Background()
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	for _, tc := range []struct {
		req   *stokerv1.PrefetchRequest
		field string
	}{
		{&stokerv1.PrefetchRequest{Epochs: []uint64{0}}, "url"},
		{&stokerv1.PrefetchRequest{Url: h.url}, "epochs"},
		{&stokerv1.PrefetchRequest{Url: h.url, Epochs: []uint64{0}, DeadlineUnixMs: time.Now().Add(-time.Minute).UnixMilli()}, "deadline"},
	} {
		if _, err := api.Prefetch(ctx, tc.req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Prefetch(%v): %v, want InvalidArgument naming %s", tc.req, err, tc.field)
		}
	}
	if _, err := api.PrefetchStatus(ctx, &stokerv1.PrefetchStatusRequest{HintId: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("status of an unknown hint: %v, want NotFound", err)
	}

	resp, err := api.Prefetch(ctx, &stokerv1.PrefetchRequest{Url: h.url, Epochs: []uint64{0, 1}, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetShardsTotal() != 4 || resp.GetHintId() == "" {
		t.Fatalf("hint %+v: want 4 shards and an id", resp)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := api.PrefetchStatus(ctx, &stokerv1.PrefetchStatusRequest{HintId: resp.GetHintId()})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetDone() {
			if len(st.GetNodes()) != 1 || st.GetNodes()[0].GetState() != hintDone || st.GetBytesDone() != resp.GetBytesTotal() {
				t.Fatalf("finished hint: %v; want one node done with %d bytes", st, resp.GetBytesTotal())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hint not done: %v", st)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}

	// The same over HTTP, with errors as JSON.
	web := httptest.NewServer(h.srv.HTTPHandler())
	defer web.Close()
	r, err := http.Post(web.URL+"/v1/prefetch", "application/json", strings.NewReader(`{"url": "`+h.url+`", "epochs": [2], "budget_bytes": "1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var hint stokerv1.PrefetchResponse
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if err := json.Unmarshal(body, &struct {
		ID *string `json:"hint_id"`
	}{&hint.HintId}); err != nil || r.StatusCode != http.StatusOK || hint.HintId == "" {
		t.Fatalf("POST /v1/prefetch: %d %s", r.StatusCode, body)
	}
	r, err = http.Get(web.URL + "/v1/prefetch/" + hint.HintId)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/prefetch/%s: %v %v", hint.HintId, r.Status, err)
	}
	r.Body.Close()
	r, _ = http.Post(web.URL+"/v1/prefetch", "application/json", strings.NewReader(`{"url": 7}`))
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"error"`)) {
		t.Fatalf("bad JSON: %d %s, want 400 with an error", r.StatusCode, body)
	}
}

// ReadShard serves a shard's bytes, whole or a range, in order.
func TestReadShard(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 1, PerShard: 40, SampleSize: 60 << 10, Seed: 3}, nil)
	ctx := context.Background()
	ds, err := h.srv.catalog.Open(ctx, h.url, "")
	if err != nil {
		t.Fatal(err)
	}
	o := ds.Object(0)
	ref, err := h.srv.shards.GetLocal(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(ref.Bytes())
	ref.Release()
	peer := stokerv1.NewPeerClient(dialRaw(t, h.addr))
	read := func(off, n int64) ([]byte, error) {
		st, err := peer.ReadShard(ctx, &stokerv1.ReadShardRequest{Object: o.URL, Etag: o.ETag, Size: o.Size, Offset: off, Length: n})
		if err != nil {
			return nil, err
		}
		var got []byte
		for {
			c, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			if err != nil {
				return nil, err
			}
			if c.GetOffset() != off+int64(len(got)) || c.GetTotal() != int64(len(want)) {
				t.Fatalf("chunk at %d of %d, want %d of %d", c.GetOffset(), c.GetTotal(), off+int64(len(got)), len(want))
			}
			got = append(got, c.GetData()...)
		}
	}
	if got, err := read(0, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("whole shard: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if got, err := read(1000, 5000); err != nil || !bytes.Equal(got, want[1000:6000]) {
		t.Fatalf("range: %d bytes, %v", len(got), err)
	}
	if _, err := read(int64(len(want))-10, 20); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("range past the end: %v, want InvalidArgument", err)
	}
	st, err := peer.ReadShard(ctx, &stokerv1.ReadShardRequest{})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ReadShard without an object: %v, want InvalidArgument", err)
	}
}

// An index-only hint counts and indexes every shard of a dataset that has
// no index beside it, so the next open is counted, and reads no shard of a
// dataset counted already.
func TestIndexOnlyHint(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 6, PerShard: 7, SampleSize: 1000, Seed: 5}, nil)
	ctx := context.Background()
	api := stokerv1.NewLoaderClient(dialRaw(t, h.addr))
	open := func() *stokerv1.Dataset {
		r, err := api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: h.url})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetDataset()
	}
	if ds := open(); ds.GetCounted() {
		t.Fatal("a dataset with no index was counted at its open")
	}
	for round := range 2 {
		reads := h.srv.shards.Fetches()
		resp, err := api.Prefetch(ctx, &stokerv1.PrefetchRequest{Url: h.url, IndexOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for {
			st, err := api.PrefetchStatus(ctx, &stokerv1.PrefetchStatusRequest{HintId: resp.GetHintId()})
			if err != nil {
				t.Fatal(err)
			}
			if st.GetDone() {
				if st.GetBytesDone() != st.GetBytesTotal() {
					t.Fatalf("index hint done with %d of %d bytes: %v", st.GetBytesDone(), st.GetBytesTotal(), st.GetNodes())
				}
				break
			}
			time.Sleep(5 * time.Millisecond) // poll interval
		}
		ds := open()
		if !ds.GetCounted() || ds.GetNumSamples() != 42 {
			t.Fatalf("round %d: after the index hint: counted %v, %d samples; want true, 42", round, ds.GetCounted(), ds.GetNumSamples())
		}
		if got := h.srv.shards.Fetches() - reads; round == 1 && got != 0 {
			t.Fatalf("an index hint on a counted, indexed dataset read %d shards", got)
		}
	}
}
