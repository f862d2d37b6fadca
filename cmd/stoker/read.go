package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/stoker-data/stoker/clients/stoker"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// sampleLine is one line of `stoker read --jsonl`.
type sampleLine struct {
	Epoch    uint64               `json:"epoch"`
	Rank     int                  `json:"rank"`
	Step     uint64               `json:"step"`
	Position uint64               `json:"position"`
	Key      string               `json:"key"`
	Fields   map[string]fieldLine `json:"fields"`
}

type fieldLine struct {
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// readSummary is what one read delivered.
type readSummary struct {
	Samples, Bytes, Batches int
	Elapsed, FirstBatch     time.Duration
	Hits, Gets              uint64
	Stall                   time.Duration
	// Storage reads while the epoch was read (every stream of the server
	// counts): requests and bytes, and of them the sample range reads.
	StorageRequests, StorageBytes uint64
	RangeRequests, RangeBytes     uint64
	// StatsErr says why the server's counters after the epoch could not
	// be read (Hits, Gets, Stall and the storage reads are then unknown);
	// the epoch itself was read whole.
	StatsErr error
}

// bytesPerSecond is the read's throughput (0 for an instant read).
func (s readSummary) bytesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Elapsed.Seconds()
}

func (s readSummary) hitRate() float64 {
	if s.Gets == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Gets)
}

// readOptions are the flags of `stoker read`.
type readOptions struct {
	epoch stoker.Epoch
	start uint64
	jsonl bool
	shm   bool
	shmMB int
	gds   bool
	dial  *dialFlags
}

func newReadCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	o := &readOptions{}
	c := &cobra.Command{
		Use:   "read URL",
		Short: "Read one rank's epoch from a server (--jsonl prints every sample)",
		Long: `Read one rank's epoch of the dataset at URL from a stokerd and print a
summary: samples, bytes, time to the first batch, throughput, cache hits
and storage reads. --jsonl prints one JSON line per sample (its fields'
sizes and SHA-256) or per row of a columnar dataset.

URL is a folder (s3://bucket/train/, file:///data/train/), one shard, or
a brace list, quoted so the shell leaves it alone:
'train-{000000..000099}.tar'.`,
		Example: `  stoker read s3://bucket/train/ --epoch 1 --seed 7
  stoker read --server unix:///run/stoker.sock --shm 's3://bucket/train-{000000..000099}.tar'
  STOKER_SERVER=node1:7470 stoker read s3://bucket/train/ --jsonl > samples.jsonl`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			return runRead(c.Context(), o, args[0], c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	fs := c.Flags()
	e := &o.epoch
	o.dial = addDialFlags(fs, defaultServer, lookupEnv)
	fs.Uint64Var(&e.Epoch, "epoch", 0, "epoch to read")
	fs.Uint64Var(&e.Seed, "seed", 0, "shuffle seed")
	fs.IntVar(&e.BatchSize, "batch-size", 32, "samples per batch per rank")
	fs.IntVar(&e.Rank, "rank", 0, "this reader's rank")
	fs.IntVar(&e.WorldSize, "world-size", 1, "number of ranks")
	fs.Var(windowValue{&e.ShuffleWindow}, "shuffle-window", "shards whose samples are shuffled together: a number, 0 for the server's default (32), or all")
	fs.BoolVar(&e.NoShuffle, "no-shuffle", false, "keep file order")
	fs.BoolVar(&e.DropLast, "drop-last", false, "stop after the last full step")
	fs.Uint64Var(&o.start, "cursor", 0, "resume from this `position` in the epoch")
	fs.BoolVar(&o.jsonl, "jsonl", false, "print one JSON object per sample")
	fs.BoolVar(&o.shm, "shm", false, "receive batches through shared memory (needs --server unix:///path)")
	fs.IntVar(&o.shmMB, "shm-region-mib", 0, "with --shm: size of the shared region in MiB (0: the server's default)")
	fs.BoolVar(&o.gds, "gds", false, "with --shm: take shards in the disk tier as extents of its files and read them here through a pinned buffer (the GPU path without cuFile)")
	fs.StringVar(&e.Format, "format", "", "webdataset, parquet, arrow or arrows (default: by the objects' extensions)")
	fs.Var(columnsValue{&e.Columns}, "columns", "comma-separated `names` of the columns of a columnar dataset to read (default: all)")
	o.dial.completeFiles(c)
	_ = c.RegisterFlagCompletionFunc("format", fixedCompletions("webdataset", "parquet", "arrow", "arrows"))
	_ = c.RegisterFlagCompletionFunc("shuffle-window", fixedCompletions("0", "all"))
	return c
}

func runRead(ctx context.Context, o *readOptions, url string, out, errOut io.Writer) error {
	e := o.epoch
	e.URL, e.Start = url, o.start
	c, err := dialRead(o.dial, o.shm, o.gds, o.shmMB<<20)
	if err != nil {
		return err
	}
	defer c.Close()
	extents := newExtentReader(o.gds)
	defer extents.close()
	w := bufio.NewWriterSize(out, 1<<16)
	defer w.Flush()
	var objects []string // a columnar dataset's object of each shard
	if o.jsonl {
		if objects, err = shardObjects(ctx, c, e); err != nil {
			return err
		}
	}
	sum, err := readEpoch(ctx, c, e, errOut, func(b *stoker.Batch) error {
		if err := extents.fill(b); err != nil {
			return err
		}
		if !o.jsonl {
			return nil
		}
		if b.Record != nil {
			return writeColumnarJSONL(w, b, objects)
		}
		return writeJSONL(w, b)
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(errOut, sum.line(e))
	return nil
}

// line is the summary `stoker read` prints: what was read, how fast, and
// what it cost the cache and storage.
func (s readSummary) line(e stoker.Epoch) string {
	cache := fmt.Sprintf("cache hits %d/%d (%.1f%%), stall %s, storage %d requests %s (%d sample ranges %s)",
		s.Hits, s.Gets, 100*s.hitRate(), s.Stall.Round(time.Millisecond),
		s.StorageRequests, humanize.IBytes(s.StorageBytes), s.RangeRequests, humanize.IBytes(s.RangeBytes))
	if s.StatsErr != nil {
		cache = fmt.Sprintf("cache figures unknown (the server's statistics after the epoch: %v)", s.StatsErr)
	}
	return fmt.Sprintf("read %s epoch %d rank %d/%d: %d samples, %s, %.2fs (first batch %.2fs), %s/s, %s",
		e.URL, e.Epoch, e.Rank, max(e.WorldSize, 1), s.Samples, humanize.IBytes(uint64(s.Bytes)), s.Elapsed.Seconds(), s.FirstBatch.Seconds(),
		humanize.IBytes(uint64(s.bytesPerSecond())), cache)
}

// parseWindow reads --shuffle-window: a count of shards, or "all".
func parseWindow(v string) (int, error) {
	if v == "all" {
		return stoker.WindowAll, nil
	}
	w, err := strconv.Atoi(v)
	if err != nil || w < 0 {
		return 0, fmt.Errorf("want a number of shards (0: the default) or all, got %q", v)
	}
	return w, nil
}

// readEpoch reads an epoch through c, calling each for every batch, and
// measures it with the server's counters before and after.
func readEpoch(ctx context.Context, c *stoker.Client, e stoker.Epoch, errOut io.Writer, each func(*stoker.Batch) error) (readSummary, error) {
	var s readSummary
	before, err := c.Stats(ctx)
	if err != nil {
		return s, err
	}
	t := time.Now()
	stop := showCounting(ctx, c, e.URL, errOut)
	defer stop()
	for b, err := range c.Batches(ctx, e) {
		if err != nil {
			return s, err
		}
		if s.Batches == 0 {
			s.FirstBatch = time.Since(t)
			stop()
		}
		s.Batches++
		s.Samples += b.Rows()
		s.Bytes += b.ArrowBytes
		for _, smp := range b.Samples {
			for _, f := range smp.GetFields() {
				s.Bytes += len(f.GetData()) + int(f.GetExtent().GetLength())
			}
		}
		if err := each(b); err != nil {
			return s, err
		}
	}
	s.Elapsed = time.Since(t)
	// The epoch is read: a server that stops now (the job is done, a
	// node drains) costs the summary its cache figures, not the read.
	after, err := c.Stats(ctx)
	if err != nil {
		s.StatsErr = err
		return s, nil
	}
	s.Hits = after.GetMemoryHits() + after.GetDiskHits() - before.GetMemoryHits() - before.GetDiskHits()
	s.Gets = s.Hits + after.GetMisses() - before.GetMisses()
	s.Stall = time.Duration(after.GetStallNanos() - before.GetStallNanos())
	s.StorageRequests = after.GetStorageRequests() - before.GetStorageRequests()
	s.StorageBytes = after.GetStorageBytes() - before.GetStorageBytes()
	s.RangeRequests = after.GetStorageRangeRequests() - before.GetStorageRangeRequests()
	s.RangeBytes = after.GetStorageRangeBytes() - before.GetStorageRangeBytes()
	return s, nil
}

func writeJSONL(w io.Writer, b *stoker.Batch) error {
	enc := json.NewEncoder(w)
	for _, smp := range b.Samples {
		if err := enc.Encode(jsonLine(b, smp)); err != nil {
			return err
		}
	}
	return nil
}

func jsonLine(b *stoker.Batch, smp *stokerv1.Sample) sampleLine {
	l := sampleLine{Epoch: b.Epoch, Rank: b.Rank, Step: b.Step, Position: smp.GetPosition(), Key: smp.GetKey(), Fields: map[string]fieldLine{}}
	for _, f := range smp.GetFields() {
		h := sha256.Sum256(f.GetData())
		l.Fields[f.GetName()] = fieldLine{Size: len(f.GetData()), SHA256: hex.EncodeToString(h[:])}
	}
	return l
}
