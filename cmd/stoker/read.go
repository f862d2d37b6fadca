package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

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

func (s readSummary) mbps() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) / 1e6 / s.Elapsed.Seconds()
}

func (s readSummary) hitRate() float64 {
	if s.Gets == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Gets)
}

// readFlags are the flags of `stoker read`.
type readFlags struct {
	set   *flag.FlagSet
	addr  *string
	epoch *stoker.Epoch
	start *uint64
	jsonl *bool
	shm   *bool
	shmMB *int
	gds   *bool
	dial  dialFlags
}

func newReadFlags() readFlags {
	fs := flag.NewFlagSet("read", flag.ContinueOnError)
	e := &stoker.Epoch{}
	f := readFlags{set: fs, epoch: e}
	f.addr = fs.String("server", "127.0.0.1:7470", "server address (host:port or unix:///path)")
	fs.Uint64Var(&e.Epoch, "epoch", 0, "epoch to read")
	fs.Uint64Var(&e.Seed, "seed", 0, "shuffle seed")
	fs.IntVar(&e.BatchSize, "batch-size", 32, "samples per batch per rank")
	fs.IntVar(&e.Rank, "rank", 0, "this reader's rank")
	fs.IntVar(&e.WorldSize, "world-size", 1, "number of ranks")
	fs.Func("shuffle-window", "shards whose samples are shuffled together: a number, 0 for the server's default (32), or all", func(v string) error {
		w, err := parseWindow(v)
		e.ShuffleWindow = w
		return err
	})
	fs.BoolVar(&e.NoShuffle, "no-shuffle", false, "keep file order")
	fs.BoolVar(&e.DropLast, "drop-last", false, "stop after the last full step")
	f.start = fs.Uint64("cursor", 0, "resume from this position in the epoch")
	f.jsonl = fs.Bool("jsonl", false, "print one JSON object per sample")
	f.shm = fs.Bool("shm", false, "receive batches through shared memory (needs --server unix:///path)")
	f.shmMB = fs.Int("shm-region-mib", 0, "with --shm: size of the shared region in MiB (0: the server's default)")
	f.dial = addDialFlags(fs)
	f.gds = fs.Bool("gds", false, "with --shm: take shards in the disk tier as extents of its files and read them here through a pinned buffer (the GPU path without cuFile)")
	fs.StringVar(&e.Format, "format", "", "webdataset, parquet, arrow or arrows (default: by the objects' extensions)")
	fs.Func("columns", "comma-separated columns of a columnar dataset (default: all)", func(v string) error {
		e.Columns = splitColumns(v)
		return nil
	})
	return f
}

func runRead(ctx context.Context, args []string, out, errOut io.Writer) error {
	f := newReadFlags()
	pos, err := parseInterspersed(f.set, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("read: want exactly one dataset URL")
	}
	e, addr, jsonl := *f.epoch, f.addr, f.jsonl
	e.URL, e.Start = pos[0], *f.start
	c, err := dialRead(*addr, f.dial, *f.shm, *f.gds, *f.shmMB<<20)
	if err != nil {
		return err
	}
	defer c.Close()
	extents := newExtentReader(*f.gds)
	defer extents.close()
	w := bufio.NewWriterSize(out, 1<<16)
	defer w.Flush()
	var objects []string // a columnar dataset's object of each shard
	if *jsonl {
		if objects, err = shardObjects(ctx, c, e); err != nil {
			return err
		}
	}
	sum, err := readEpoch(ctx, c, e, errOut, func(b *stoker.Batch) error {
		if err := extents.fill(b); err != nil {
			return err
		}
		if !*jsonl {
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
	cache := fmt.Sprintf("cache hits %d/%d (%.1f%%), stall %s, storage %d requests %s (%d sample ranges %s)",
		sum.Hits, sum.Gets, 100*sum.hitRate(), sum.Stall.Round(time.Millisecond),
		sum.StorageRequests, humanBytes(sum.StorageBytes), sum.RangeRequests, humanBytes(sum.RangeBytes))
	if sum.StatsErr != nil {
		cache = fmt.Sprintf("cache figures unknown (the server's statistics after the epoch: %v)", sum.StatsErr)
	}
	fmt.Fprintf(errOut, "read %s epoch %d rank %d/%d: %d samples, %s, %.2fs (first batch %.2fs), %.1f MB/s, %s\n",
		e.URL, e.Epoch, e.Rank, max(e.WorldSize, 1), sum.Samples, humanBytes(uint64(sum.Bytes)), sum.Elapsed.Seconds(), sum.FirstBatch.Seconds(), sum.mbps(), cache)
	return nil
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

// humanBytes is n in B, KiB, MiB, GiB or TiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
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
