package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/stoker-data/stoker/clients/stoker"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// readEpoch reads one epoch of url through c and returns its samples and
// steps.
func readEpoch(t *testing.T, c *stoker.Client, url string, batch int) (samples, steps int) {
	t.Helper()
	for b, err := range c.Batches(context.Background(), stoker.Epoch{URL: url, BatchSize: batch, Seed: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		samples += len(b.Samples)
		steps++
	}
	return samples, steps
}

// After an epoch the histograms hold one observation per step (batch
// latency), one per stream (stall), one per storage read (latency and
// bytes, summing to the bytes storage delivered), and the per-dataset
// counters match what the client read; Go's and the process's collectors
// are there too.
func TestHistogramsAfterEpoch(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 4, PerShard: 16, SampleSize: 1024, Seed: 1}, nil)
	samples, steps := readEpoch(t, h.client, h.url, 8)
	if samples != 64 || steps != 8 {
		t.Fatalf("read %d samples in %d steps, want 64 in 8", samples, steps)
	}
	fams := scrape(t, h.srv)
	ds := map[string]string{"dataset": h.url}
	if m := labelled(fams, "stoker_batch_latency_seconds", ds); m == nil || m.GetHistogram().GetSampleCount() != uint64(steps) {
		t.Fatalf("stoker_batch_latency_seconds{dataset=%q}: %v, want %d observations", h.url, m, steps)
	}
	if m := labelled(fams, "stoker_stream_stall_seconds", ds); m == nil || m.GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("stoker_stream_stall_seconds{dataset=%q}: %v, want 1 observation (one stream closed)", h.url, m)
	}
	if m := labelled(fams, "stoker_dataset_samples_served_total", ds); m == nil || m.GetCounter().GetValue() != float64(samples) {
		t.Fatalf("stoker_dataset_samples_served_total: %v, want %d", m, samples)
	}
	served := fams["stoker_bytes_served_total"].GetMetric()[0].GetCounter().GetValue()
	if m := labelled(fams, "stoker_dataset_bytes_served_total", ds); m == nil || m.GetCounter().GetValue() != served || served < 64*1024 {
		t.Fatalf("stoker_dataset_bytes_served_total: %v, want the %v bytes served", m, served)
	}
	if m := labelled(fams, "stoker_streams_opened_total", ds); m == nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("stoker_streams_opened_total: %v, want 1", m)
	}
	reads := labelled(fams, "stoker_storage_read_seconds", map[string]string{"scheme": "file", "result": "ok"})
	size := labelled(fams, "stoker_storage_read_bytes", map[string]string{"scheme": "file"})
	stored := fams["stoker_storage_bytes_total"].GetMetric()[0].GetCounter().GetValue()
	if reads == nil || reads.GetHistogram().GetSampleCount() == 0 || size == nil || size.GetHistogram().GetSampleCount() != reads.GetHistogram().GetSampleCount() {
		t.Fatalf("storage read histograms: latency %v, bytes %v; want one observation per read in each", reads, size)
	}
	if got := size.GetHistogram().GetSampleSum(); got != stored || stored == 0 {
		t.Fatalf("storage read bytes sum %v, want stoker_storage_bytes_total %v", got, stored)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "go_build_info"} {
		if fams[name] == nil {
			t.Errorf("%s is not exported", name)
		}
	}
}

// With room for two dataset labels, a third dataset read at the same time
// is counted as "other": the label set stays bounded.
func TestDatasetLabelsBoundedOnServer(t *testing.T) {
	h := newHarness(t, wds.Synthetic{Shards: 3, PerShard: 4, SampleSize: 256, Seed: 2}, func(c *Config) { c.MetricsDatasets = 2 })
	var urls []string
	for i := range 3 {
		urls = append(urls, fmt.Sprintf("%strain-%06d.tar", h.url, i))
	}
	for _, u := range urls {
		if n, _ := readEpoch(t, h.client, u, 2); n != 4 {
			t.Fatalf("%s: %d samples, want 4", u, n)
		}
	}
	fams := scrape(t, h.srv)
	labels := map[string]float64{}
	for _, m := range fams["stoker_dataset_samples_served_total"].GetMetric() {
		labels[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	want := map[string]float64{urls[0]: 4, urls[1]: 4, "other": 4}
	if fmt.Sprint(labels) != fmt.Sprint(want) {
		t.Fatalf("samples by dataset label %v, want %v", labels, want)
	}
}
