package server

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// columnarWire sends rows as Arrow record batches (streamColumnar): the
// columnar formats.
type columnarWire struct{ c *dataset.Columnar }

// fields: a columnar dataset has columns (describe), not fields.
func (columnarWire) fields(context.Context, *dataset.Dataset, bool) ([]dataset.FieldCount, error) {
	return nil, nil
}

// describe adds the schema and columns, and counts each object's bytes
// once: shards are units.
func (w columnarWire) describe(out *stokerv1.Dataset) {
	out.TotalBytes = 0
	seen := map[string]bool{}
	for _, s := range out.Shards {
		if !seen[s.Object] {
			seen[s.Object] = true
			out.TotalBytes += uint64(s.Size)
		}
	}
	out.ArrowSchema = w.c.SchemaBytes
	for _, f := range w.c.Schema.Fields() {
		out.Columns = append(out.Columns, &stokerv1.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
	}
}

// checkColumns: the columns are checked against the schema as the stream
// starts (streamColumnar).
func (columnarWire) checkColumns(*stokerv1.StreamBatchesRequest, *dataset.Dataset) error { return nil }

func (w columnarWire) stream(l *loader, req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer,
	ds *dataset.Dataset, plan *shuffle.Plan, ps *prefetch.Stream, b shuffle.Batching, settings shuffle.Settings, start int, tr *streamTracker) error {
	if req.GetPipeline() != nil {
		return invalid("pipeline", w.noPipeline(ds))
	}
	return l.streamColumnar(req, stream, ds, w.c, plan, ps, b, settings, start, tr)
}

func (columnarWire) noPipeline(ds *dataset.Dataset) string {
	return fmt.Sprintf("%s is columnar: a pipeline decodes WebDataset fields", ds.Manifest.URL)
}

// columnarStream is one StreamBatches call on a columnar dataset.
type columnarStream struct {
	l       *loader
	stream  stokerv1.Loader_StreamBatchesServer
	ds      *dataset.Dataset
	plan    *shuffle.Plan
	b       shuffle.Batching
	start   int
	epoch   uint64
	columns []string
	schema  *arrow.Schema
	units   *unitCache
}

// streamColumnar sends each step's rows as one Arrow IPC record batch with
// the requested columns, rows in the plan's order (several messages when
// the batch is larger than MaxPartBytes).
func (l *loader) streamColumnar(req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer,
	ds *dataset.Dataset, col *dataset.Columnar, plan *shuffle.Plan, ps *prefetch.Stream, b shuffle.Batching, settings shuffle.Settings, start int, tr *streamTracker) error {
	schema, err := columnar.ProjectSchema(col.Schema, req.GetColumns())
	if err != nil {
		return invalid("columns", fmt.Sprintf("%v, in %s", err, ds.Manifest.URL))
	}
	cs := &columnarStream{l: l, stream: stream, ds: ds, plan: plan, b: b, start: start, epoch: settings.Epoch,
		columns: req.GetColumns(), schema: schema, units: newUnitCache(l.s.decoded, ds, col, ps, req.GetColumns(), unitCacheBytes)}
	defer cs.units.release()
	for k := 0; ; k++ {
		t := tr.begin()
		lo, hi, after, ok, err := ps.Step(stream.Context(), k)
		if err != nil {
			return toStatus(err)
		}
		if !ok {
			return nil
		}
		ps.Advance(k)
		if err := cs.step(stream.Context(), k, lo, hi, after); err != nil {
			return err
		}
		cs.units.trim(plan, after)
		tr.sent(t, hi-lo, 0, after)
	}
}

// step gathers and sends the rows of step k, positions [lo, hi).
func (cs *columnarStream) step(ctx context.Context, k, lo, hi, after int) error {
	size := cs.b.StepSize()
	rows := make([]columnar.Row, hi-lo)
	shards := make([]uint32, hi-lo)
	recs := map[int32]arrow.RecordBatch{}
	for i := range rows {
		r := cs.plan.At(lo + i)
		if _, ok := recs[r.Shard]; !ok {
			rec, err := cs.units.get(ctx, r.Shard)
			if err != nil {
				return toStatus(err)
			}
			recs[r.Shard] = rec
		}
		rows[i] = columnar.Row{Unit: r.Shard, Row: r.Sample}
		shards[i] = uint32(r.Shard)
	}
	rec, err := columnar.Gather(ctx, cs.schema, recs, rows)
	if err != nil {
		return toStatus(&storage.Error{Op: "read", Object: cs.ds.Manifest.URL, Kind: storage.ErrCorrupt, Err: err})
	}
	defer rec.Release()
	cs.units.ps.Deliver() // read: the step waits on the reader now, not on storage
	step := uint64((cs.start + k*size) / size)
	// Split into parts of about MaxPartBytes (by the average row size).
	n := int(rec.NumRows())
	per := n
	if sz := columnar.RecordBytes(rec); n > 0 && sz > int64(cs.l.s.cfg.MaxPartBytes) {
		per = max(1, int(int64(n)*int64(cs.l.s.cfg.MaxPartBytes)/sz))
	}
	for from := 0; ; from += per { // at least one part, even of no rows
		to := min(from+per, n)
		part := rec.NewSlice(int64(from), int64(to))
		data, err := ipcBytes(cs.schema, part)
		part.Release()
		if err != nil {
			return toStatus(&storage.Error{Op: "read", Object: cs.ds.Manifest.URL, Kind: storage.ErrCorrupt, Err: err})
		}
		msg := &stokerv1.StreamBatchesResponse{Epoch: cs.epoch, Step: step, Rank: uint32(cs.b.Rank),
			ArrowIpc: data, RowShards: shards[from:to], FirstPosition: uint64(lo + from)}
		final := to >= n
		if final {
			msg.Final = true
			msg.Cursor = &stokerv1.Cursor{Epoch: cs.epoch, Position: uint64(after), PlanVersion: shuffle.PlanVersion}
		}
		if err := cs.l.send(cs.stream, msg, to-from, len(data)); err != nil {
			return err
		}
		if final {
			return nil
		}
	}
}

// ipcBytes writes rec as an Arrow IPC stream: schema, one batch, end.
func ipcBytes(s *arrow.Schema, rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(columnar.RecordBytes(rec)) + 4096) // the body plus schema and framing: no regrowth
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
