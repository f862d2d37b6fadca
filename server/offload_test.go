package server

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func preprocessRequest(n int) *stokerv1.PreprocessRequest {
	req := &stokerv1.PreprocessRequest{Url: "s3://b/p/", Pipeline: readyPipeline(1), Epoch: 2}
	for i := range n {
		req.Samples = append(req.Samples, &stokerv1.PreprocessSample{Shard: uint32(i), Sample: 3, Position: uint64(i), Etag: `"e"`})
	}
	return req
}

// Every bound of a Preprocess request is checked, naming the field.
func TestParsePreprocessBounds(t *testing.T) {
	for _, tc := range []struct {
		field  string
		mutate func(*stokerv1.PreprocessRequest)
	}{
		{"url", func(r *stokerv1.PreprocessRequest) { r.Url = "" }},
		{"pipeline", func(r *stokerv1.PreprocessRequest) { r.Pipeline = nil }},
		{"samples", func(r *stokerv1.PreprocessRequest) { r.Samples = nil }},
		{"samples", func(r *stokerv1.PreprocessRequest) { r.Samples = preprocessRequest(maxPreprocessSamples + 1).Samples }},
		{"samples[1].shard", func(r *stokerv1.PreprocessRequest) { r.Samples[1].Shard = 1 << 31 }},
		{"samples[1].sample", func(r *stokerv1.PreprocessRequest) { r.Samples[1].Sample = 1<<32 - 1 }},
		{"samples[1].etag", func(r *stokerv1.PreprocessRequest) { r.Samples[1].Etag = strings.Repeat("e", maxETagBytes+1) }},
		{"samples[1].position", func(r *stokerv1.PreprocessRequest) { r.Samples[1].Position = maxPosition + 1 }},
	} {
		req := preprocessRequest(2)
		tc.mutate(req)
		_, err := parsePreprocess(req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming it", tc.field, err)
		}
	}
	got, err := parsePreprocess(preprocessRequest(maxPreprocessSamples))
	if err != nil || len(got) != maxPreprocessSamples || got[5].shard != 5 || got[5].sample != 3 || got[5].position != 5 {
		t.Fatalf("the largest request: %v", err)
	}
}

// FuzzParsePreprocess: whatever the bytes, an accepted request's numbers
// fit what the handler does with them.
func FuzzParsePreprocess(f *testing.F) {
	for _, req := range []*stokerv1.PreprocessRequest{preprocessRequest(1), preprocessRequest(3)} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req stokerv1.PreprocessRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		got, err := parsePreprocess(&req)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) > maxPreprocessSamples || req.GetUrl() == "" || req.GetPipeline() == nil {
			t.Fatalf("accepted %d samples of %v", len(got), &req)
		}
		for _, s := range got {
			if s.shard < 0 || s.shard > maxShardNumber || s.sample < 0 || s.sample > maxShardNumber ||
				s.position < 0 || s.position > maxPosition || len(s.etag) > maxETagBytes {
				t.Fatalf("accepted %+v", s)
			}
		}
	})
}

// The Peer.Preprocess handler on a real server: each sample's rows are
// the ones the server's own pipeline stream gives at its position; a
// sample it cannot read (another ETag, a number past its shard's) gets
// its error alone; an answer over the bound is refused before it is made.
func TestPreprocessHandler(t *testing.T) {
	const per = 6
	h := photoHarness(t, 2, per, nil, nil)
	ref, _ := readRank(t, h.client, readyRequest(h, 4, 1, 0, 1, 4))
	ctx := context.Background()
	ds, err := h.client.OpenDataset(ctx, h.url)
	if err != nil {
		t.Fatal(err)
	}
	req := &stokerv1.PreprocessRequest{Url: h.url, Pipeline: readyPipeline(104), Epoch: 1}
	var want []readySample
	for pos, s := range ref {
		var n int
		if _, err := fmt.Sscanf(s.key, "%d", &n); err != nil {
			t.Fatal(err)
		}
		req.Samples = append(req.Samples, &stokerv1.PreprocessSample{Shard: uint32(n / per), Sample: uint32(n % per), Position: pos,
			Etag: ds.GetShards()[n/per].GetEtag()})
		want = append(want, s)
	}
	req.Samples = append(req.Samples,
		&stokerv1.PreprocessSample{Shard: 0, Sample: 0, Position: 0, Etag: "other"},
		&stokerv1.PreprocessSample{Shard: 1, Sample: per, Position: 0, Etag: ds.GetShards()[1].GetEtag()},
		&stokerv1.PreprocessSample{Shard: 2, Sample: 0, Position: 0})
	peer := stokerv1.NewPeerClient(h.client.Conn())
	resp, err := peer.Preprocess(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(req.Samples) || len(resp.GetTensors()) != 3 {
		t.Fatalf("%d results, %d tensors", len(resp.GetResults()), len(resp.GetTensors()))
	}
	for k, s := range want {
		r := resp.GetResults()[k]
		if r.GetError() != "" || r.GetKey() != s.key {
			t.Fatalf("sample %s: key %q, error %q", s.key, r.GetKey(), r.GetError())
		}
		for ti, tn := range resp.GetTensors() {
			if !bytes.Equal(r.GetRows()[ti], s.tensors[tn.GetName()]) {
				t.Fatalf("sample %s: its %s row differs from the stream's", s.key, tn.GetName())
			}
		}
	}
	for k, wantErr := range []string{"ETag", "indexed with", "shard 2 of a dataset of 2"} {
		if r := resp.GetResults()[len(want)+k]; !strings.Contains(r.GetError(), wantErr) || r.GetRows() != nil {
			t.Errorf("bad sample %d: error %q, %d rows", k, r.GetError(), len(r.GetRows()))
		}
	}
	if st := h.srv.Stats().GetPipeline(); st.GetPeerSamplesServed() != uint64(len(want)) {
		t.Errorf("served %d samples, want %d", st.GetPeerSamplesServed(), len(want))
	}

	// 1024x1024 float32 images: 12 MiB a sample, over the bound.
	big := proto.Clone(req).(*stokerv1.PreprocessRequest)
	big.Samples = big.Samples[:1]
	big.Pipeline.Outputs[0].Ops = big.Pipeline.Outputs[0].Ops[:1]
	big.Pipeline.Outputs[0].Ops[0].GetRandomResizedCrop().Height, big.Pipeline.Outputs[0].Ops[0].GetRandomResizedCrop().Width = 1024, 1024
	big.Pipeline.Outputs[0].Dtype = "float32"
	if _, err := peer.Preprocess(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("an answer of 12 MiB: %v, want ResourceExhausted", err)
	}
}

// A Preprocess answer's rows count against the bytes held for streams
// (--max-shm): past them the call is refused, and the caller does the
// samples itself.
func TestPreprocessCountsAgainstLimits(t *testing.T) {
	h := photoHarness(t, 1, 8, nil, func(c *Config) { c.Limits.MaxShmBytes = 64 << 10 })
	ctx := context.Background()
	ds, err := h.client.OpenDataset(ctx, h.url)
	if err != nil {
		t.Fatal(err)
	}
	req := func(n int) *stokerv1.PreprocessRequest {
		r := &stokerv1.PreprocessRequest{Url: h.url, Pipeline: readyPipeline(1)}
		for i := range n {
			r.Samples = append(r.Samples, &stokerv1.PreprocessSample{Sample: uint32(i), Position: uint64(i), Etag: ds.GetShards()[0].GetEtag()})
		}
		return r
	}
	peer := stokerv1.NewPeerClient(h.client.Conn())
	if _, err := peer.Preprocess(ctx, req(2)); err != nil { // 2 x 18 KiB of image rows
		t.Fatal(err)
	}
	if _, err := peer.Preprocess(ctx, req(8)); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-shm") {
		t.Fatalf("8 samples, 147 KiB of rows, with --max-shm 64 KiB: %v", err)
	}
	if _, err := peer.Preprocess(ctx, req(2)); err != nil {
		t.Fatalf("after a refusal, the bytes are back: %v", err)
	}
}
