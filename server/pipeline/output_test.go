package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFloat16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := halfToFloat(uint16(h))
		if math.IsNaN(float64(f)) {
			if got := float16(f); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got := float16(f); got != uint16(h) {
			t.Fatalf("half %#04x = %v came back as %#04x", h, f, got)
		}
	}
}

// float16 rounds to the nearest half, ties to even: checked against the
// two halves around each value.
func TestFloat16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	check := func(f float32) {
		got := float16(f)
		g := float64(halfToFloat(got))
		if math.Abs(float64(f)) >= 65520 { // rounds to Inf (65520 is a tie, and Inf is even)
			if !math.IsInf(g, 0) {
				t.Fatalf("%v: %v, want Inf", f, g)
			}
			return
		}
		for _, n := range []uint16{got - 1, got + 1} {
			o := float64(halfToFloat(n))
			if math.IsNaN(o) || math.IsInf(o, 0) || (n^got)&0x8000 != 0 {
				continue
			}
			d, do := math.Abs(float64(f)-g), math.Abs(float64(f)-o)
			if do < d || (do == d && got&1 == 1) {
				t.Fatalf("%v (%#08x): %#04x = %v, but %#04x = %v is nearer (or even)", f, math.Float32bits(f), got, g, n, o)
			}
		}
	}
	for range 200_000 {
		check(math.Float32frombits(r.Uint32() & 0xc7ffffff)) // exponents around half's range
	}
	for _, f := range []float32{0, 1, -1, 65504, 65519, 65520, 6e-8, 5.96e-8, 2.98e-8, 3e-8, 1e-10, 6.1e-5, -2.1179} {
		check(f)
	}
}

// The tables hold what torchvision computes: ToDtype(float32, scale=True)
// (x.to(float32) * (1/255), rounded to float32), then Normalize (x - mean)
// / std, each op rounded to float32.
func TestLUTs(t *testing.T) {
	img := &imageSpec{channels: 3, norm: true, mean: [3]float32{0.485, 0.456, 0.406}, std: [3]float32{0.229, 0.224, 0.225}}
	l := newLUTs(img)
	scale := float32(1.0 / 255)
	for c := range 3 {
		for p := range 256 {
			v := float32(p) * scale
			v = float32(v - img.mean[c])
			v = float32(v / img.std[c])
			if l.f32[c][p] != v {
				t.Fatalf("channel %d pixel %d: table %v, want %v", c, p, l.f32[c][p], v)
			}
			if l.f16[c][p] != float16(v) {
				t.Fatalf("channel %d pixel %d: half table off", c, p)
			}
		}
	}
	plain := newLUTs(&imageSpec{channels: 1})
	if plain.f32[0][255] != 1 || plain.f32[0][0] != 0 || plain.f32[0][51] != float32(51)*scale {
		t.Errorf("unnormalized table: %v %v %v", plain.f32[0][0], plain.f32[0][51], plain.f32[0][255])
	}
}
