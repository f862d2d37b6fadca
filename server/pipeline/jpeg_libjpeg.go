//go:build cgo && libjpeg

package pipeline

/*
#cgo LDFLAGS: -ljpeg
#cgo CFLAGS: -O2
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

// Errors longjmp back to the call that set jb, with libjpeg's message;
// a truncated stream (a warning to libjpeg, which pads it with gray) is
// an error here. Other warnings (extraneous bytes, say) are not.
typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
} stk_err;

static void stk_error_exit(j_common_ptr c) {
	stk_err *e = (stk_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

static void stk_emit(j_common_ptr c, int level) {
	if (level >= 0) return;
	if (c->err->msg_code == JWRN_JPEG_EOF) stk_error_exit(c);
	c->err->num_warnings++;
}

static void stk_setup(struct jpeg_decompress_struct *c, stk_err *e) {
	memset(c, 0, sizeof(*c));
	c->err = jpeg_std_error(&e->pub);
	e->pub.error_exit = stk_error_exit;
	e->pub.emit_message = stk_emit;
	e->msg[0] = 0;
}

static int stk_fail(struct jpeg_decompress_struct *c, stk_err *e, char *msg, int n) {
	snprintf(msg, n, "%s", e->msg);
	jpeg_destroy_decompress(c);
	return -1;
}

static int stk_jpeg_header(const unsigned char *buf, unsigned long n, int *w, int *h, int *progressive, char *msg, int msgn) {
	struct jpeg_decompress_struct c;
	stk_err e;
	stk_setup(&c, &e);
	if (setjmp(e.jb)) return stk_fail(&c, &e, msg, msgn);
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, buf, n);
	jpeg_read_header(&c, TRUE);
	*w = c.image_width;
	*h = c.image_height;
	*progressive = c.progressive_mode;
	jpeg_destroy_decompress(&c);
	return 0;
}

#ifndef STK_MARGIN
#define STK_MARGIN 4
#endif

#define MULDIV255(a, b) ((((a) * (b) + 128) + (((a) * (b) + 128) >> 8)) >> 8)

// Pillow's luma (ImagingConvert's L24).
static inline unsigned char stk_luma(unsigned r, unsigned g, unsigned b) {
	return (unsigned char)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

// Pillow's cmyk2rgb; Adobe's CMYK JPEGs store inverted values.
static void stk_cmyk(const unsigned char *in, unsigned char *o, int w, int ch, int adobe) {
	for (int x = 0; x < w; x++, in += 4) {
		unsigned k = adobe ? in[3] : 255 - in[3];
		unsigned r = MULDIV255(adobe ? in[0] : 255 - in[0], k);
		unsigned g = MULDIV255(adobe ? in[1] : 255 - in[1], k);
		unsigned b = MULDIV255(adobe ? in[2] : 255 - in[2], k);
		if (ch == 3) {
			o[3 * x] = r; o[3 * x + 1] = g; o[3 * x + 2] = b;
		} else {
			o[x] = stk_luma(r, g, b);
		}
	}
}

// stk_jpeg_decode decodes columns [x0, x0+w) of rows [y0, y0+h) of the
// image scaled by 1/d (d 1, 2, 4, 8) into out (stride w*ch): RGB for ch 3,
// Pillow's luma of RGB for ch 1 (a gray JPEG's own samples). Only the
// iMCU columns holding the region are decoded (jpeg_crop_scanline), rows
// above it are skipped and rows below it never read. max_mem bounds
// libjpeg's own allocations (progressive images hold their coefficients).
static int stk_jpeg_decode(const unsigned char *buf, unsigned long n, int d, int ch, int x0, int y0, int w, int h,
                           unsigned char *out, long max_mem, char *msg, int msgn) {
	struct jpeg_decompress_struct c;
	stk_err e;
	stk_setup(&c, &e);
	if (setjmp(e.jb)) return stk_fail(&c, &e, msg, msgn);
	jpeg_create_decompress(&c);
	c.mem->max_memory_to_use = max_mem;
	jpeg_mem_src(&c, buf, n);
	jpeg_read_header(&c, TRUE);
	int gray = c.jpeg_color_space == JCS_GRAYSCALE;
	int cmyk = c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK;
	int adobe = c.saw_Adobe_marker;
	// A gray image decodes as gray, RGB as RGB (luma computed here, as
	// Pillow does, rather than libjpeg's Y).
	c.out_color_space = gray ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
	c.scale_num = 8 / d;
	c.scale_denom = 8;
	c.dct_method = JDCT_ISLOW;
	jpeg_start_decompress(&c);
	if (x0 < 0 || y0 < 0 || w <= 0 || h <= 0 || (unsigned)(x0 + w) > c.output_width || (unsigned)(y0 + h) > c.output_height) {
		snprintf(e.msg, sizeof e.msg, "region %dx%d at (%d, %d) outside the decoded %ux%u", w, h, x0, y0, c.output_width, c.output_height);
		return stk_fail(&c, &e, msg, msgn);
	}
	// Decode from STK_MARGIN rows above the region and STK_MARGIN columns
	// either side, then keep the region: the chroma upsampler needs its
	// neighbours (without them, the first row after jpeg_skip_scanlines
	// differs from a whole decode's; one row is enough, TestJPEGRegionIsExact
	// finds).
	int ys = y0 > STK_MARGIN ? y0 - STK_MARGIN : 0;
	int xs = x0 > STK_MARGIN ? x0 - STK_MARGIN : 0;
	int xe = x0 + w + STK_MARGIN < (int)c.output_width ? x0 + w + STK_MARGIN : (int)c.output_width;
	JDIMENSION xoff = xs, width = xe - xs;
	if (width < c.output_width) jpeg_crop_scanline(&c, &xoff, &width);
	int comps = c.output_components;
	JSAMPARRAY row = (*c.mem->alloc_sarray)((j_common_ptr)&c, JPOOL_IMAGE, width * comps, 1);
	if (ys > 0) jpeg_skip_scanlines(&c, ys);
	for (int y = ys; y < y0; y++) jpeg_read_scanlines(&c, row, 1);
	int dx = x0 - (int)xoff;
	for (int y = 0; y < h; y++) {
		if (jpeg_read_scanlines(&c, row, 1) != 1) {
			snprintf(e.msg, sizeof e.msg, "no scanline %d", y0 + y);
			return stk_fail(&c, &e, msg, msgn);
		}
		const unsigned char *in = row[0] + dx * comps;
		unsigned char *o = out + (size_t)y * w * ch;
		if (comps == ch) { // RGB to RGB, gray to gray
			memcpy(o, in, (size_t)w * ch);
		} else if (gray) { // gray to RGB
			for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = in[x];
		} else if (cmyk) {
			stk_cmyk(in, o, w, ch, adobe);
		} else { // RGB to luma
			for (int x = 0; x < w; x++, in += 3) o[x] = stk_luma(in[0], in[1], in[2]);
		}
	}
	jpeg_abort_decompress(&c);
	jpeg_destroy_decompress(&c);
	return 0;
}

static int stk_jpeg_version(void) { return LIBJPEG_TURBO_VERSION_NUMBER; }
*/
import "C"

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"unsafe"
)

// JPEGDecoder names the JPEG decoder of this build.
var JPEGDecoder = func() string {
	v := int(C.stk_jpeg_version())
	return fmt.Sprintf("libjpeg-turbo %d.%d.%d", v/1000000, v/1000%1000, v%1000)
}()

// hasDCTScale says whether the JPEG decoder can scale in the DCT domain.
const hasDCTScale = true

const msgLen = 200

func cmsg(b []C.char) string { return C.GoString(&b[0]) }

// jpegHeader reads a JPEG's size, and the bytes per pixel libjpeg holds
// besides the region it decodes: a progressive image's coefficients (2
// bytes a sample, up to 3 samples a pixel), nothing for a baseline one.
func jpegHeader(b []byte) (w, h, bpp int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, kindError(ErrDecode, "JPEG: empty")
	}
	var cw, ch, prog C.int
	var msg [msgLen]C.char
	if C.stk_jpeg_header((*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), &cw, &ch, &prog, &msg[0], msgLen) != 0 {
		return 0, 0, 0, kindError(ErrDecode, "JPEG header: %s", cmsg(msg[:]))
	}
	if prog != 0 {
		bpp = 6
	}
	return int(cw), int(ch), bpp, nil
}

// decodeJPEG decodes the region [x0, x0+w) x [y0, y0+h) of the JPEG
// scaled by 1/d into buf, libjpeg's allocations bounded by maxMem.
func decodeJPEG(b []byte, d, ch, x0, y0, w, h int, buf []byte, maxMem int64) (rows, error) {
	out := rows{pix: grow(buf, w*h*ch), stride: w * ch, ch: ch}
	var msg [msgLen]C.char
	if C.stk_jpeg_decode((*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), C.int(d), C.int(ch), C.int(x0), C.int(y0), C.int(w), C.int(h),
		(*C.uchar)(unsafe.Pointer(&out.pix[0])), C.long(maxMem), &msg[0], msgLen) != 0 {
		return rows{}, kindError(ErrDecode, "JPEG: %s", cmsg(msg[:]))
	}
	return out, nil
}

// decodeJPEGGo is Go's decoder, which the tests compare with libjpeg's.
func decodeJPEGGo(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
