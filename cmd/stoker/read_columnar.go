package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/stoker-data/stoker/clients/stoker"
)

// rowLine is one line of `stoker read --jsonl` on a columnar dataset.
type rowLine struct {
	Epoch  uint64         `json:"epoch"`
	Rank   int            `json:"rank"`
	Step   uint64         `json:"step"`
	Object string         `json:"object"`
	Row    map[string]any `json:"row"`
}

// splitColumns parses --columns: names separated by commas.
func splitColumns(v string) []string {
	var cols []string
	for c := range strings.SplitSeq(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	return cols
}

// shardObjects opens the dataset and returns the object of every shard,
// for a columnar dataset's rows (nil for WebDataset).
func shardObjects(ctx context.Context, c *stoker.Client, e stoker.Epoch) ([]string, error) {
	ds, err := c.OpenDatasetFormat(ctx, e.URL, e.Format)
	if err != nil {
		return nil, err
	}
	if len(ds.GetArrowSchema()) == 0 {
		return nil, nil
	}
	objs := make([]string, len(ds.GetShards()))
	for i, s := range ds.GetShards() {
		objs[i] = s.GetObject()
	}
	return objs, nil
}

// writeColumnarJSONL prints one line per row, values as pyarrow's
// to_pylist() gives them (bytes as base64).
func writeColumnarJSONL(w io.Writer, b *stoker.Batch, objects []string) error {
	enc := json.NewEncoder(w)
	for i := range int(b.Record.NumRows()) {
		l := rowLine{Epoch: b.Epoch, Rank: b.Rank, Step: b.Step, Row: stoker.RowValues(b.Record, i)}
		if i < len(b.RowShards) && int(b.RowShards[i]) < len(objects) {
			l.Object = objects[b.RowShards[i]]
		} else {
			return fmt.Errorf("read: row %d of step %d names no shard of the dataset", i, b.Step)
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return nil
}
