package pipeline

import (
	"math"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

func TestRNGKeyed(t *testing.T) {
	a, b := newRNG(1, 2, 3, 4), newRNG(1, 2, 3, 4)
	for range 100 {
		if a.next() != b.next() {
			t.Fatal("the same key gave two streams")
		}
	}
	// Each part of the key changes the stream.
	base := newRNG(1, 2, 3, 4)
	first := base.next()
	for _, k := range [][4]uint64{{0, 2, 3, 4}, {1, 0, 3, 4}, {1, 2, 0, 4}, {1, 2, 3, 0}, {2, 1, 3, 4}, {1, 3, 2, 4}} {
		r := newRNG(k[0], k[1], k[2], k[3])
		if r.next() == first {
			t.Errorf("key %v draws what key (1, 2, 3, 4) draws", k)
		}
	}
}

func TestRNGRanges(t *testing.T) {
	r := newRNG(9, 0, 0, 0)
	var sum float64
	const n = 100_000
	counts := make([]int, 7)
	for range n {
		f := r.float()
		if f < 0 || f >= 1 {
			t.Fatalf("float %v outside [0, 1)", f)
		}
		sum += f
		k := r.intn(7)
		if k < 0 || k >= 7 {
			t.Fatalf("intn(7) = %d", k)
		}
		counts[k]++
	}
	if m := sum / n; math.Abs(m-0.5) > 0.01 {
		t.Errorf("mean of floats %v, want about 0.5", m)
	}
	for k, c := range counts {
		if math.Abs(float64(c)-n/7.0) > 0.05*n/7 {
			t.Errorf("intn(7) gave %d %d times of %d", k, c, n)
		}
	}
}

func TestRRCParams(t *testing.T) {
	spec := &stokerv1.RandomResizedCrop{Height: 224, Width: 224}
	for _, size := range [][2]int{{500, 375}, {375, 500}, {64, 64}, {2000, 30}, {30, 2000}, {1, 1}} {
		w, h := size[0], size[1]
		fallback := 0
		for pos := range 2000 {
			r := newRNG(5, 1, uint64(pos), 0)
			top, left, ch, cw := rrcParams(w, h, spec, &r)
			if top < 0 || left < 0 || ch < 1 || cw < 1 || top+ch > h || left+cw > w {
				t.Fatalf("%dx%d: box (%d, %d, %d, %d) outside the image", w, h, top, left, ch, cw)
			}
			area := float64(ch*cw) / float64(w*h)
			ratio := float64(cw) / float64(ch)
			inBounds := area >= 0.08*0.9 && area <= 1.0 && ratio > 0.7 && ratio < 1.45
			if !inBounds {
				fallback++
			}
			r2 := newRNG(5, 1, uint64(pos), 0)
			if a, b, c, d := rrcParams(w, h, spec, &r2); a != top || b != left || c != ch || d != cw {
				t.Fatal("the same key gave two boxes")
			}
		}
		// A square-ish image almost always finds a box in ten tries; a
		// strip never can (its ratio is outside 3/4..4/3 at any area):
		// torchvision then center-crops to the nearest ratio.
		strip := w/h > 10 || h/w > 10
		if !strip && fallback > 20 {
			t.Errorf("%dx%d: %d of 2000 boxes outside scale and ratio", w, h, fallback)
		}
		if strip {
			r := newRNG(5, 1, 0, 0)
			top, left, ch, cw := rrcParams(w, h, spec, &r)
			if ratio := float64(cw) / float64(ch); ratio < 0.74 || ratio > 1.34 || (ch != h && cw != w) {
				t.Errorf("%dx%d: fallback box (%d, %d, %d, %d), want the nearest ratio's center crop", w, h, top, left, ch, cw)
			}
		}
	}
}

func TestResizedSize(t *testing.T) {
	// torchvision.transforms.v2.functional._geometry._compute_resized_output_size
	for _, c := range []struct{ h, w, s, nh, nw int }{
		{375, 500, 256, 256, 341}, {500, 375, 256, 341, 256}, {333, 500, 256, 256, 384}, {256, 256, 224, 224, 224}, {10, 1000, 5, 5, 500},
	} {
		if nh, nw := resizedSize(c.h, c.w, c.s); nh != c.nh || nw != c.nw {
			t.Errorf("resize %dx%d to shorter %d: %dx%d, want %dx%d", c.h, c.w, c.s, nh, nw, c.nh, c.nw)
		}
	}
	for _, c := range []struct{ size, crop, off int }{{256, 224, 16}, {341, 224, 58}, {375, 224, 76}, {225, 224, 0}, {227, 224, 2}} {
		// int(round(x / 2.0)) with Python's round: 75.5 -> 76, 58.5 -> 58, 0.5 -> 0, 1.5 -> 2
		if off := centerOffset(c.size, c.crop); off != c.off {
			t.Errorf("center crop %d of %d: offset %d, want %d", c.crop, c.size, off, c.off)
		}
	}
}
