package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/server/pipeline/pipelinetest"
)

// writePhotoDataset writes shards of the pipeline package's test photos
// (pipelinetest.Photos, or files) with labels into dir and returns the
// dataset's file:// URL.
func writePhotoDataset(t testing.TB, dir string, shards, per int, files ...string) string {
	t.Helper()
	pipelinetest.WritePhotoShards(t, dir, shards, per, files, nil)
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

func pipelineStats(t testing.TB, n *clusterNode) *stokerv1.PipelineStats {
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
// the raw bytes of b's and c's shards never travel to a (the dataset has
// its index beside the shards, so nothing reads them to count them);
// the Stats and metrics say who did what. Then c is killed mid-stream:
// the ANY stream completes, still identical (a does c's samples itself).
func TestClusterPreprocessAnywhere(t *testing.T) {
	dir := t.TempDir()
	url := writePhotoDataset(t, dir, 9, 8)
	if out, err := exec.Command(filepath.Join(binDir, "stoker"), "index", url).CombinedOutput(); err != nil {
		t.Fatalf("stoker index: %v\n%s", err, out)
	}
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
	anywhere := readReadyOrdered(t, a, req(0, stokerv1.PreprocessOn_PREPROCESS_ON_ANY), nil)
	if got := a.metric(t, "stoker_peer_reads_total"); got != 0 {
		t.Errorf("ANY: a read %v shards or sample ranges from their owners: the raw bytes travelled", got)
	}
	for _, n := range []*clusterNode{b, c} {
		if got := n.metric(t, "stoker_peer_served_total"); got != 0 {
			t.Errorf("ANY: %s served %v shard reads", n.name, got)
		}
	}
	st := pipelineStats(t, a)
	local := readReadyOrdered(t, a, req(0, stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL), nil)
	if len(local) != 72 {
		t.Fatalf("LOCAL read %d samples, want 72", len(local))
	}
	sameRows(t, "ANY", anywhere, local)
	if after := pipelineStats(t, a); after.GetPeerSamplesSent() != st.GetPeerSamplesSent() {
		t.Fatalf("LOCAL sent %d samples to peers", after.GetPeerSamplesSent()-st.GetPeerSamplesSent())
	}
	if got := a.metric(t, "stoker_peer_reads_total"); got == 0 {
		t.Error("LOCAL: a read nothing from the owners: the check of ANY above proves nothing")
	}

	// Every sample of b's and c's shards went to them, and only those.
	ownedBy := map[string]int{}
	for _, r := range local {
		var shard int
		if _, err := fmt.Sscanf(r.key, "%05d", &shard); err != nil {
			t.Fatal(err)
		}
		ownedBy[owners[shard/8]]++
	}
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

// procCPU is a process's user and system CPU time so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatal(err)
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// BenchmarkClusterPreprocessCPU measures the serving node's CPU time per
// sample of a pipeline stream (ImageNet's training transform at 224, CHW,
// float32 normalized or uint8 pixels, on the test photos of ImageNet's sizes) with preprocess_on LOCAL and ANY, on a cluster
// of two nodes a and b built without the race detector (with -tags libjpeg
// where its headers are). Both processes share this machine's cores, so the
// figure is CPU time, not throughput. Each iteration reads one epoch each
// way (alternating which goes first) through a.
func BenchmarkClusterPreprocessCPU(b *testing.B) {
	plain := filepath.Join(b.TempDir(), "stokerd")
	args := []string{"build", "-o", plain}
	if _, err := os.Stat("/usr/include/jpeglib.h"); err == nil {
		args = append(args, "-tags", "libjpeg")
	}
	if msg, err := exec.Command("go", append(args, "github.com/stoker-data/stoker/cmd/stokerd")...).CombinedOutput(); err != nil {
		b.Fatalf("building stokerd: %v\n%s", err, msg)
	}
	saved := binDir
	binDir = filepath.Dir(plain)
	b.Cleanup(func() { binDir = saved })
	dir := b.TempDir()
	url := writePhotoDataset(b, dir, 8, 32, "photo.jpg", "progressive.jpg") // 500x375 and 333x500: ImageNet's sizes
	a := startNode(b, nil, "a", "", "--allow-file-root", dir, "--log-level", "info")
	nb := startNode(b, nil, "b", a.gossip, "--allow-file-root", dir, "--log-level", "info")
	waitAlive(b, []*clusterNode{a, nb}, "a", "b")
	for _, dtype := range []string{"float32", "uint8"} {
		b.Run(dtype, func(b *testing.B) { benchPreprocessCPU(b, a, nb, url, dtype) })
	}
}

func benchPreprocessCPU(b *testing.B, a, nb *clusterNode, url, dtype string) {
	spec := func() *stokerv1.Pipeline {
		p := 0.5
		return &stokerv1.Pipeline{Seed: 1, Outputs: []*stokerv1.PipelineOutput{
			{Name: "image", Field: "jpg;png", Decode: "image", Layout: "CHW", Dtype: dtype, Ops: []*stokerv1.ImageOp{
				{Op: &stokerv1.ImageOp_RandomResizedCrop{RandomResizedCrop: &stokerv1.RandomResizedCrop{Height: 224, Width: 224}}},
				{Op: &stokerv1.ImageOp_HorizontalFlip{HorizontalFlip: &stokerv1.HorizontalFlip{P: &p}}},
				{Op: &stokerv1.ImageOp_Normalize{Normalize: &stokerv1.Normalize{Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}}},
			}},
			{Name: "label", Field: "cls", Decode: "int"},
		}}
	}
	if dtype == "uint8" { // pixels as they are: no normalize
		inner := spec
		spec = func() *stokerv1.Pipeline {
			p := inner()
			p.Outputs[0].Ops = p.Outputs[0].Ops[:2]
			return p
		}
	}
	read := func(epoch uint64, on stokerv1.PreprocessOn) (samples int, aCPU, bCPU, wall time.Duration) {
		a0, b0, t0 := procCPU(b, a.cmd.Process.Pid), procCPU(b, nb.cmd.Process.Pid), time.Now()
		ctx := context.Background()
		st, err := stokerv1.NewLoaderClient(a.conn).StreamBatches(ctx, &stokerv1.StreamBatchesRequest{Url: url, Seed: 3, Epoch: epoch,
			BatchSize: 32, ShuffleWindow: 2, Pipeline: spec(), PreprocessOn: on}, grpc.MaxCallRecvMsgSize(64<<20))
		if err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			samples += len(msg.GetSamples())
		}
		return samples, procCPU(b, a.cmd.Process.Pid) - a0, procCPU(b, nb.cmd.Process.Pid) - b0, time.Since(t0)
	}
	read(1000, stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL) // warm: both caches hold their shards, the pools are started
	read(1001, stokerv1.PreprocessOn_PREPROCESS_ON_ANY)
	var n [2]int
	var ac, bc, wall [2]time.Duration
	sent0 := pipelineStats(b, a).GetPeerSamplesSent()
	b.ResetTimer()
	for i := range b.N {
		for k := range 2 {
			mode := (i + k) % 2
			on := []stokerv1.PreprocessOn{stokerv1.PreprocessOn_PREPROCESS_ON_LOCAL, stokerv1.PreprocessOn_PREPROCESS_ON_ANY}[mode]
			s, x, y, w := read(uint64(2*i+k), on)
			n[mode] += s
			ac[mode] += x
			bc[mode] += y
			wall[mode] += w
		}
	}
	b.StopTimer()
	per := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
	b.ReportMetric(per(ac[0], n[0]), "a-ms-cpu/sample-local")
	b.ReportMetric(per(bc[0], n[0]), "b-ms-cpu/sample-local")
	b.ReportMetric(per(ac[1], n[1]), "a-ms-cpu/sample-any")
	b.ReportMetric(per(bc[1], n[1]), "b-ms-cpu/sample-any")
	b.ReportMetric(per(wall[0], n[0]), "ms-wall/sample-local")
	b.ReportMetric(per(wall[1], n[1]), "ms-wall/sample-any")
	// The share of the ANY samples b did (the owners depend on the
	// dataset's folder, a new one each run), and a's CPU saved per sample
	// b did: the figure that compares across runs.
	sent := pipelineStats(b, a).GetPeerSamplesSent() - sent0
	b.ReportMetric(float64(sent)/float64(n[1]), "share-offloaded")
	if sent > 0 {
		saved := per(ac[0], n[0])*float64(n[1]) - float64(ac[1].Microseconds())/1000
		b.ReportMetric(saved/float64(sent), "a-ms-cpu-saved/offloaded-sample")
	}
	st := pipelineStats(b, a)
	b.Logf("a: %d samples sent to b, %d fell back", st.GetPeerSamplesSent(), st.GetPeerFallbacks())
}
