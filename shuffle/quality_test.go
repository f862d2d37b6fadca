package shuffle

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestMeasureOrderByHand(t *testing.T) {
	// Two shards of two; batches of 2 hold both shards; each shard's
	// neighbours are 2 apart, against (4+1)/3 for a random permutation.
	q, err := MeasureOrder([]int{2, 2}, []Ref{{0, 0}, {1, 0}, {0, 1}, {1, 1}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if q.Diversity != 1 || math.Abs(q.Spread-2/(5.0/3)) > 1e-12 || q.Batches != 2 || q.Pairs != 2 {
		t.Fatalf("got %+v, want diversity 1, spread 1.2, 2 batches, 2 pairs", q)
	}
	// File order: a batch of 3 over shards of 2 and 1, then an empty one,
	// holds 2 of min(3, 2) shards; neighbours are 1 apart.
	q, err = MeasureOrder([]int{2, 0, 1}, []Ref{{0, 0}, {0, 1}, {2, 0}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if q.Diversity != 1 || math.Abs(q.Spread-1/(4.0/3)) > 1e-12 || q.Batches != 1 || q.Pairs != 1 {
		t.Fatalf("got %+v, want diversity 1, spread 0.75, 1 batch, 1 pair", q)
	}
	for _, tc := range []struct {
		name   string
		counts []int
		order  []Ref
		batch  int
	}{
		{"repeat", []int{2}, []Ref{{0, 0}, {0, 0}}, 1},
		{"short", []int{2}, []Ref{{0, 0}}, 1},
		{"unknown shard", []int{1}, []Ref{{1, 0}}, 1},
		{"unknown sample", []int{1}, []Ref{{0, 1}}, 1},
		{"negative count", []int{-1}, nil, 1},
		{"batch 0", []int{1}, []Ref{{0, 0}}, 0},
	} {
		if _, err := MeasureOrder(tc.counts, tc.order, tc.batch); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}

// TestQuality prints the quality of windowed orders of a dataset of 1024
// shards of 256 samples (go test -v -run Quality), the table DefaultWindow
// is chosen from, and checks what must hold of it.
func TestQuality(t *testing.T) {
	const shards, per = 1024, 256
	c := make([]int, shards)
	for i := range c {
		c[i] = per
	}
	type row struct {
		name   string
		window int
		q      [2]Quality // batches of 64 and 256
	}
	var rows []row
	for _, w := range []int{1, 4, 16, 32, 64, 256, WindowAll, -1} {
		s := Settings{Seed: 42, Epoch: 1, Window: w}
		name := fmt.Sprint(w)
		switch w {
		case WindowAll:
			name = "all"
		case -1:
			name, s = "none", Settings{NoShuffle: true}
		}
		p := mustPlan(t, c, s)
		r := row{name: name, window: w}
		for i, b := range []int{64, 256} {
			q, err := Measure(p, b)
			if err != nil {
				t.Fatal(err)
			}
			r.q[i] = q
		}
		rows = append(rows, r)
	}
	full := rows[6].q
	t.Logf("%d shards x %d samples; diversity = mean distinct shards per batch / min(B, shards); spread = mean neighbour distance / ((N+1)/3); (x.xx) = share of the full shuffle's", shards, per)
	t.Logf("%-6s %-20s %-20s %-20s", "window", "diversity B=64", "diversity B=256", "spread")
	for _, r := range rows {
		t.Logf("%-6s %.4f (%.2f)        %.4f (%.2f)        %.4f (%.3f)", r.name,
			r.q[0].Diversity, r.q[0].Diversity/full[0].Diversity,
			r.q[1].Diversity, r.q[1].Diversity/full[1].Diversity,
			r.q[0].Spread, r.q[0].Spread/full[0].Spread)
	}

	// A full shuffle: spread 1, and the diversity of drawing B of 1024
	// equal shards without replacement, 1024(1 - (1 - 1/1024)^B) / B.
	if s := full[0].Spread; s < 0.98 || s > 1.02 {
		t.Errorf("full shuffle spread %.4f, want 1 +- 0.02", s)
	}
	for i, b := range []float64{64, 256} {
		want := shards * (1 - math.Pow(1-1.0/shards, b)) / b
		if d := full[i].Diversity; math.Abs(d-want) > 0.01 {
			t.Errorf("full shuffle, B=%v: diversity %.4f, want %.4f", b, d, want)
		}
	}
	// Bigger windows mix better, by both measures; no shuffle is worst.
	for i := 1; i < 7; i++ {
		for j := range 2 {
			if rows[i].q[j].Diversity <= rows[i-1].q[j].Diversity || rows[i].q[j].Spread <= rows[i-1].q[j].Spread {
				t.Errorf("window %s does not beat window %s: %+v vs %+v", rows[i].name, rows[i-1].name, rows[i].q[j], rows[i-1].q[j])
			}
		}
	}
	if none := rows[7].q[0]; none.Spread > 0.001 || none.Diversity > 2.0/64 {
		t.Errorf("file order scores %+v, want near 0", none)
	}
	// A window of W shards gives a batch at most W shards, and spreads
	// neighbours over about W/shards of the epoch.
	for _, r := range rows[:6] {
		for j, b := range []int{64, 256} {
			if most := float64(min(r.window+1, b)) / float64(b); r.q[j].Diversity > most {
				t.Errorf("window %d, B=%d: diversity %.4f over %.4f", r.window, b, r.q[j].Diversity, most)
			}
		}
		if want := float64(r.window) / shards; math.Abs(r.q[0].Spread-want) > want/4+0.002 {
			t.Errorf("window %d: spread %.4f, want about %.4f", r.window, r.q[0].Spread, want)
		}
	}
}
