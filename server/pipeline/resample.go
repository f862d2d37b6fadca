package pipeline

import "math"

// Pillow's fixed point: coefficients carry 22 bits of fraction, so that
// 255 times their sum stays in an int32 (Resample.c, PRECISION_BITS).
const (
	precisionBits = 32 - 8 - 2
	half          = 1 << (precisionBits - 1)
)

// coeffs are one axis's filter taps: output i reads count[i] source
// pixels from start[i] (counted from the axis's lo) with weights
// k[i·ksize:].
type coeffs struct {
	ksize        int
	maxCount     int // the largest count: taps past it are 0 for every output
	start, count []int32
	k            []int32
	scratch      []float64
	off, kt      []int32 //nolint:unused // blocks' layout of start and k, for the cgo kernels (-tags libjpeg)
}

// blocks lays the coefficients out for the 8-wide horizontal pass: each
// output's first byte (3 channels, less shift pixels), and the weights of
// each block of 8 outputs tap by tap (maxCount taps).
//
// Only the cgo kernels (kernels_c.go, -tags libjpeg) call it.
func (c *coeffs) blocks(shift int) (off, kt []int32) { //nolint:unused // used with -tags libjpeg
	n := len(c.start) / 8 * 8
	c.off = grow(c.off, n)
	c.kt = grow(c.kt, n*c.maxCount)
	for x := range n {
		c.off[x] = (c.start[x] - int32(shift)) * 3
		b, i := x/8, x%8
		for t := range c.maxCount {
			c.kt[(b*c.maxCount+t)*8+i] = c.k[x*c.ksize+t]
		}
	}
	return c.off, c.kt
}

// compute is Pillow's precompute_coeffs and normalize_coeffs_8bpc for
// the bilinear filter (support 1), operation for operation, so that the
// integers match Pillow's.
func (c *coeffs) compute(a axis) {
	scale := a.scale
	filterscale := max(scale, 1.0)
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	inSize := a.hi - a.lo
	c.ksize = ksize
	c.start = grow(c.start, a.n)
	c.count = grow(c.count, a.n)
	c.k = grow(c.k, a.n*ksize)
	c.scratch = grow(c.scratch, ksize)
	ss := 1.0 / filterscale
	c.maxCount = 0
	for xx := range a.n {
		center := a.org + (float64(xx+a.off)+0.5)*scale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		if xmax < 0 { // a centre outside the source (cannot happen for a box inside it)
			xmax = 0
		}
		k := c.scratch[:ksize]
		ww := 0.0
		for x := range xmax {
			w := bilinear((float64(x+xmin) - center + 0.5) * ss)
			k[x] = w
			ww += w
		}
		out := c.k[xx*ksize : (xx+1)*ksize]
		for x := range ksize {
			w := 0.0
			if x < xmax {
				w = k[x]
				if ww != 0 {
					w /= ww
				}
			}
			if w < 0 {
				out[x] = int32(-0.5 + w*(1<<precisionBits))
			} else {
				out[x] = int32(0.5 + w*(1<<precisionBits))
			}
		}
		c.start[xx], c.count[xx] = int32(xmin), int32(xmax)
		c.maxCount = max(c.maxCount, xmax)
	}
}

func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// grow returns s with length n, reusing its array when it is big enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// clip8 is Pillow's: the fixed-point sum's integer part, clamped.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// rows is an interleaved 8-bit image: row y starts at pix[y·stride], with
// ch channels per pixel.
type rows struct {
	pix    []uint8
	stride int
	ch     int
}

// resampleH is Pillow's horizontal pass over rows [0, nrows) of src into
// dst; src's column 0 is the axis's column shift.
func resampleH(dst, src rows, nrows int, c *coeffs, shift int) {
	n := len(c.start)
	ks := c.ksize
	for y := range nrows {
		in := src.pix[y*src.stride:]
		out := dst.pix[y*dst.stride : y*dst.stride+n*dst.ch]
		switch src.ch {
		case 3:
			for xx := range n {
				x0, cnt := int(c.start[xx])-shift, int(c.count[xx])
				k := c.k[xx*ks : xx*ks+cnt]
				p := in[x0*3 : (x0+cnt)*3]
				s0, s1, s2 := int32(half), int32(half), int32(half)
				for t, w := range k {
					q := p[t*3 : t*3+3]
					s0 += int32(q[0]) * w
					s1 += int32(q[1]) * w
					s2 += int32(q[2]) * w
				}
				o := out[xx*3 : xx*3+3]
				o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
			}
		default:
			for xx := range n {
				x0, cnt := int(c.start[xx])-shift, int(c.count[xx])
				k := c.k[xx*ks : xx*ks+cnt]
				p := in[x0 : x0+cnt]
				s := int32(half)
				for t, w := range k {
					s += int32(p[t]) * w
				}
				out[xx] = clip8(s)
			}
		}
	}
}

// resampleV is Pillow's vertical pass: output row yy of dst is the
// weighted sum of src rows from c.start[yy] - shift, over width values per
// row; acc is scratch of width int32s.
func resampleV(dst, src rows, width int, c *coeffs, shift int, acc []int32) {
	ks := c.ksize
	acc = acc[:width]
	for yy := range len(c.start) {
		y0, cnt := int(c.start[yy])-shift, int(c.count[yy])
		k := c.k[yy*ks : yy*ks+cnt]
		for i := range acc {
			acc[i] = half
		}
		for t, w := range k {
			in := src.pix[(y0+t)*src.stride:]
			in = in[:width]
			for i, v := range in {
				acc[i] += int32(v) * w
			}
		}
		out := dst.pix[yy*dst.stride:]
		out = out[:width]
		for i, s := range acc {
			out[i] = clip8(s)
		}
	}
}
