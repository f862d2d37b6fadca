//go:build !(cgo && libjpeg)

package pipeline

// Without cgo, the Go passes.

func hpass(dst, src rows, nrows int, c *coeffs, shift int) { resampleH(dst, src, nrows, c, shift) }

func vpass(dst, src rows, width int, c *coeffs, shift int, acc []int32) {
	resampleV(dst, src, width, c, shift, acc)
}

func writeImage(img *imageSpec, dst []byte, src rows, flip bool, dt dtype, l *luts) {
	img.write(dst, src, flip, dt, l)
}
