package pipeline

import (
	"bytes"
	"image"
	"image/color"
	"image/png"

	"golang.org/x/image/webp"
)

// sniff tells an image's format by its first bytes.
func sniff(b []byte) (kind, bool) {
	switch {
	case len(b) >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff:
		return kindJPEG, true
	case len(b) >= 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return kindPNG, true
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return kindWebP, true
	}
	return kindImage, false
}

var formatNames = map[kind]string{kindJPEG: "JPEG", kindPNG: "PNG", kindWebP: "WebP"}

// imageFormat is the format of an image field: told by its bytes, which
// must agree with the output's decode when it names one.
func imageFormat(want kind, b []byte) (kind, error) {
	got, ok := sniff(b)
	switch {
	case !ok && want == kindImage:
		return 0, kindError(ErrDecode, "not a JPEG, PNG or WebP image (%d bytes starting % x)", len(b), b[:min(len(b), 8)])
	case !ok:
		return 0, kindError(ErrDecode, "not a %s image (%d bytes starting % x)", formatNames[want], len(b), b[:min(len(b), 8)])
	case want != kindImage && got != want:
		return 0, kindError(ErrDecode, "a %s image, not %s", formatNames[got], formatNames[want])
	}
	return got, nil
}

// imageHeader is an image's size and the bytes per pixel its decoder holds
// besides the region it returns (Go's decoders hold the whole image: an
// estimate from its color model).
func imageHeader(f kind, b []byte) (w, h, bpp int, err error) {
	if f == kindJPEG {
		return jpegHeader(b)
	}
	var cfg image.Config
	switch f {
	case kindPNG:
		cfg, err = png.DecodeConfig(bytes.NewReader(b))
	case kindWebP:
		cfg, err = webp.DecodeConfig(bytes.NewReader(b))
	}
	if err != nil {
		return 0, 0, 0, kindError(ErrDecode, "%s header: %v", formatNames[f], err)
	}
	bpp = 4
	switch cfg.ColorModel {
	case color.Gray16Model, color.RGBA64Model, color.NRGBA64Model:
		bpp = 8
	case color.GrayModel:
		bpp = 1
	}
	if _, ok := cfg.ColorModel.(color.Palette); ok {
		bpp = 1
	}
	return cfg.Width, cfg.Height, bpp, nil
}

// decodeGo decodes a whole PNG or WebP (or, without libjpeg, JPEG) with
// Go's decoders.
func decodeGo(f kind, b []byte) (image.Image, error) {
	var im image.Image
	var err error
	switch f {
	case kindPNG:
		im, err = png.Decode(bytes.NewReader(b))
	case kindWebP:
		im, err = webp.Decode(bytes.NewReader(b))
	default:
		im, err = decodeJPEGGo(b)
	}
	if err != nil {
		return nil, kindError(ErrDecode, "%s: %v", formatNames[f], err)
	}
	return im, nil
}

// region copies the pixels [x0, x0+w) x [y0, y0+h) of im into buf as
// interleaved RGB (ch 3: gray repeated, alpha dropped) or luma (ch 1:
// Pillow's weights), with stride w·ch.
func region(im image.Image, x0, y0, w, h, ch int, buf []byte) rows {
	out := rows{pix: grow(buf, w*h*ch), stride: w * ch, ch: ch}
	b := im.Bounds()
	x0, y0 = x0+b.Min.X, y0+b.Min.Y
	switch m := im.(type) {
	case *image.YCbCr:
		for y := range h {
			row := out.pix[y*out.stride:]
			for x := range w {
				yi := m.YOffset(x0+x, y0+y)
				ci := m.COffset(x0+x, y0+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				put(row[x*ch:], ch, r, g, bl)
			}
		}
	case *image.Gray:
		for y := range h {
			row := out.pix[y*out.stride:]
			in := m.Pix[(y0+y-b.Min.Y)*m.Stride+(x0-b.Min.X):]
			for x := range w {
				put(row[x*ch:], ch, in[x], in[x], in[x])
			}
		}
	case *image.NRGBA:
		for y := range h {
			row := out.pix[y*out.stride:]
			in := m.Pix[(y0+y-b.Min.Y)*m.Stride+(x0-b.Min.X)*4:]
			for x := range w {
				put(row[x*ch:], ch, in[4*x], in[4*x+1], in[4*x+2])
			}
		}
	default:
		for y := range h {
			row := out.pix[y*out.stride:]
			for x := range w {
				c := color.NRGBAModel.Convert(im.At(x0+x, y0+y)).(color.NRGBA)
				put(row[x*ch:], ch, c.R, c.G, c.B)
			}
		}
	}
	return out
}

// put writes one pixel: RGB, or Pillow's luma (ImagingConvert's L24).
func put(dst []byte, ch int, r, g, b uint8) {
	if ch == 3 {
		dst[0], dst[1], dst[2] = r, g, b
		return
	}
	dst[0] = uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}
