package shuffle

import (
	"errors"
	"fmt"
)

// Batching is how one rank reads a sequence: its place in the world and
// the per-rank batch size.
type Batching struct {
	Rank      int
	WorldSize int
	BatchSize int
	// DropLast stops every rank after the last full step.
	DropLast bool
}

// ErrInvalid is wrapped by every error about bad arguments: batching,
// plan settings, sample counts, orders to measure.
var ErrInvalid = errors.New("invalid argument")

// Validate checks the batching arguments and says which one is wrong.
func (b Batching) Validate() error {
	switch {
	case b.BatchSize <= 0:
		return fmt.Errorf("%w: batch_size must be positive, got %d", ErrInvalid, b.BatchSize)
	case b.WorldSize <= 0:
		return fmt.Errorf("%w: world_size must be positive, got %d", ErrInvalid, b.WorldSize)
	case b.Rank < 0 || b.Rank >= b.WorldSize:
		return fmt.Errorf("%w: rank %d is outside world_size %d", ErrInvalid, b.Rank, b.WorldSize)
	}
	return nil
}

// StepSize is the number of samples one step covers across all ranks.
func (b Batching) StepSize() int { return b.WorldSize * b.BatchSize }

// Steps is the number of steps from position start to the end of a
// sequence of total samples. A step is a batch for every rank; without
// DropLast the last step may be short and leave some ranks empty.
func (b Batching) Steps(total, start int) int {
	rest := total - start
	if rest <= 0 {
		return 0
	}
	if b.DropLast {
		return rest / b.StepSize()
	}
	return (rest + b.StepSize() - 1) / b.StepSize()
}

// Batch returns the positions [lo, hi) of this rank's batch at step k
// counted from start, clipped to total. The batch may be empty (lo == hi)
// at a short last step.
func (b Batching) Batch(total, start, k int) (lo, hi int) {
	lo = min(start+k*b.StepSize()+b.Rank*b.BatchSize, total)
	hi = min(lo+b.BatchSize, total)
	return lo, hi
}

// After is the cursor position after step k counted from start: where the
// next step begins, for every rank.
func (b Batching) After(total, start, k int) int {
	return min(start+(k+1)*b.StepSize(), total)
}

// Cursor is a point in an epoch: the position in the epoch's sequence S
// that the next step starts at. Resuming from a cursor yields exactly the
// rest of the sequence, whatever the world size.
//
// A position counts in one version of the planner's order (PlanVersion):
// the same position under another version names other samples, so a
// cursor records the version it was made under.
type Cursor struct {
	Epoch    uint64 `json:"epoch"`
	Position int    `json:"position"`
	// Plan is the PlanVersion the position counts in; 0 means not
	// recorded (a cursor from before versions were recorded, or from a
	// wire format without the field) and is taken as the current one.
	Plan int `json:"plan,omitempty"`
}

// Check reports, as an error wrapping ErrInvalid, a cursor that cannot
// resume an epoch planned by this package: a negative position, or one
// made under another PlanVersion.
func (c Cursor) Check() error {
	switch {
	case c.Position < 0:
		return fmt.Errorf("%w: cursor position %d is negative", ErrInvalid, c.Position)
	case c.Plan != 0 && c.Plan != PlanVersion:
		return fmt.Errorf("%w: cursor of epoch %d counts in plan version %d; this planner orders epochs by version %d", ErrInvalid, c.Epoch, c.Plan, PlanVersion)
	}
	return nil
}
