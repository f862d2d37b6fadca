package stoker

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// OpenDatasetFormat is OpenDataset with a format ("webdataset", "parquet",
// "arrow", "arrows"; empty goes by the objects' extensions).
func (c *Client) OpenDatasetFormat(ctx context.Context, url, format string) (*stokerv1.Dataset, error) {
	r, err := c.api.OpenDataset(ctx, &stokerv1.OpenDatasetRequest{Url: url, Format: format})
	if err != nil {
		return nil, err
	}
	return r.GetDataset(), nil
}

// Schema decodes a columnar dataset's Arrow schema; nil for WebDataset.
func Schema(ds *stokerv1.Dataset) (*arrow.Schema, error) {
	if len(ds.GetArrowSchema()) == 0 {
		return nil, nil
	}
	r, err := ipc.NewReader(bytes.NewReader(ds.GetArrowSchema()))
	if err != nil {
		return nil, fmt.Errorf("stoker: dataset schema: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

// addArrow decodes one message's Arrow IPC rows into b.
func (b *Batch) addArrow(m *stokerv1.StreamBatchesResponse) error {
	data := m.GetArrowIpc()
	if len(data) == 0 {
		return nil
	}
	r, err := ipc.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("stoker: step %d: Arrow IPC: %w", m.GetStep(), err)
	}
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		rec.Retain()
		b.parts = append(b.parts, rec)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("stoker: step %d: Arrow IPC: %w", m.GetStep(), err)
	}
	b.ArrowBytes += len(data)
	if b.RowShards == nil {
		b.FirstPosition = m.GetFirstPosition()
	}
	b.RowShards = append(b.RowShards, m.GetRowShards()...)
	return nil
}

// finishArrow joins the parts of a columnar batch into Record.
func (b *Batch) finishArrow() error {
	recs := b.parts
	b.parts = nil
	switch len(recs) {
	case 0:
		return nil
	case 1:
		b.Record = recs[0]
		return nil
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	s := recs[0].Schema()
	cols := make([]arrow.Array, s.NumFields())
	rows := int64(0)
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			return fmt.Errorf("stoker: step %d: joining parts of column %q: %w", b.Step, s.Field(i).Name, err)
		}
		defer c.Release()
		cols[i] = c
	}
	b.Record = array.NewRecordBatch(s, cols, rows)
	return nil
}

// Rows is the number of samples (rows) in the batch, of either kind.
func (b *Batch) Rows() int {
	if b.Record != nil {
		return int(b.Record.NumRows())
	}
	return len(b.Samples)
}
