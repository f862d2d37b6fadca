package server

import (
	"sort"
	"time"

	"github.com/stoker-data/stoker/server/status"
)

// list returns this node's parts of the hints it remembers, running ones
// first, then by start; a running part has an ETA from its rate so far.
func (h *hints) list(now time.Time) []status.Hint {
	out := []status.Hint{}
	for _, id := range h.runs.Keys() {
		r, ok := h.runs.Peek(id)
		if !ok {
			continue
		}
		r.mu.Lock()
		state, errText := r.state, r.err
		r.mu.Unlock()
		done := r.bytesDone.Load()
		hint := status.Hint{ID: id, What: r.what, State: state, BytesDone: done, BytesTotal: r.bytesTotal,
			ShardsDone: r.shardsDone.Load(), ShardsTotal: r.shardsTotal, StartedUnixMs: r.started.UnixMilli(), ETASeconds: -1, Error: errText}
		if elapsed := now.Sub(r.started).Seconds(); state == hintRunning && done > 0 && elapsed > 0 && done <= r.bytesTotal {
			hint.ETASeconds = float64(r.bytesTotal-done) / (float64(done) / elapsed)
		}
		out = append(out, hint)
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := out[i].State == hintRunning, out[j].State == hintRunning
		if ri != rj {
			return ri
		}
		return out[i].StartedUnixMs > out[j].StartedUnixMs
	})
	if len(out) > 50 {
		out = out[:50] // the page shows the latest; the rest are in /v1/prefetch/{id}
	}
	return out
}
