package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/dsindex"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

// indexOptions are the settings of `stoker index`.
type indexOptions struct {
	Parallel int           // shards read at once
	Force    bool          // read every shard, even those the existing index describes
	Progress time.Duration // how often progress is printed (0: never)
	PartSize int64         // bytes of one ranged read of a shard
}

func newIndexCmd() *cobra.Command {
	opt := indexOptions{PartSize: 8 << 20}
	var pathStyle bool
	c := &cobra.Command{
		Use:   "index URL",
		Short: "Index a WebDataset's shards and write the index beside them",
		Long: `Read every shard of the WebDataset at URL, index it, and write
wids-index.json and wids-index.stoker beside the shards, so every
stokerd (and webdataset's wids) opens the dataset without reading it.
S3 is reached with the standard AWS variables (AWS_ENDPOINT_URL_S3,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).`,
		Example: `  stoker index s3://bucket/train/ --parallel 32
  stoker index 's3://bucket/train-{000000..000099}.tar'`,
		Args: oneURL,
		RunE: func(c *cobra.Command, args []string) error {
			return runIndex(c.Context(), args[0], opt, pathStyle, c.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.IntVar(&opt.Parallel, "parallel", 16, "shards read at once")
	fs.BoolVar(&opt.Force, "force", false, "read every shard again, even those the existing index describes")
	fs.DurationVar(&opt.Progress, "progress", time.Second, "how often to print progress (0: only the summary)")
	fs.BoolVar(&pathStyle, "s3-path-style", false, "force S3 path-style addressing (on by itself for IP and localhost endpoints)")
	return c
}

// runIndex is `stoker index URL`: it reads every shard of a WebDataset,
// indexes it, and writes wids-index.json and wids-index.stoker beside the
// shards.
func runIndex(ctx context.Context, url string, opt indexOptions, pathStyle bool, out io.Writer) error {
	if opt.Parallel < 1 {
		return errors.New("index: --parallel must be at least 1")
	}
	s3cfg := s3.DefaultConfig()
	s3cfg.PathStyle = pathStyle
	s3src, err := s3.New(ctx, s3cfg)
	if err != nil {
		return err
	}
	sources := storage.NewSources(map[string]storage.Source{"s3": s3src, "file": storage.NewFileSource()})
	_, err = indexDataset(ctx, sources, url, opt, out)
	return err
}

// indexSummary is what one `stoker index` did.
type indexSummary struct {
	IndexURL, BlobURL     string
	Read, Reused, Kept    int   // shards read and indexed, taken from the old index, old entries of other shards kept
	Samples, Bytes        int64 // samples of the dataset's shards, bytes read
	IndexSamples          int64 // samples of every shard in the index written
	JSONBytes, BlobBytes  int64
	Elapsed               time.Duration
	Shards, SkippedOthers int // the dataset's shards, objects that are not WebDataset shards
}

// indexDataset indexes the WebDataset at url and writes its index.
func indexDataset(ctx context.Context, sources *storage.Sources, url string, opt indexOptions, out io.Writer) (indexSummary, error) {
	start := time.Now()
	var sum indexSummary
	if strings.HasSuffix(url, ".json") {
		return sum, fmt.Errorf("index: %s names an index; give the shards' URL (a folder, a brace list or a shard)", url)
	}
	all, err := dataset.Resolve(ctx, sources, url)
	if err != nil {
		return sum, fmt.Errorf("index: %w", err)
	}
	var objs []storage.Object
	for _, o := range all {
		if dataset.FormatOf(o.URL) == shuffle.FormatWebDataset {
			objs = append(objs, o)
		}
	}
	sum.Shards, sum.SkippedOthers = len(objs), len(all)-len(objs)
	if len(objs) == 0 {
		return sum, fmt.Errorf("index: no WebDataset shards (.tar, .tar.gz, .tgz) at %s, only %d other objects", url, len(all))
	}
	sum.IndexURL = dsindex.Locate(url, objs)
	src, err := sources.For(sum.IndexURL)
	if err != nil {
		return sum, err
	}
	w, ok := src.(storage.Writer)
	if !ok {
		return sum, fmt.Errorf("index: cannot write %s: its source stores nothing", sum.IndexURL)
	}
	old, err := dsindex.Read(ctx, src, sum.IndexURL)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		old = nil
	case errors.Is(err, storage.ErrCorrupt), errors.Is(err, storage.ErrTooLarge):
		fmt.Fprintf(out, "replacing the unreadable index there: %v\n", err)
		old = nil
	case err != nil:
		return sum, fmt.Errorf("index: reading the existing index: %w", err)
	}
	fmt.Fprintf(out, "indexing %d shards (%s) of %s into %s\n", len(objs), humanize.IBytes(uint64(totalSize(objs))), url, sum.IndexURL)

	shards := make([]dsindex.Shard, len(objs))
	reuse, kept := reusePlan(old, objs, opt.Force)
	p := &progress{total: len(objs), start: start}
	stop := p.print(out, opt.Progress)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Parallel)
	for i, o := range objs {
		g.Go(func() error {
			if k := reuse[i]; k >= 0 {
				if si, err := dsindex.ReadShard(gctx, src, old, k); err == nil {
					shards[i] = dsindex.Shard{Object: o, Samples: si.Len(), Index: si}
					p.done(0, true)
					return nil
				} else if gctx.Err() != nil {
					return err
				}
			}
			si, err := indexShard(gctx, sources, o, opt.PartSize, p)
			if err != nil {
				return err
			}
			shards[i] = dsindex.Shard{Object: o, Samples: si.Len(), Index: si}
			p.done(1, false)
			return nil
		})
	}
	for i := range kept {
		g.Go(func() error {
			k := reuse[len(objs)+i]
			if si, err := dsindex.ReadShard(gctx, src, old, k); err == nil {
				kept[i].Index = si
			} else if gctx.Err() != nil {
				return err
			}
			return nil
		})
	}
	err = g.Wait()
	stop()
	if err != nil {
		return sum, err
	}
	for _, s := range shards {
		sum.Samples += int64(s.Samples)
	}
	x, blob, err := dsindex.Build(sum.IndexURL, indexName(sum.IndexURL), append(shards, kept...))
	if err != nil {
		return sum, fmt.Errorf("index: %w", err)
	}
	if err := dsindex.Save(ctx, w, src, x, blob); err != nil {
		return sum, fmt.Errorf("index: writing %s: %w", sum.IndexURL, err)
	}
	data, err := x.Marshal()
	if err != nil {
		return sum, err
	}
	sum.BlobURL, sum.JSONBytes, sum.BlobBytes = x.Blob.URL, int64(len(data)), int64(len(blob))
	for _, e := range x.Entries {
		sum.IndexSamples += int64(e.Samples)
	}
	sum.Read, sum.Reused, sum.Kept = int(p.read.Load()), int(p.reused.Load()), len(kept)
	sum.Bytes, sum.Elapsed = p.bytes.Load(), time.Since(start)
	sum.report(out)
	return sum, nil
}

// reusePlan decides, for each of objs, which entry of the old index (if any)
// describes it unchanged, and which old entries are other shards to keep
// (another split in the same folder). reuse has len(objs)+len(kept)
// entries: the old entry of objs[i], or -1, then that of kept[i].
func reusePlan(old *dsindex.Index, objs []storage.Object, force bool) (reuse []int, kept []dsindex.Shard) {
	reuse = make([]int, len(objs))
	for i := range reuse {
		reuse[i] = -1
	}
	if old == nil {
		return reuse, nil
	}
	byURL := make(map[string]int, len(old.Entries))
	for k, e := range old.Entries {
		byURL[e.URL] = k
	}
	mine := make(map[string]bool, len(objs))
	for i, o := range objs {
		mine[o.URL] = true
		k, ok := byURL[o.URL]
		if !ok || force {
			continue
		}
		if e := old.Entries[k]; e.IndexLength > 0 && e.Size == o.Size && e.ETag != "" && e.ETag == o.ETag {
			reuse[i] = k
		}
	}
	for k, e := range old.Entries {
		if !mine[e.URL] {
			kept = append(kept, dsindex.Shard{Object: storage.Object{URL: e.URL, Size: e.Size, ETag: e.ETag}, Samples: e.Samples})
			reuse = append(reuse, k)
		}
	}
	return reuse, kept
}

// indexShard reads obj in ranged parts, decompressing a gzipped shard as
// it goes, and indexes it.
func indexShard(ctx context.Context, sources *storage.Sources, obj storage.Object, part int64, p *progress) (*wds.ShardIndex, error) {
	src, err := sources.For(obj.URL)
	if err != nil {
		return nil, err
	}
	r, err := wds.NewReader(&objectReader{ctx: ctx, src: src, obj: obj, part: part, p: p})
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", obj.URL, err)
	}
	si, err := wds.IndexShard(r)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", obj.URL, err)
	}
	return si, nil
}

// objectReader reads an object from start to end with ranged reads of
// part bytes, each pinned to the object's ETag.
type objectReader struct {
	ctx  context.Context
	src  storage.Source
	obj  storage.Object
	part int64
	off  int64
	p    *progress
}

func (r *objectReader) Read(b []byte) (int, error) {
	left := r.obj.Size - r.off
	if left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), left, r.part)
	if err := r.src.ReadAt(r.ctx, r.obj, b[:n], r.off); err != nil {
		return 0, err
	}
	r.off += n
	r.p.bytes.Add(n)
	return int(n), nil
}

// progress counts what indexDataset has done; safe for concurrent use.
type progress struct {
	total               int
	start               time.Time
	read, reused, bytes atomic.Int64
}

func (p *progress) done(read int64, reused bool) {
	p.read.Add(read)
	if reused {
		p.reused.Add(1)
	}
}

func (p *progress) line() string {
	el := time.Since(p.start)
	rate := float64(p.bytes.Load()) / max(el.Seconds(), 1e-3)
	return fmt.Sprintf("%d/%d shards  %s  %s/s  %s", p.read.Load()+p.reused.Load(), p.total,
		humanize.IBytes(uint64(p.bytes.Load())), humanize.IBytes(uint64(rate)), el.Round(time.Second))
}

// print prints a progress line every interval until the returned stop is
// called.
func (p *progress) print(out io.Writer, interval time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(out, "\r%s\n", p.line())
				return
			case <-t.C:
				fmt.Fprintf(out, "\r%s", p.line())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (s indexSummary) report(out io.Writer) {
	rate := float64(s.Bytes) / max(s.Elapsed.Seconds(), 1e-3)
	fmt.Fprintf(out, "indexed %d shards, %d samples: read %d (%s, %s/s), reused %d from the index there, in %s\n",
		s.Shards, s.Samples, s.Read, humanize.IBytes(uint64(s.Bytes)), humanize.IBytes(uint64(rate)), s.Reused, s.Elapsed.Round(time.Millisecond))
	if s.Kept > 0 {
		fmt.Fprintf(out, "kept the entries of %d other shards of the index\n", s.Kept)
	}
	if s.SkippedOthers > 0 {
		fmt.Fprintf(out, "skipped %d objects that are not WebDataset shards\n", s.SkippedOthers)
	}
	fmt.Fprintf(out, "wrote %s (%s) and %s (%s, %.1f B/sample)\n", s.IndexURL, humanize.IBytes(uint64(s.JSONBytes)),
		s.BlobURL, humanize.IBytes(uint64(s.BlobBytes)), float64(s.BlobBytes)/float64(max(s.IndexSamples, 1)))
}

func totalSize(objs []storage.Object) int64 {
	var n int64
	for _, o := range objs {
		n += o.Size
	}
	return n
}

// indexName is the name written into the index: its folder's name.
func indexName(indexURL string) string {
	_, p, _ := strings.Cut(indexURL, "://")
	return path.Base(path.Dir(p))
}
