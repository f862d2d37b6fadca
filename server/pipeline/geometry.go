package pipeline

import "math"

// axis is one dimension of a resample: output pixel i (of n) is centred
// at org + (i + off + 0.5)·scale in the source, counted from lo, and the
// filter's taps stay in [lo, hi). A crop then a resize (torchvision's
// resized_crop) has lo, hi the crop and off 0; a resize then a center
// crop has lo, hi the whole image and off the crop's offset. Both give
// exactly the pixels of the two steps done one after the other.
type axis struct {
	lo, hi     int
	org, scale float64
	off, n     int
}

// identity says the axis copies pixels: one source pixel per output.
func (a axis) identity() bool { return a.scale == 1 && a.org == 0 }

// scaled is the axis in an image decoded at 1/d of its size (full source
// pixels, which the decoder rounds up).
func (a axis) scaled(d, full int) axis {
	if d == 1 {
		return a
	}
	fd := float64(d)
	lo := a.lo / d
	hi := min((a.hi+d-1)/d, (full+d-1)/d)
	return axis{lo: lo, hi: hi, org: (float64(a.lo)+a.org)/fd - float64(lo), scale: a.scale / fd, off: a.off, n: a.n}
}

// geometry is where one image's output pixels come from.
type geometry struct {
	x, y axis
	flip bool
	// The source box the output covers (rounded for a resize then a
	// crop): top, left, height, width.
	box [4]int
}

// sampleKey is what a sample's random ops are keyed by.
type sampleKey struct {
	seed, epoch, position uint64
}

func (k sampleKey) rng(op int) rng { return newRNG(k.seed, k.epoch, k.position, uint64(op)) }

// geometry plans an image of w x h pixels. An image smaller than its
// center crop is an ErrShape error.
func (img *imageSpec) geometry(w, h int, key sampleKey) (geometry, error) {
	var g geometry
	switch {
	case img.rrc != nil:
		r := key.rng(img.rrcOp)
		top, left, ch, cw := rrcParams(w, h, img.rrc, &r)
		g.x = axis{lo: left, hi: left + cw, scale: float64(cw) / float64(img.rrc.GetWidth()), n: int(img.rrc.GetWidth())}
		g.y = axis{lo: top, hi: top + ch, scale: float64(ch) / float64(img.rrc.GetHeight()), n: int(img.rrc.GetHeight())}
	case img.resize != nil:
		nh, nw := int(img.resize.GetHeight()), int(img.resize.GetWidth())
		if s := int(img.resize.GetShorter()); s > 0 {
			nh, nw = resizedSize(h, w, s)
		}
		g.x = axis{hi: w, scale: float64(w) / float64(nw), n: nw}
		g.y = axis{hi: h, scale: float64(h) / float64(nh), n: nh}
	default:
		g.x = axis{hi: w, scale: 1, n: w}
		g.y = axis{hi: h, scale: 1, n: h}
	}
	if img.cropH > 0 {
		if img.cropW > g.x.n || img.cropH > g.y.n {
			return g, kindError(ErrShape, "center_crop %dx%d of an image of %dx%d (after its resize)", img.cropH, img.cropW, g.y.n, g.x.n)
		}
		g.x.off, g.x.n = centerOffset(g.x.n, img.cropW), img.cropW
		g.y.off, g.y.n = centerOffset(g.y.n, img.cropH), img.cropH
	}
	if img.flip > 0 {
		r := key.rng(img.flipOp)
		g.flip = r.float() < img.flip
	}
	g.box = [4]int{sourceStart(g.y), sourceStart(g.x), sourceLen(g.y), sourceLen(g.x)}
	return g, nil
}

func sourceStart(a axis) int { return a.lo + int(math.Round(a.org+float64(a.off)*a.scale)) }
func sourceLen(a axis) int   { return int(math.Round(float64(a.n) * a.scale)) }

// centerOffset is torchvision's: int(round((size - crop) / 2)), rounding
// halves to even as Python does.
func centerOffset(size, crop int) int {
	return int(math.RoundToEven(float64(size-crop) / 2))
}

// resizedSize is torchvision's Resize(shorter) of an h x w image: the
// shorter side becomes s, the longer int(s·long/short).
func resizedSize(h, w, s int) (nh, nw int) {
	if w <= h {
		return int(float64(s*h) / float64(w)), s
	}
	return s, int(float64(s*w) / float64(h))
}

// rrcParams is torchvision's RandomResizedCrop.get_params with this
// package's generator: ten tries of a box of random area and aspect
// ratio, then a center crop of the ratio's nearest bound.
func rrcParams(w, h int, spec interface {
	GetScaleMin() float64
	GetScaleMax() float64
	GetRatioMin() float64
	GetRatioMax() float64
}, r *rng) (top, left, ch, cw int) {
	s0, s1, r0, r1 := spec.GetScaleMin(), spec.GetScaleMax(), spec.GetRatioMin(), spec.GetRatioMax()
	if s0 == 0 && s1 == 0 {
		s0, s1 = 0.08, 1
	}
	if r0 == 0 && r1 == 0 {
		r0, r1 = 3.0/4, 4.0/3
	}
	area := float64(w) * float64(h)
	l0, l1 := math.Log(r0), math.Log(r1)
	for range 10 {
		target := area * r.uniform(s0, s1)
		ratio := math.Exp(r.uniform(l0, l1))
		cw = int(math.RoundToEven(math.Sqrt(target * ratio)))
		ch = int(math.RoundToEven(math.Sqrt(target / ratio)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			top = r.intn(h - ch + 1)
			left = r.intn(w - cw + 1)
			return top, left, ch, cw
		}
	}
	in := float64(w) / float64(h)
	switch {
	case in < r0:
		cw, ch = w, int(math.RoundToEven(float64(w)/r0))
	case in > r1:
		ch, cw = h, int(math.RoundToEven(float64(h)*r1))
	default:
		cw, ch = w, h
	}
	return (h - ch) / 2, (w - cw) / 2, ch, cw
}

// dctScale is the reduction (1, 2, 4 or 8) a JPEG decoder may apply in
// the DCT domain and still leave the resample a reduction on both axes.
func (g geometry) dctScale() int {
	for _, d := range []int{8, 4, 2} {
		if g.x.scale >= float64(d) && g.y.scale >= float64(d) {
			return d
		}
	}
	return 1
}
