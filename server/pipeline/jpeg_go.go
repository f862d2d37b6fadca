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

func jpegHeader(b []byte) (w, h int, err error) {
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0, kindError(ErrDecode, "JPEG header: %v", err)
	}
	return cfg.Width, cfg.Height, nil
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
