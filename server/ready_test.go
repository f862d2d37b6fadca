package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/pipeline/pipelinetest"
)

func photoHarness(tb testing.TB, shards, per int, bad map[string][]byte, mutate func(*Config)) *harness {
	dir := tb.TempDir()
	pipelinetest.WritePhotoShards(tb, filepath.Join(dir, "data"), shards, per, nil, bad)
	return serveDir(tb, dir, 1<<30, mutate)
}

func readyPipeline(seed uint64) *stokerv1.Pipeline {
	p := 0.5
	return &stokerv1.Pipeline{Seed: seed, Outputs: []*stokerv1.PipelineOutput{
		{Name: "image", Field: "jpg;png", Decode: "image", Layout: "CHW", Params: true, Ops: []*stokerv1.ImageOp{
			{Op: &stokerv1.ImageOp_RandomResizedCrop{RandomResizedCrop: &stokerv1.RandomResizedCrop{Height: 32, Width: 48}}},
			{Op: &stokerv1.ImageOp_HorizontalFlip{HorizontalFlip: &stokerv1.HorizontalFlip{P: &p}}},
			{Op: &stokerv1.ImageOp_Normalize{Normalize: &stokerv1.Normalize{Mean: []float32{0.5}, Std: []float32{0.25}}}},
		}},
		{Name: "label", Field: "cls", Decode: "int"},
	}}
}

// readySample is one sample's rows of every tensor.
type readySample struct {
	key     string
	tensors map[string][]byte
}

// readRank reads one rank's share of an epoch with a pipeline, from a
// cursor position, putting each message's rows back by sample position;
// it returns them and the cursors of the steps. With region set, the
// stream is a shared-memory one (whose leases it releases step by step).
func readRank(t *testing.T, c *stoker.Client, req *stokerv1.StreamBatchesRequest) (map[uint64]readySample, []uint64) {
	t.Helper()
	ctx := context.Background()
	st, err := stokerv1.NewLoaderClient(c.Conn()).StreamBatches(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]readySample{}
	var cursors []uint64
	var region []byte
	var regionID string
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := msg.GetShmRegion(); r != nil {
			f, err := os.Open(r.GetPath())
			if err != nil {
				t.Fatal(err)
			}
			region, err = unix.Mmap(int(f.Fd()), 0, int(r.GetSize()), unix.PROT_READ, unix.MAP_SHARED)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			regionID = r.GetId()
			t.Cleanup(func() { _ = unix.Munmap(region) })
		}
		for i, s := range msg.GetSamples() {
			rs, ok := out[s.GetPosition()]
			if !ok {
				rs = readySample{key: s.GetKey(), tensors: map[string][]byte{}}
				out[s.GetPosition()] = rs
			}
			for _, tn := range msg.GetTensors() {
				data := tn.GetData()
				if req.GetShm() {
					data = region[tn.GetShmOffset() : tn.GetShmOffset()+tn.GetShmLength()]
				}
				if uint64(len(msg.GetSamples())) != tn.GetRows() {
					t.Fatalf("a message of %d samples has %d rows of %s", len(msg.GetSamples()), tn.GetRows(), tn.GetName())
				}
				per := len(data) / int(tn.GetRows())
				rs.tensors[tn.GetName()] = bytes.Clone(data[i*per : (i+1)*per])
			}
		}
		if msg.GetFinal() {
			cursors = append(cursors, msg.GetCursor().GetPosition())
			if lease := msg.GetShmLease(); lease != nil {
				if _, err := stokerv1.NewLoaderClient(c.Conn()).ReleaseShm(ctx, &stokerv1.ReleaseShmRequest{Region: regionID, Leases: []uint64{lease.GetId()}}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return out, cursors
}

func readyRequest(h *harness, seed, epoch uint64, rank, world, batch uint32) *stokerv1.StreamBatchesRequest {
	return &stokerv1.StreamBatchesRequest{Url: h.url, Seed: seed, Epoch: epoch, Rank: rank, WorldSize: world, BatchSize: batch,
		ShuffleWindow: 0xffffffff, Pipeline: readyPipeline(seed + 100)}
}

// A sample's tensors are the same whatever the world size, wherever a
// resume starts, and over shared memory as over TCP; messages split by
// rows come back whole.
func TestReadyDeterministic(t *testing.T) {
	h := photoHarness(t, 3, 13, nil, func(c *Config) { c.MaxPartBytes = 20 << 10 }) // ~3 samples a message
	const n = 39
	ref, _ := readRank(t, h.client, readyRequest(h, 4, 1, 0, 1, 8))
	if len(ref) != n {
		t.Fatalf("world 1: %d samples, want %d", len(ref), n)
	}
	for pos, s := range ref {
		if img := s.tensors["image"]; len(img) != 3*32*48*4 {
			t.Fatalf("position %d: image row of %d bytes", pos, len(img))
		}
		var label int
		if _, err := fmt.Sscanf(s.key, "%d", &label); err != nil {
			t.Fatalf("position %d: key %q is not a number: %v", pos, s.key, err)
		}
		if got := s.tensors["label"]; len(got) != 8 || int(got[0]) != label%10 {
			t.Fatalf("position %d (%s): label % x", pos, s.key, got)
		}
	}
	same := func(what string, got map[uint64]readySample) {
		t.Helper()
		for pos, s := range got {
			r, ok := ref[pos]
			if !ok || r.key != s.key {
				t.Fatalf("%s: position %d is %q, world 1 had %q", what, pos, s.key, r.key)
			}
			for name, b := range s.tensors {
				if !bytes.Equal(b, r.tensors[name]) {
					t.Fatalf("%s: position %d (%s): %s differs from world 1's", what, pos, s.key, name)
				}
			}
		}
	}
	for _, world := range []uint32{2, 3} {
		seen := 0
		for rank := range world {
			got, _ := readRank(t, h.client, readyRequest(h, 4, 1, rank, world, 5))
			same(fmt.Sprintf("world %d rank %d", world, rank), got)
			seen += len(got)
		}
		if seen != n {
			t.Errorf("world %d: %d samples in all", world, seen)
		}
	}
	// Resume rank 1 of 2 from its second cursor.
	_, cursors := readRank(t, h.client, readyRequest(h, 4, 1, 1, 2, 5))
	req := readyRequest(h, 4, 1, 1, 2, 5)
	req.Cursor = &stokerv1.Cursor{Epoch: 1, Position: cursors[1]}
	resumed, _ := readRank(t, h.client, req)
	same("resumed", resumed)
	if len(resumed) == 0 {
		t.Error("the resume read nothing")
	}
	// Shared memory, over the unix socket.
	uc, err := stoker.Dial(serveUnix(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	sreq := readyRequest(h, 4, 1, 0, 1, 8)
	sreq.Shm = true
	shm, _ := readRank(t, uc, sreq)
	if len(shm) != n {
		t.Fatalf("shm: %d samples", len(shm))
	}
	same("shm", shm)
	// Another epoch augments anew.
	other, _ := readRank(t, h.client, readyRequest(h, 4, 2, 0, 1, 8))
	differ := 0
	for pos, s := range other {
		for _, r := range ref {
			if r.key == s.key && !bytes.Equal(r.tensors["image"], s.tensors["image"]) {
				differ++
			}
		}
		_ = pos
	}
	if differ < n/2 {
		t.Errorf("epoch 2 changed the augmentation of only %d of %d samples", differ, n)
	}
	if st := h.srv.Stats().GetPipeline(); st.GetSamples() == 0 || st.GetWorkers() == 0 || st.GetJpegDecoder() == "" {
		t.Errorf("pipeline stats %v", st)
	}
}

// A corrupt image fails the stream with an error naming the sample and
// its shard; a masking pipeline goes on and says which samples it
// masked and why.
func TestReadyBadSample(t *testing.T) {
	h := photoHarness(t, 2, 6, map[string][]byte{"00007": []byte("\xff\xd8\xff\xe0 truncated"), "00003": nil}, nil)
	ctx := context.Background()
	read := func(req *stokerv1.StreamBatchesRequest) ([]*stokerv1.StreamBatchesResponse, error) {
		st, err := stokerv1.NewLoaderClient(h.client.Conn()).StreamBatches(ctx, req)
		if err != nil {
			return nil, err
		}
		var msgs []*stokerv1.StreamBatchesResponse
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return msgs, nil
			}
			if err != nil {
				return msgs, err
			}
			msgs = append(msgs, m)
		}
	}
	req := readyRequest(h, 1, 0, 0, 1, 4)
	req.NoShuffle = true
	_, err := read(req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `sample "00003"`) || !strings.Contains(err.Error(), "train-000.tar") || !strings.Contains(err.Error(), "missing field") {
		t.Errorf("a sample without its image: %v", err)
	}
	req.Pipeline.OnError = "mask"
	msgs, err := read(req)
	if err != nil {
		t.Fatal(err)
	}
	masked := map[string]string{}
	for _, m := range msgs {
		for i, s := range m.GetSamples() {
			for _, tn := range m.GetTensors() {
				if tn.GetName() == "__valid__" && (tn.GetData()[i] == 0) != (s.GetError() != "") {
					t.Errorf("%s: __valid__ %d with error %q", s.GetKey(), tn.GetData()[i], s.GetError())
				}
			}
			if s.GetError() != "" {
				masked[s.GetKey()] = s.GetError()
			}
		}
	}
	if len(masked) != 2 || !strings.Contains(masked["00003"], "missing field") || !strings.Contains(masked["00007"], "cannot decode") {
		t.Errorf("masked %v", masked)
	}
	// Without the first bad sample, the corrupt JPEG fails the stream as data loss.
	req.Pipeline.OnError = ""
	req.Cursor = &stokerv1.Cursor{Position: 4}
	if _, err := read(req); status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), `sample "00007"`) {
		t.Errorf("a corrupt JPEG: %v", err)
	}
	// A bad pipeline is refused before any batch.
	req.Cursor = nil
	req.Pipeline.Outputs[0].Ops = append(req.Pipeline.Outputs[0].Ops, &stokerv1.ImageOp{})
	msgs, err = read(req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "unknown op") || len(msgs) != 0 {
		t.Errorf("an empty op: %d messages, %v", len(msgs), err)
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		t.Errorf("not a status: %v", err)
	}
}
