package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// writePhotoDataset writes shards of samples with a photo (the pipeline
// package's test images, in turn: JPEGs of several kinds and a PNG) and
// a label, and returns the dataset's file:// URL.
func writePhotoDataset(t *testing.T, dir string, shards, per int) string {
	t.Helper()
	files := []string{"photo.jpg", "progressive.jpg", "444.jpg", "gray.jpg", "photo.png"}
	imgs := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "..", "server", "pipeline", "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		imgs[i] = b
	}
	for s := range shards {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		put := func(name string, data []byte) {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		for i := range per {
			n := s*per + i
			key := fmt.Sprintf("%05d", n)
			ext := "jpg"
			if n%len(imgs) == 4 {
				ext = "png"
			}
			put(key+"."+ext, imgs[n%len(imgs)])
			put(key+".cls", fmt.Appendf(nil, "%d", n%10))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("train-%03d.tar", s)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return "file://" + dir + "/"
}

// photoPipeline is a training pipeline whose every op is random: a
// resized crop, a flip, normalize, CHW float32, with the crop's params;
// and the label.
func photoPipeline() *stokerv1.Pipeline {
	p := 0.5
	return &stokerv1.Pipeline{Seed: 77, Outputs: []*stokerv1.PipelineOutput{
		{Name: "image", Field: "jpg;png", Decode: "image", Layout: "CHW", Params: true, Ops: []*stokerv1.ImageOp{
			{Op: &stokerv1.ImageOp_RandomResizedCrop{RandomResizedCrop: &stokerv1.RandomResizedCrop{Height: 40, Width: 56}}},
			{Op: &stokerv1.ImageOp_HorizontalFlip{HorizontalFlip: &stokerv1.HorizontalFlip{P: &p}}},
			{Op: &stokerv1.ImageOp_Normalize{Normalize: &stokerv1.Normalize{Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}}},
		}},
		{Name: "label", Field: "cls", Decode: "int"},
	}}
}

// readyRow is one sample as a pipeline stream delivers it: its position,
// key and its rows of every tensor.
type readyRow struct {
	pos  uint64
	key  string
	rows map[string][]byte
}

// readReadyOrdered reads a pipeline stream to its end, in the order it
// comes; after each step it calls onStep with the steps read so far.
func readReadyOrdered(t *testing.T, n *clusterNode, req *stokerv1.StreamBatchesRequest, onStep func(steps int)) []readyRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := stokerv1.NewLoaderClient(n.conn).StreamBatches(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out []readyRow
	steps := 0
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("after %d steps: %v", steps, err)
		}
		for i, s := range msg.GetSamples() {
			r := readyRow{pos: s.GetPosition(), key: s.GetKey(), rows: map[string][]byte{}}
			if s.GetError() != "" {
				t.Fatalf("sample %s: %s", s.GetKey(), s.GetError())
			}
			for _, tn := range msg.GetTensors() {
				per := len(tn.GetData()) / int(tn.GetRows())
				r.rows[tn.GetName()] = bytes.Clone(tn.GetData()[i*per : (i+1)*per])
			}
			out = append(out, r)
		}
		if msg.GetFinal() {
			steps++
			if onStep != nil {
				onStep(steps)
			}
		}
	}
}

// sameRows fails the test unless two reads of a stream gave the same
// samples in the same order with byte-identical rows.
func sameRows(t *testing.T, what string, got, want []readyRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.pos != w.pos || g.key != w.key {
			t.Fatalf("%s: sample %d is %s at %d, want %s at %d", what, i, g.key, g.pos, w.key, w.pos)
		}
		for name, rw := range w.rows {
			if !bytes.Equal(g.rows[name], rw) || len(rw) == 0 {
				t.Fatalf("%s: sample %s, tensor %s: %d bytes differ from the %d read with preprocess_on LOCAL", what, w.key, name, len(g.rows[name]), len(rw))
			}
		}
	}
}

func pipelineStats(t *testing.T, n *clusterNode) *stokerv1.PipelineStats {
	t.Helper()
	st, err := stokerv1.NewLoaderClient(n.conn).Stats(context.Background(), &stokerv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st.GetPipeline()
}

// A pipeline stream read through node a with preprocess_on ANY has its
// samples preprocessed by the owners of their shards, b and c, and gives
// the tensors, bytes for bytes and in the same order, that LOCAL gives;
// the Stats and metrics say who did what. Then c is killed mid-stream:
// the ANY stream completes, still identical (a does c's samples itself).
func TestClusterPreprocessAnywhere(t *testing.T) {
	dir := t.TempDir()
	url := writePhotoDataset(t, dir, 9, 8)
	a := startNode(t, nil, "a", "", "--allow-file-root", dir)
	b := startNode(t, nil, "b", a.gossip, "--allow-file-root", dir)
	c := startNode(t, nil, "c", a.gossip, "--allow-file-root", dir)
	nodes := []*clusterNode{a, b, c}
	waitAlive(t, nodes, "a", "b", "c")
	owners := a.members(t, url).GetOwners()
	for _, name := range []string{"b", "c"} {
		if !slices.Contains(owners, name) {
			t.Fatalf("node %s owns no shard (%v): the test would prove nothing", name, owners)
		}
	}

	req := func(epoch uint64, on stokerv1.PreprocessOn) *stokerv1.StreamBatchesRequest {
		return &stokerv1.StreamBatchesRequest{Url: url, Seed: 5, Epoch: epoch, BatchSize: 6, ShuffleWindow: 3,
			Pipeline: photoPipeline(), PreprocessOn: on}
	}
	local := readReadyOrdered(t, a, req(0, stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL), nil)
	if len(local) != 72 {
		t.Fatalf("LOCAL read %d samples, want 72", len(local))
	}
	if st := pipelineStats(t, a); st.GetPeerSamplesSent() != 0 {
		t.Fatalf("LOCAL sent %d samples to peers", st.GetPeerSamplesSent())
	}
	anywhere := readReadyOrdered(t, a, req(0, stokerv1.PreprocessOn_PREPROCESS_ON_ANY), nil)
	sameRows(t, "ANY", anywhere, local)

	// Every sample of b's and c's shards went to them, and only those.
	ownedBy := map[string]int{}
	for _, r := range local {
		var shard int
		if _, err := fmt.Sscanf(r.key, "%05d", &shard); err != nil {
			t.Fatal(err)
		}
		ownedBy[owners[shard/8]]++
	}
	st := pipelineStats(t, a)
	if want := uint64(ownedBy["b"] + ownedBy["c"]); st.GetPeerSamplesSent() != want || st.GetPeerFallbacks() != 0 {
		t.Errorf("a: %d samples preprocessed by peers, %d fallbacks; want %d and 0 (owners %v)", st.GetPeerSamplesSent(), st.GetPeerFallbacks(), want, owners)
	}
	for _, n := range []*clusterNode{b, c} {
		if got := pipelineStats(t, n).GetPeerSamplesServed(); got != uint64(ownedBy[n.name]) || got == 0 {
			t.Errorf("%s preprocessed %d samples for a, want the %d of its shards", n.name, got, ownedBy[n.name])
		}
		if got := n.metric(t, "stoker_pipeline_peer_samples_served_total"); got != float64(ownedBy[n.name]) {
			t.Errorf("%s: metric says %v samples served", n.name, got)
		}
	}
	if got := a.metric(t, "stoker_pipeline_peer_samples_sent_total"); got != float64(st.GetPeerSamplesSent()) {
		t.Errorf("a: metric says %v samples sent, Stats %d", got, st.GetPeerSamplesSent())
	}

	// Epoch 1 (other crops and flips): c is killed after the third step.
	local1 := readReadyOrdered(t, a, req(1, stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL), nil)
	before := pipelineStats(t, a)
	any1 := readReadyOrdered(t, a, req(1, stokerv1.PreprocessOn_PREPROCESS_ON_ANY), func(steps int) {
		if steps == 3 {
			c.kill() // SIGKILL
		}
	})
	sameRows(t, "ANY with c killed", any1, local1)
	if same := sameImages(any1, anywhere); same == len(anywhere) {
		t.Error("epoch 1 gave epoch 0's images: the augmentations do not depend on the epoch")
	}
	after := pipelineStats(t, a)
	t.Logf("epoch 1 with c killed: a sent %d samples to peers, %d fell back", after.GetPeerSamplesSent()-before.GetPeerSamplesSent(),
		after.GetPeerFallbacks()-before.GetPeerFallbacks())
	if after.GetPeerSamplesSent() == before.GetPeerSamplesSent() {
		t.Error("epoch 1: no sample preprocessed by a peer")
	}
}

// sameImages counts the samples whose image rows are the same in two reads.
func sameImages(a, b []readyRow) int {
	byKey := map[string][]byte{}
	for _, r := range b {
		byKey[r.key] = r.rows["image"]
	}
	n := 0
	for _, r := range a {
		if bytes.Equal(r.rows["image"], byKey[r.key]) {
			n++
		}
	}
	return n
}
