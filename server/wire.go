package server

import (
	"context"
	"fmt"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
	"github.com/stoker-data/stoker/shuffle"
)

// wireFormat is what the Loader and Peer services do that depends on a
// dataset's format: a WebDataset's samples go on the wire with their
// fields (or through a pipeline, as tensors); a columnar dataset's rows
// go as Arrow record batches of the columns asked for, and it has a
// schema instead of fields. The dataset's Layout answers everything else
// (how shards are read and counted); wireOf is the one place the server
// tells the formats apart.
type wireFormat interface {
	// fields counts the samples of each field name when asked (an
	// OpenDataset with fields): nil for a format without fields.
	fields(ctx context.Context, ds *dataset.Dataset, asked bool) ([]dataset.FieldCount, error)
	// describe adds to the dataset's answer what the format has beyond
	// shards and counts.
	describe(out *stokerv1.Dataset)
	// checkColumns refuses the request's columns where the format has none
	// (checked at once, before a plan is made).
	checkColumns(req *stokerv1.StreamBatchesRequest, ds *dataset.Dataset) error
	// stream sends the stream's steps from start on (the plan is counted
	// up to start, which is within the epoch).
	stream(l *loader, req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer,
		ds *dataset.Dataset, plan *shuffle.Plan, ps *prefetch.Stream, b shuffle.Batching, settings shuffle.Settings, start int, tr *streamTracker) error
	// noPipeline says why no pipeline can decode the dataset's samples, ""
	// when one can.
	noPipeline(ds *dataset.Dataset) string
}

// wireOf returns how ds's samples go on the wire.
func wireOf(ds *dataset.Dataset) wireFormat {
	if c := ds.Layout.Columnar(); c != nil {
		return columnarWire{c}
	}
	return sampleWire{}
}

// sampleWire sends samples with their fields (sendStep), or a pipeline's
// tensors (sendReady): WebDataset.
type sampleWire struct{}

func (sampleWire) fields(ctx context.Context, ds *dataset.Dataset, asked bool) ([]dataset.FieldCount, error) {
	if !asked {
		return nil, nil
	}
	fields, err := ds.Fields(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return fields, nil
}

func (sampleWire) describe(*stokerv1.Dataset) {}

func (sampleWire) checkColumns(req *stokerv1.StreamBatchesRequest, ds *dataset.Dataset) error {
	if len(req.GetColumns()) > 0 {
		return invalid("columns", fmt.Sprintf("%q: %s is a WebDataset, whose samples have fields, not columns: leave columns empty", req.GetColumns(), ds.Manifest.URL))
	}
	return nil
}

func (sampleWire) stream(l *loader, req *stokerv1.StreamBatchesRequest, stream stokerv1.Loader_StreamBatchesServer,
	ds *dataset.Dataset, plan *shuffle.Plan, ps *prefetch.Stream, b shuffle.Batching, settings shuffle.Settings, start int, tr *streamTracker) error {
	return l.streamSamples(req, stream, ds, plan, ps, b, settings, start, tr)
}

func (sampleWire) noPipeline(*dataset.Dataset) string { return "" }
