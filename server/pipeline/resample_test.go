package pipeline

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// refResample is the antialiased bilinear resample in float64, straight
// from its definition (each output a triangle-weighted mean of the source
// under it, the triangle widened by the reduction), rounded once.
func refResample(src rows, w, h int, ax, ay axis) []float64 {
	weights := func(a axis, i int) (int, []float64) {
		scale := a.scale
		fs := max(scale, 1)
		center := a.org + (float64(i+a.off)+0.5)*scale
		lo := max(0, int(math.Floor(center-fs)))
		hi := min(a.hi-a.lo, int(math.Ceil(center+fs)))
		var ws []float64
		sum := 0.0
		for x := lo; x < hi; x++ {
			v := math.Max(0, 1-math.Abs((float64(x)+0.5-center)/fs))
			ws = append(ws, v)
			sum += v
		}
		for k := range ws {
			ws[k] /= sum
		}
		return lo, ws
	}
	out := make([]float64, ax.n*ay.n*src.ch)
	for yy := range ay.n {
		y0, wy := weights(ay, yy)
		for xx := range ax.n {
			x0, wx := weights(ax, xx)
			for c := range src.ch {
				s := 0.0
				for j, vy := range wy {
					for i, vx := range wx {
						s += vy * vx * float64(src.pix[(ay.lo+y0+j)*src.stride+(ax.lo+x0+i)*src.ch+c])
					}
				}
				out[(yy*ax.n+xx)*src.ch+c] = s
			}
		}
	}
	return out
}

// resampleGo runs the Go passes over src, both axes.
func resampleGo(src rows, ax, ay axis) rows {
	var cx, cy coeffs
	cx.compute(ax)
	cy.compute(ay)
	sub := rows{pix: src.pix[ay.lo*src.stride+ax.lo*src.ch:], stride: src.stride, ch: src.ch}
	h := rows{pix: make([]byte, (ay.hi-ay.lo)*ax.n*src.ch), stride: ax.n * src.ch, ch: src.ch}
	resampleH(h, sub, ay.hi-ay.lo, &cx, 0)
	v := rows{pix: make([]byte, ay.n*ax.n*src.ch), stride: ax.n * src.ch, ch: src.ch}
	resampleV(v, h, ax.n*src.ch, &cy, 0, make([]int32, ax.n*src.ch))
	return v
}

func smoothImage(r *rand.Rand, w, h, ch int) rows {
	src := rows{pix: make([]byte, w*h*ch+64), stride: w * ch, ch: ch}
	fx, fy, ph := r.Float64()*0.3, r.Float64()*0.3, r.Float64()*6
	for y := range h {
		for x := range w {
			for c := range ch {
				v := 128 + 90*math.Sin(fx*float64(x)+fy*float64(y)+ph+float64(c)) + 20*r.NormFloat64()
				src.pix[y*src.stride+x*ch+c] = uint8(max(0, min(255, v)))
			}
		}
	}
	return src
}

func TestResampleMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 30 {
		ch := 3
		if trial%5 == 0 {
			ch = 1
		}
		w, h := 20+r.IntN(200), 20+r.IntN(200)
		src := smoothImage(r, w, h, ch)
		// A crop then a resize, reduction or enlargement.
		cw, chh := 1+r.IntN(w), 1+r.IntN(h)
		x0, y0 := r.IntN(w-cw+1), r.IntN(h-chh+1)
		ow, oh := 1+r.IntN(120), 1+r.IntN(120)
		ax := axis{lo: x0, hi: x0 + cw, scale: float64(cw) / float64(ow), n: ow}
		ay := axis{lo: y0, hi: y0 + chh, scale: float64(chh) / float64(oh), n: oh}
		got := resampleGo(src, ax, ay)
		want := refResample(src, w, h, ax, ay)
		for i, v := range want {
			// Two fixed-point passes, each rounded to a byte: at most one
			// level from the exact mean.
			if d := math.Abs(float64(got.pix[i]) - math.Max(0, math.Min(255, v))); d > 1.01 {
				t.Fatalf("trial %d (%dx%d crop %dx%d at %d,%d to %dx%d, %d ch): pixel %d is %d, the exact mean %.2f",
					trial, w, h, cw, chh, x0, y0, ow, oh, ch, i, got.pix[i], v)
			}
		}
	}
}

// The C kernels (-tags libjpeg) compute the same integers as the Go
// passes; without cgo they are the Go passes.
func TestKernelsMatchGo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 40 {
		ch := 3
		if trial%4 == 0 {
			ch = 1
		}
		w, h := 8+r.IntN(300), 8+r.IntN(300)
		src := smoothImage(r, w, h, ch)
		src.pix = append(src.pix, make([]byte, 512)...) // the room hpass reads past the last row
		ow, oh := 1+r.IntN(240), 1+r.IntN(240)
		var cx, cy coeffs
		cx.compute(axis{hi: w, scale: float64(w) / float64(ow), n: ow})
		cy.compute(axis{hi: h, scale: float64(h) / float64(oh), n: oh})
		hGo := rows{pix: make([]byte, h*ow*ch), stride: ow * ch, ch: ch}
		hC := rows{pix: make([]byte, h*ow*ch), stride: ow * ch, ch: ch}
		resampleH(hGo, src, h, &cx, 0)
		hpass(hC, src, h, &cx, 0)
		if !bytes.Equal(hGo.pix, hC.pix) {
			t.Fatalf("trial %d: horizontal pass %dx%d to %d (%d ch): kernels differ", trial, w, h, ow, ch)
		}
		vGo := rows{pix: make([]byte, oh*ow*ch), stride: ow * ch, ch: ch}
		vC := rows{pix: make([]byte, oh*ow*ch), stride: ow * ch, ch: ch}
		resampleV(vGo, hGo, ow*ch, &cy, 0, make([]int32, ow*ch))
		vpass(vC, hGo, ow*ch, &cy, 0, make([]int32, ow*ch))
		if !bytes.Equal(vGo.pix, vC.pix) {
			t.Fatalf("trial %d: vertical pass %d to %d: kernels differ", trial, h, oh)
		}
		for _, chw := range []bool{false, true} {
			for _, dt := range []dtype{dtUint8, dtFloat16, dtFloat32} {
				img := &imageSpec{channels: ch, chw: chw, outH: oh, outW: ow, norm: dt != dtUint8, mean: [3]float32{0.4, 0.5, 0.6}, std: [3]float32{0.2, 0.25, 0.3}}
				l := newLUTs(img)
				flip := trial%2 == 0
				a, b := make([]byte, oh*ow*ch*dt.size()), make([]byte, oh*ow*ch*dt.size())
				img.write(a, vGo, flip, dt, l)
				writeImage(img, b, vGo, flip, dt, l)
				if !bytes.Equal(a, b) {
					t.Fatalf("trial %d: write %s chw=%v flip=%v: kernels differ", trial, dt, chw, flip)
				}
			}
		}
	}
}

// A resize then a center crop reads taps outside the crop (the resize
// saw the whole image), a crop then a resize does not: the fused axes
// give each exactly.
func TestFusedResizeCrop(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	src := smoothImage(r, 120, 90, 3)
	// resize 120x90 to shorter 64 (85x64), then center crop 48x48
	ax := axis{hi: 120, scale: 120.0 / 85, n: 85}
	ay := axis{hi: 90, scale: 90.0 / 64, n: 64}
	whole := resampleGo(src, ax, ay)
	fx, fy := ax, ay
	fx.off, fx.n = centerOffset(85, 48), 48
	fy.off, fy.n = centerOffset(64, 48), 48
	fused := resampleGo(src, fx, fy)
	for y := range 48 {
		for x := range 48 {
			for c := range 3 {
				if a, b := fused.pix[(y*48+x)*3+c], whole.pix[((y+fy.off)*85+x+fx.off)*3+c]; a != b {
					t.Fatalf("(%d, %d, %d): fused %d, resize then crop %d", y, x, c, a, b)
				}
			}
		}
	}
}
