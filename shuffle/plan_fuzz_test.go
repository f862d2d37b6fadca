package shuffle

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// fuzzInput decodes a plan's inputs from fuzz bytes: settings, then up to
// 64 counts of one byte each, where a few values stand for extremes.
func fuzzInput(data []byte) (counts []int, s Settings, lazy bool, rest []byte) {
	var head [12]byte
	n := copy(head[:], data)
	data = data[n:]
	s.Seed = binary.LittleEndian.Uint64(head[:8])
	s.Epoch = uint64(head[8] & 3)
	s.Window = int(int8(head[9])) // negative, 0, small, past the shards
	if head[9] == 0x7f {
		s.Window = WindowAll
	}
	s.NoShuffle = head[10]&1 != 0
	lazy = head[10]&2 != 0
	shards := min(int(head[11])%65, len(data))
	for _, b := range data[:shards] {
		switch b {
		case 0xff:
			counts = append(counts, -1)
		case 0xfe:
			counts = append(counts, MaxShardSamples)
		case 0xfd:
			counts = append(counts, MaxShardSamples+1)
		case 0xfc:
			counts = append(counts, 1000)
		default:
			counts = append(counts, int(b))
		}
	}
	return counts, s, lazy, data[shards:]
}

// FuzzPlan builds plans from arbitrary inputs, eagerly or window by
// window in an order (and with wrong counts) the input chooses: no input
// panics, bad ones are ErrInvalid, and every plan built is the
// reference's permutation of its samples.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 0, 6, 5, 0, 7, 7, 0xfc, 1})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 3, 3, 3, 3, 0, 1, 3, 2})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 3, 0xfe, 0xfe, 0xfe})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 3, 0xfe, 0xfe, 0xfe, 1, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe, 1, 2, 0xff, 4})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0xfd, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		counts, s, lazy, rest := fuzzInput(data)
		eager, err := NewPlan(counts, s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewPlan: %v does not wrap ErrInvalid", err)
			}
		} else {
			checkFuzzPlan(t, eager, counts, s)
		}
		if !lazy {
			return
		}
		p, err := NewLazyPlan(len(counts), s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewLazyPlan: %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Count the windows in the order rest gives, sometimes wrongly.
		var buf []int
		for i := 0; i < 4*p.Windows(); i++ {
			var b byte
			if i < len(rest) {
				b = rest[i]
			}
			k := int(b) % max(p.Windows(), 1)
			var cs []int
			for _, sh := range p.WindowShards(k, buf) {
				cs = append(cs, counts[sh])
			}
			if b&0x80 != 0 && len(cs) > 0 {
				cs[0]++
			}
			if err := p.SetCounts(k, cs); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("SetCounts: %v does not wrap ErrInvalid", err)
			}
			if known := p.Known(); known > 0 {
				p.At(known - 1)
				p.NextUse(int(p.At(0).Shard), known/2)
			}
		}
		if n, complete := p.Total(); complete && eager != nil && n <= 1<<16 {
			// Every window took the true counts first, or a wrong one
			// first: equal to the eager plan only in the first case.
			same := true
			for sh, c := range counts {
				if got, _ := p.Count(sh); got != c {
					same = false
				}
			}
			if same && !slices.Equal(p.Slice(0, n), eager.Slice(0, n)) {
				t.Fatal("lazy plan with the true counts differs from the eager plan")
			}
		}
	})
}

func checkFuzzPlan(t *testing.T, p *Plan, counts []int, s Settings) {
	n, complete := p.Total()
	if !complete || n != total(counts) {
		t.Fatalf("Total = %d %v, want %d true", n, complete, total(counts))
	}
	if n <= 1<<16 {
		if got, want := p.Slice(0, n), reference(counts, s); !slices.Equal(got, want) {
			t.Fatal("plan differs from the reference")
		}
		isPermutation(t, p, counts)
		return
	}
	// Huge plans: spot checks at window edges.
	for k := range p.Windows() {
		lo, hi, ok := p.WindowRange(k)
		if !ok {
			t.Fatalf("window %d of a complete plan has no range", k)
		}
		for _, i := range []int{lo, hi - 1} {
			if i < lo || i >= hi {
				continue
			}
			r := p.At(i)
			if r.Shard < 0 || int(r.Shard) >= len(counts) || r.Sample < 0 || int(r.Sample) >= counts[r.Shard] || p.WindowOf(int(r.Shard)) != k {
				t.Fatalf("At(%d) = %+v, not a sample of window %d", i, r, k)
			}
			if u := p.NextUse(int(r.Shard), i); u != i {
				t.Fatalf("NextUse(%d, %d) = %d", r.Shard, i, u)
			}
		}
	}
}
