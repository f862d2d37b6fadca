package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// The status page, loaded in a real headless Chromium from a node of a
// two-node cluster with token auth while a trainer reads an epoch through
// it, shows the node, both members with their zones, the open stream with
// its dataset, rank, position, a non-zero rate and a sparkline, the cache
// and storage figures and the hint it took; the browser reports no console
// error, and a screenshot is kept (status-page.png in the artifact
// folder).
func TestStatusPageInBrowser(t *testing.T) {
	chromiumPath(t) // skip or fail before starting anything
	s3 := s3test.Start(t)
	s3.CreateBucket(t, bucket)
	dir := t.TempDir()
	// 64 MiB in 16 shards: the paced reader below keeps its stream open
	// for the whole test.
	if err := (wds.Synthetic{Shards: 16, PerShard: 16, SampleSize: 256 << 10, Seed: 5}).Write(dir); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		s3.Put(t, bucket, "live/"+filepath.Base(n), data)
	}
	url := "s3://" + bucket + "/live/"
	const token = "page-token"
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := []string{"--auth-token-file", tokenFile}
	a := startNode(t, s3.Env(), "a", "", auth...)
	b := startNode(t, s3.Env(), "b", a.gossip, auth...)
	useToken(t, a, token)
	useToken(t, b, token)
	waitAlive(t, []*clusterNode{a, b}, "a", "b")

	// A hint for epoch 1, and a trainer on epoch 0 taking a batch of 4
	// (1 MiB) every 100 ms: a live stream for about 25 s.
	if code, body := httpDo(t, "POST", "http://"+a.web+"/v1/prefetch", token, "application/json", `{"url":"`+url+`","epochs":[1],"seed":7}`); code != 200 {
		t.Fatalf("prefetch hint: %d %s", code, body)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	trainer := dialRetrying(t, a.grpc, stoker.WithToken(token))
	readerDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond) // the trainer's step time
		defer tick.Stop()
		for _, err := range trainer.Batches(ctx, stoker.Epoch{URL: url, Seed: 1, BatchSize: 4}) {
			if err != nil {
				readerDone <- err
				return
			}
			select {
			case <-ctx.Done():
				readerDone <- nil
				return
			case <-tick.C:
			}
		}
		readerDone <- nil
	}()

	br := newBrowser(t, map[string]any{"Authorization": "Bearer " + token})
	br.run(t, "load the page", chromedp.Navigate("http://"+a.web+"/?interval=500"))
	br.waitJS(t, "four polls with a stream and both members",
		`Number(document.body.dataset.polls || 0) >= 4 && document.querySelectorAll('#streams tr').length >= 1 && document.querySelectorAll('#members tr').length == 2`)

	if got := br.text(t, "#node-name"); got != "a" {
		t.Errorf("node name %q, want a", got)
	}
	if got := br.text(t, "#cluster-summary"); got != "2 of 2 alive · 2 zones" {
		t.Errorf("cluster summary %q", got)
	}
	members := br.text(t, "#members")
	for _, want := range []string{"a (this node)", "b", "zone-a", "zone-b", "alive", b.grpc} {
		if !strings.Contains(members, want) {
			t.Errorf("members table %q lacks %q", members, want)
		}
	}
	stream := br.text(t, "#streams tr")
	if !strings.Contains(stream, url) || !strings.Contains(stream, "0 of 1") {
		t.Errorf("stream row %q: want the dataset %s and rank 0 of 1", stream, url)
	}
	rate := br.text(t, "#streams tr td.rate")
	if n, err := strconv.ParseFloat(strings.Fields(rate)[0], 64); err != nil || n <= 0 {
		t.Errorf("stream rate %q: want a positive samples/s", rate)
	}
	var points string
	br.eval(t, `document.querySelector('#streams tr svg.spark polyline').getAttribute('points')`, &points)
	if n := len(strings.Fields(points)); n < 3 {
		t.Errorf("sparkline has %d points (%q), want at least 3 after 4 polls", n, points)
	}
	if got := br.text(t, "#memory-text"); !strings.Contains(got, "of 64.0 MiB") {
		t.Errorf("memory tier %q: want its 64 MiB capacity", got)
	}
	if got := br.text(t, "#hit-rate"); !regexp.MustCompile(`^hit rate \d+\.\d%$`).MatchString(got) {
		t.Errorf("hit rate %q", got)
	}
	if got := br.text(t, "#storage-requests"); got == "" || strings.HasPrefix(got, "0") {
		t.Errorf("storage requests %q: want some", got)
	}
	if got := br.text(t, "#storage-latency"); !strings.HasPrefix(got, "p50 ") {
		t.Errorf("storage latency %q: want p50 and p99", got)
	}
	hints := br.text(t, "#hints")
	if !regexp.MustCompile(`(running|done)`).MatchString(hints) || !strings.Contains(hints, url) {
		t.Errorf("hints table %q: want this node's part of the hint, running or done, naming %s", hints, url)
	}
	var errorHidden bool
	br.eval(t, `document.getElementById('error').hidden`, &errorHidden)
	if !errorHidden {
		t.Errorf("the page shows an error: %q", br.text(t, "#error"))
	}

	var png []byte
	br.run(t, "screenshot", chromedp.FullScreenshot(&png, 100))
	shot := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if len(png) < 10000 {
		t.Errorf("screenshot of %d bytes: too small to show the page", len(png))
	}
	if errs := br.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
	stop()
	if err := <-readerDone; err != nil && ctx.Err() == nil {
		t.Fatalf("trainer: %v", err)
	}
}
