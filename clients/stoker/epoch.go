package stoker

import (
	"context"
	"errors"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// Epoch says which rank's share of which epoch to read.
type Epoch struct {
	URL       string
	Format    string
	Seed      uint64
	Epoch     uint64
	Rank      int
	WorldSize int // 0 means 1
	BatchSize int
	// ShuffleWindow is the number of shards whose samples are shuffled
	// together: 0 is the server's default window, WindowAll (or any count
	// at least the dataset's shards) the whole epoch.
	ShuffleWindow int
	NoShuffle     bool
	DropLast      bool
	// Start is the position in the epoch's sequence to resume from (a
	// Batch's Cursor); 0 starts the epoch.
	Start uint64
	// PlanVersion is the plan version of the cursor Start came from (a
	// Batch's PlanVersion): a server planning with another version refuses
	// to resume rather than resume another order. 0 skips the check.
	PlanVersion uint32
	// Columns projects a columnar dataset to these columns, in this order;
	// none means all.
	Columns []string
}

// Batch is one rank's batch of one step.
type Batch struct {
	Epoch   uint64
	Step    uint64
	Rank    int
	Samples []*stokerv1.Sample
	// Record holds a columnar dataset's rows (Samples is then empty), in
	// the epoch's order, with the requested columns. Its memory is Go's:
	// Release is optional.
	Record arrow.RecordBatch
	// RowShards[i] is the index in the dataset's shards of Record's row i
	// (see OpenDatasetFormat for the objects); FirstPosition is row 0's
	// position in the epoch, the others follow one by one.
	RowShards     []uint32
	FirstPosition uint64
	// ArrowBytes is the size of the Arrow IPC data received.
	ArrowBytes int
	// Cursor is where the next step starts: pass it as Epoch.Start to resume.
	Cursor uint64
	// PlanVersion is the version of the plan the cursor is a position of:
	// pass it as Epoch.PlanVersion with the cursor.
	PlanVersion uint32

	parts []arrow.RecordBatch // a columnar batch's Arrow parts until finishArrow joins them
}

// WindowAll as Epoch.ShuffleWindow shuffles the whole epoch at once.
const WindowAll = -1

// Window is e.ShuffleWindow as a request carries it.
func (e Epoch) Window() uint32 {
	if e.ShuffleWindow < 0 || int64(e.ShuffleWindow) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(e.ShuffleWindow)
}

// Batches streams the epoch as a sequence of batches. When the stream
// breaks (the server restarts, the connection drops), it reconnects with
// backoff and resumes from the last complete batch's cursor, so no sample
// is lost or repeated. Any other error ends the sequence.
func (c *Client) Batches(ctx context.Context, e Epoch) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		pos := e.Start
		failures := 0
		for {
			done, progressed, err := c.stream(ctx, &e, &pos, yield)
			if done {
				return
			}
			if progressed {
				failures = 0
			}
			if !retriable(err) || failures >= c.opts.retries || ctx.Err() != nil {
				yield(nil, err)
				return
			}
			failures++
			if werr := c.wait(ctx, failures); werr != nil {
				yield(nil, err)
				return
			}
		}
	}
}

// stream runs one StreamBatches call from *pos. It returns done when the
// epoch ended or the consumer stopped, whether any batch was delivered,
// and the error that broke the stream.
// A cursor received updates e.PlanVersion, so a resumed stream checks
// that the server still plans the same order.
func (c *Client) stream(ctx context.Context, e *Epoch, pos *uint64, yield func(*Batch, error) bool) (done, progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &stokerv1.StreamBatchesRequest{
		Url: e.URL, Format: e.Format, Seed: e.Seed, Epoch: e.Epoch,
		Rank: uint32(e.Rank), WorldSize: uint32(e.WorldSize), BatchSize: uint32(e.BatchSize),
		ShuffleWindow: e.Window(), NoShuffle: e.NoShuffle, DropLast: e.DropLast,
		Cursor: &stokerv1.Cursor{Epoch: e.Epoch, Position: *pos, PlanVersion: e.PlanVersion}, Columns: e.Columns,
	}
	shm := c.newShmReader(req) // nil unless WithSharedMemory
	defer shm.close()
	st, err := c.api.StreamBatches(ctx, req)
	if err != nil {
		return false, false, err
	}
	var cur *Batch
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return true, progressed, nil
		}
		if err != nil {
			return false, progressed, err
		}
		if cur == nil {
			cur = &Batch{Epoch: m.GetEpoch(), Step: m.GetStep(), Rank: int(m.GetRank())}
		}
		if err := shm.receive(m); err != nil {
			// A stream the server failed takes its region file with it, so
			// a client behind on its messages cannot map it: the server's
			// error, if one follows, is the one that says why.
			return false, progressed, streamErrorOr(st, err)
		}
		cur.Samples = append(cur.Samples, m.GetSamples()...)
		if err := cur.addArrow(m); err != nil {
			return false, progressed, err
		}
		if !m.GetFinal() {
			continue
		}
		if err := cur.finishArrow(); err != nil {
			return false, progressed, err
		}
		cur.Cursor, cur.PlanVersion = m.GetCursor().GetPosition(), m.GetCursor().GetPlanVersion()
		*pos, e.PlanVersion = cur.Cursor, cur.PlanVersion
		progressed = true
		if !yield(cur, nil) {
			return true, true, nil
		}
		if err := shm.release(ctx); err != nil {
			yield(nil, err)
			return true, true, nil
		}
		cur = nil
	}
}

// retriable reports whether a stream error is a broken connection worth
// resuming after, not a refusal by the server.
func retriable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	}
	return false
}

// wait sleeps the jittered exponential backoff of the n-th retry, or until
// ctx ends.
func (c *Client) wait(ctx context.Context, n int) error {
	d := c.opts.minBackoff << min(n-1, 16)
	if d > c.opts.maxBackoff || d <= 0 {
		d = c.opts.maxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamErrorOr reads on, a few messages and a few seconds at most, for
// the stream's own error, and returns it if the stream failed, else err.
// The bound matters for a stream the server did not fail: it may be
// waiting for releases this client will never make. The caller cancels
// the stream afterwards, which ends the reader.
func streamErrorOr(st stokerv1.Loader_StreamBatchesClient, err error) error {
	done := make(chan error, 1)
	go func() {
		for range 64 {
			if _, rerr := st.Recv(); rerr != nil {
				done <- rerr
				return
			}
		}
		done <- nil
	}()
	timer := time.NewTimer(errorReadGrace)
	defer timer.Stop()
	select {
	case rerr := <-done:
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
	case <-timer.C:
	}
	return err
}

// errorReadGrace bounds streamErrorOr's wait.
const errorReadGrace = 5 * time.Second
