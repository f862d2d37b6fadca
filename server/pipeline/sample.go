package pipeline

import (
	"context"
	"encoding/binary"
)

// libjpegOverhead is what libjpeg may allocate beyond the pixels and
// coefficients counted (row buffers, tables, Huffman state).
const libjpegOverhead = 16 << 20

// worker is one pool goroutine and the buffers it reuses from sample to
// sample.
type worker struct {
	pool   *Pool
	dec    []byte // the decoded region
	hpass  []byte // the horizontal pass's rows
	vpass  []byte // the output image
	acc    []int32
	cx, cy coeffs
}

// sample transforms sample i of b into its rows of dst.
func (w *worker) sample(ctx context.Context, b *Batch, i int, dst []byte) error {
	in := &b.inputs[i]
	for oi, o := range b.p.outputs {
		t := &b.tensors[b.first[oi]]
		row := dst[t.Offset+i*t.RowBytes : t.Offset+(i+1)*t.RowBytes]
		data := b.data[oi][i]
		var err error
		switch o.kind {
		case kindInt:
			putInt(row, 0, o.dtype, b.ints[oi][i])
		case kindText:
			off := b.textOffset(oi, i)
			copy(dst[t.Offset+off:], data)
		case kindJSON:
			dt, _ := parseDType(t.DType)
			for k, num := range b.jsons[oi][i].nums {
				if err = putNumber(row, k, dt, num); err != nil {
					break
				}
			}
		case kindNPY:
			dt, _ := parseDType(t.DType)
			a := b.npys[oi][i]
			cast(row, a.data, len(a.data)/a.dtype.size(), a.dtype, dt)
		default:
			var params []byte
			if o.img.params {
				pt := &b.tensors[b.first[oi]+1]
				params = dst[pt.Offset+i*pt.RowBytes : pt.Offset+(i+1)*pt.RowBytes]
			}
			err = w.image(ctx, o, data, sampleKey{b.p.seed, b.epoch, uint64(in.Position)}, row, params)
		}
		w.trim()
		if err != nil {
			if ctx.Err() != nil { // stopped, not failed
				return ctx.Err()
			}
			return &SampleError{Key: in.Key, Object: in.Object, Position: in.Position, Output: o.name, Field: b.fields[oi][i], Err: err}
		}
	}
	return nil
}

// keepScratch is the most bytes a worker keeps in each buffer between
// samples: a rare huge image's buffers go back to the heap, a usual
// image's are reused.
const keepScratch = 32 << 20

// trim drops buffers a huge image grew.
func (w *worker) trim() {
	if cap(w.dec) > keepScratch {
		w.dec = nil
	}
	if cap(w.hpass) > keepScratch {
		w.hpass = nil
	}
	if cap(w.vpass) > keepScratch {
		w.vpass = nil
	}
}

// textOffset is where sample i's text starts in output oi's tensor.
func (b *Batch) textOffset(oi, i int) int {
	off := 0
	for _, l := range b.tensors[b.first[oi]].Lengths[:i] {
		off += l
	}
	return off
}

// zero clears sample i's rows in every tensor (a masked sample).
func (b *Batch) zero(i int, dst []byte) {
	for ti := range b.tensors {
		t := &b.tensors[ti]
		off, n := t.RowRange(i, i+1)
		clear(dst[t.Offset+off : t.Offset+off+n])
	}
}

// image decodes, resamples and writes one image into row (and its
// params, when asked for).
func (w *worker) image(ctx context.Context, o *output, data []byte, key sampleKey, row, params []byte) error {
	img := o.img
	f, err := imageFormat(o.kind, data)
	if err != nil {
		return err
	}
	width, height, bpp, err := imageHeader(f, data)
	if err != nil {
		return err
	}
	if width <= 0 || height <= 0 {
		return kindError(ErrDecode, "%s of %dx%d pixels", formatNames[f], width, height)
	}
	if px := int64(width) * int64(height); px > w.pool.cfg.MaxImagePixels {
		return kindError(ErrTooLarge, "%s of %dx%d = %d pixels, over the limit of %d", formatNames[f], width, height, px, w.pool.cfg.MaxImagePixels)
	}
	g, err := img.geometry(width, height, key)
	if err != nil {
		return err
	}
	d := 1
	if f == kindJPEG && hasDCTScale && !img.fullRes {
		d = g.dctScale()
	}
	gx, gy := g.x.scaled(d, width), g.y.scaled(d, height)
	rx0, rx1 := w.span(gx, &w.cx)
	ry0, ry1 := w.span(gy, &w.cy)
	rw, rh, ch := rx1-rx0, ry1-ry0, img.channels
	need := int64(rw)*int64(rh)*int64(ch) + int64(width)*int64(height)*int64(bpp)
	if need > w.pool.cfg.MemoryBytes {
		return kindError(ErrTooLarge, "%s of %dx%d needs %d bytes to decode, over the pool's %d", formatNames[f], width, height, need, w.pool.cfg.MemoryBytes)
	}
	if err := w.pool.mem.Acquire(ctx, need); err != nil {
		return err
	}
	defer w.pool.mem.Release(need)
	// Room past the region: the C pass reads ksize pixels from each tap's start.
	if room := rw*rh*ch + (w.cx.ksize+1)*ch; cap(w.dec) < room {
		w.dec = make([]byte, 0, room)
	}
	var src rows
	if f == kindJPEG {
		src, err = decodeJPEG(data, d, ch, gx.lo+rx0, gy.lo+ry0, rw, rh, w.dec, need+libjpegOverhead)
	} else {
		src, err = w.decodeGoRegion(f, data, gx.lo+rx0, gy.lo+ry0, rw, rh, ch)
	}
	if err != nil {
		return err
	}
	w.dec = src.pix[:cap(src.pix)]
	if d > 1 {
		w.pool.dctScaled.Add(1)
	}
	out := src
	if !gx.identity() {
		h := rows{pix: grow(w.hpass, rh*gx.n*ch), stride: gx.n * ch, ch: ch}
		w.hpass = h.pix
		hpass(h, src, rh, &w.cx, rx0)
		out = h
	}
	if !gy.identity() {
		v := rows{pix: grow(w.vpass, gy.n*gx.n*ch), stride: gx.n * ch, ch: ch}
		w.vpass = v.pix
		w.acc = grow(w.acc, gx.n*ch)
		vpass(v, out, gx.n*ch, &w.cy, ry0, w.acc)
		out = v
	}
	writeImage(img, row, out, g.flip, o.dtype, img.luts)
	if params != nil {
		flip := 0
		if g.flip {
			flip = 1
		}
		for k, v := range [5]int{g.box[0], g.box[1], g.box[2], g.box[3], flip} {
			binary.LittleEndian.PutUint32(params[4*k:], uint32(int32(v)))
		}
	}
	return nil
}

// span is the source pixels [lo, hi) of an axis's region that its
// outputs read, counted from the axis's lo; the coefficients go in c
// unless the axis copies pixels.
func (w *worker) span(a axis, c *coeffs) (lo, hi int) {
	if a.identity() {
		return a.off, a.off + a.n
	}
	c.compute(a)
	lo, hi = int(c.start[0]), 0
	for i := range c.start {
		lo = min(lo, int(c.start[i]))
		hi = max(hi, int(c.start[i]+c.count[i]))
	}
	return lo, hi
}

// decodeGoRegion decodes a PNG or WebP whole with Go's decoders and
// copies the region out of it.
func (w *worker) decodeGoRegion(f kind, data []byte, x0, y0, rw, rh, ch int) (rows, error) {
	im, err := decodeGo(f, data)
	if err != nil {
		return rows{}, err
	}
	b := im.Bounds()
	if x0+rw > b.Dx() || y0+rh > b.Dy() {
		return rows{}, kindError(ErrDecode, "%s decoded to %dx%d, not the header's size", formatNames[f], b.Dx(), b.Dy())
	}
	return region(im, x0, y0, rw, rh, ch, w.dec), nil
}
