package pipeline

import (
	"math"
	"unsafe"
)

// luts are an image output's per-channel tables from a pixel to its
// output value: float32 bits, or float16 bits. A pixel's value depends on
// the pixel alone, so a table gives exactly what computing it would:
// float32(p)·float32(1/255), then (v - mean) / std when normalized, each
// step rounded to float32 as torchvision's ToDtype(scale=True) and
// Normalize do; float16 is that float32 rounded to half (numpy's
// astype(float16)).
type luts struct {
	f32 [3][256]float32
	f16 [3][256]uint16
}

func newLUTs(img *imageSpec) *luts {
	l := &luts{}
	scale := float32(1.0 / 255)
	for c := range img.channels {
		for p := range 256 {
			v := float32(float32(p) * scale) // a conversion: rounded, never fused
			if img.norm {
				v = float32(v-img.mean[c]) / img.std[c]
			}
			l.f32[c][p] = v
			l.f16[c][p] = float16(v)
		}
	}
	return l
}

// float16 rounds f to the nearest half-precision value, ties to even.
func float16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp > 127+15: // overflow
		return sign | 0x7c00
	case exp >= 127-14: // normal
		e := uint32(exp - 127 + 15)
		m := man >> 13
		rest := man & 0x1fff
		v := e<<10 | m
		if rest > 0x1000 || (rest == 0x1000 && v&1 == 1) {
			v++ // may carry into the exponent, up to Inf: correct
		}
		return sign | uint16(v)
	case exp >= 127-25: // a subnormal half: units of 2^-24
		m := man | 0x800000
		shift := uint(126 - exp) // 14..24
		v := m >> shift
		rest := m & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rest > halfway || (rest == halfway && v&1 == 1) {
			v++
		}
		return sign | uint16(v)
	}
	return sign
}

// write puts an image (outH x outW, src's channels) in dst, the sample's
// row of the tensor: mirrored when flip, in dt, HWC or CHW.
func (img *imageSpec) write(dst []byte, src rows, flip bool, dt dtype, l *luts) {
	h, w, ch := img.outH, img.outW, img.channels
	plane := h * w
	for y := range h {
		in := src.pix[y*src.stride : y*src.stride+w*ch]
		for x := range w {
			xs := x
			if flip {
				xs = w - 1 - x
			}
			px := in[xs*ch : xs*ch+ch]
			for c, p := range px {
				i := (y*w+x)*ch + c
				if img.chw {
					i = c*plane + y*w + x
				}
				switch dt {
				case dtUint8:
					dst[i] = p
				case dtFloat32:
					*(*float32)(unsafe.Pointer(&dst[i*4])) = l.f32[c][p]
				case dtFloat16:
					*(*uint16)(unsafe.Pointer(&dst[i*2])) = l.f16[c][p]
				}
			}
		}
	}
}
