//go:build !(cgo && libjpeg)

package pipeline

import (
	"bytes"
	"image"
	"image/jpeg"
)

// JPEGDecoder names the JPEG decoder of this build.
const JPEGDecoder = "go"

// hasDCTScale says whether the JPEG decoder can scale in the DCT domain.
const hasDCTScale = false

// jpegHeader reads a JPEG's size, and the bytes per pixel Go's decoder
// holds: the whole image (up to 3 a pixel) and, for a progressive image,
// its coefficients (4 bytes each, up to 3 a pixel): 16 covers both.
func jpegHeader(b []byte) (w, h, bpp int, err error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0, 0, kindError(ErrDecode, "JPEG header: %v", err)
	}
	return cfg.Width, cfg.Height, 16, nil
}

func decodeJPEGGo(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }

// decodeJPEG decodes the region [x0, x0+w) x [y0, y0+h) of a JPEG into
// buf: Go's decoder reads the whole image (d is always 1 here).
func decodeJPEG(b []byte, d, ch, x0, y0, w, h int, buf []byte, maxMem int64) (rows, error) {
	im, err := decodeGo(kindJPEG, b)
	if err != nil {
		return rows{}, err
	}
	return region(im, x0, y0, w, h, ch, buf), nil
}
