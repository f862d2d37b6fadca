//go:build cgo && libjpeg

package pipeline

/*
#cgo CFLAGS: -O3
#include <stdint.h>
#include <stddef.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define STK_AVX2 1
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STK_CLONES
#endif

#define STK_BITS 22
#define STK_HALF (1 << (STK_BITS - 1))

static inline uint8_t stk_clip8(int32_t v) {
	v >>= STK_BITS;
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

// The horizontal pass over K taps for every output (taps is the largest
// count: weights past an output's count are 0, so reading K pixels gives
// Pillow's sum; the source has room for them past its last row).
#define STK_H3(K) \
	for (int x = xfrom; x < nout; x++) { \
		const uint8_t *p = in + (start[x] - shift) * 3; \
		const int32_t *w = k + (size_t)x * ksize; \
		int32_t s0 = STK_HALF, s1 = STK_HALF, s2 = STK_HALF; \
		for (int t = 0; t < (K); t++) { \
			s0 += p[3 * t] * w[t]; \
			s1 += p[3 * t + 1] * w[t]; \
			s2 += p[3 * t + 2] * w[t]; \
		} \
		o[3 * x] = stk_clip8(s0); \
		o[3 * x + 1] = stk_clip8(s1); \
		o[3 * x + 2] = stk_clip8(s2); \
	}

#ifdef STK_AVX2
// The horizontal pass for RGB, eight outputs at a time: each tap gathers
// the eight pixels (4 bytes from each: R, G, B and one more), and the
// channels multiply their weights in 32-bit lanes, so the sums are
// Pillow's. kt holds the weights by block of 8 outputs, then tap, then
// output; off the byte offset of each output's first tap. Returns the
// outputs done (a multiple of 8); the caller does the rest.
__attribute__((target("avx2")))
static int stk_hpass3_avx2(const uint8_t *src, int sstride, int nrows, uint8_t *dst, int dstride, int nout,
                           const int32_t *off, const int32_t *kt, int taps) {
	int blocks = nout / 8;
	const __m256i mask = _mm256_set1_epi32(0xff);
	const __m256i halfv = _mm256_set1_epi32(STK_HALF);
	const __m256i zero = _mm256_setzero_si256();
	const __m256i maxv = _mm256_set1_epi32(255);
	int32_t r[8], g[8], b[8];
	for (int y = 0; y < nrows; y++) {
		const uint8_t *in = src + (size_t)y * sstride;
		uint8_t *o = dst + (size_t)y * dstride;
		for (int xb = 0; xb < blocks; xb++) {
			__m256i idx = _mm256_loadu_si256((const __m256i *)(off + xb * 8));
			__m256i s0 = halfv, s1 = halfv, s2 = halfv;
			const int32_t *w = kt + (size_t)xb * taps * 8;
			for (int t = 0; t < taps; t++) {
				__m256i px = _mm256_i32gather_epi32((const int *)(in + 3 * t), idx, 1);
				__m256i wt = _mm256_loadu_si256((const __m256i *)(w + t * 8));
				s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(_mm256_and_si256(px, mask), wt));
				s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(px, 8), mask), wt));
				s2 = _mm256_add_epi32(s2, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(px, 16), mask), wt));
			}
			s0 = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(s0, STK_BITS), zero), maxv);
			s1 = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(s1, STK_BITS), zero), maxv);
			s2 = _mm256_min_epi32(_mm256_max_epi32(_mm256_srai_epi32(s2, STK_BITS), zero), maxv);
			_mm256_storeu_si256((__m256i *)r, s0);
			_mm256_storeu_si256((__m256i *)g, s1);
			_mm256_storeu_si256((__m256i *)b, s2);
			uint8_t *q = o + xb * 24;
			for (int i = 0; i < 8; i++) {
				q[3 * i] = r[i]; q[3 * i + 1] = g[i]; q[3 * i + 2] = b[i];
			}
		}
	}
	return blocks * 8;
}

static int stk_has_avx2(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
}
#else
static int stk_hpass3_avx2(const uint8_t *src, int sstride, int nrows, uint8_t *dst, int dstride, int nout,
                           const int32_t *off, const int32_t *kt, int taps) { return 0; }
static int stk_has_avx2(void) { return 0; }
#endif

// Pillow's horizontal pass, as resampleH (the same integers).
STK_CLONES
static void stk_hpass(const uint8_t *src, int sstride, int nrows, uint8_t *dst, int dstride, int nout, int ch,
                      const int32_t *start, const int32_t *k, int ksize, int taps, int shift, int xfrom) {
	for (int y = 0; y < nrows; y++) {
		const uint8_t *in = src + (size_t)y * sstride;
		uint8_t *o = dst + (size_t)y * dstride;
		if (ch == 3) {
			switch (taps) {
			case 2: STK_H3(2) break;
			case 3: STK_H3(3) break;
			case 4: STK_H3(4) break;
			case 5: STK_H3(5) break;
			case 6: STK_H3(6) break;
			default: STK_H3(taps)
			}
		} else {
			for (int x = xfrom; x < nout; x++) {
				const uint8_t *p = in + (start[x] - shift);
				const int32_t *w = k + (size_t)x * ksize;
				int32_t s = STK_HALF;
				for (int t = 0; t < taps; t++) s += p[t] * w[t];
				o[x] = stk_clip8(s);
			}
		}
	}
}

// Pillow's vertical pass, as resampleV: the inner loops run along a row,
// which the compiler vectorises.
STK_CLONES
static void stk_vpass(const uint8_t *src, int sstride, uint8_t *dst, int dstride, int width, int nout,
                      const int32_t *start, const int32_t *count, const int32_t *k, int ksize, int shift, int32_t *acc) {
	for (int yy = 0; yy < nout; yy++) {
		const int32_t *w = k + (size_t)yy * ksize;
		for (int i = 0; i < width; i++) acc[i] = STK_HALF;
		for (int t = 0, n = count[yy]; t < n; t++) {
			const uint8_t *in = src + (size_t)(start[yy] - shift + t) * sstride;
			int32_t wt = w[t];
			for (int i = 0; i < width; i++) acc[i] += in[i] * wt;
		}
		uint8_t *o = dst + (size_t)yy * dstride;
		for (int i = 0; i < width; i++) o[i] = stk_clip8(acc[i]);
	}
}

// stk_write is imageSpec.write for 3 channels: each pixel through the
// channel's table (f32 or f16 bits, or the byte itself), mirrored when
// flip, HWC or CHW. esize is the element's bytes (1, 2 or 4).
static void stk_write3(const uint8_t *src, int sstride, int h, int w, int flip, int chw, int esize,
                       const float *f32, const uint16_t *f16, uint8_t *dst) {
	size_t plane = (size_t)h * w;
	for (int y = 0; y < h; y++) {
		const uint8_t *in = src + (size_t)y * sstride;
		size_t row = (size_t)y * w;
		for (int x = 0; x < w; x++) {
			const uint8_t *p = in + 3 * (flip ? w - 1 - x : x);
			size_t i0, i1, i2;
			if (chw) {
				i0 = row + x; i1 = plane + row + x; i2 = 2 * plane + row + x;
			} else {
				i0 = 3 * (row + x); i1 = i0 + 1; i2 = i0 + 2;
			}
			switch (esize) {
			case 4:
				((float *)dst)[i0] = f32[p[0]];
				((float *)dst)[i1] = f32[256 + p[1]];
				((float *)dst)[i2] = f32[512 + p[2]];
				break;
			case 2:
				((uint16_t *)dst)[i0] = f16[p[0]];
				((uint16_t *)dst)[i1] = f16[256 + p[1]];
				((uint16_t *)dst)[i2] = f16[512 + p[2]];
				break;
			default:
				dst[i0] = p[0]; dst[i1] = p[1]; dst[i2] = p[2];
			}
		}
	}
}
*/
import "C"

import "unsafe"

// The C kernels: the same integers as the Go passes (a test compares
// them), compiled with the vector instructions the CPU has.

var hasAVX2 = C.stk_has_avx2() != 0

func hpass(dst, src rows, nrows int, c *coeffs, shift int) {
	from := 0
	if hasAVX2 && src.ch == 3 && len(c.start) >= 8 {
		off, kt := c.blocks(shift)
		from = int(C.stk_hpass3_avx2((*C.uint8_t)(&src.pix[0]), C.int(src.stride), C.int(nrows), (*C.uint8_t)(&dst.pix[0]), C.int(dst.stride),
			C.int(len(c.start)), (*C.int32_t)(&off[0]), (*C.int32_t)(&kt[0]), C.int(c.maxCount)))
	}
	if from < len(c.start) {
		C.stk_hpass((*C.uint8_t)(&src.pix[0]), C.int(src.stride), C.int(nrows), (*C.uint8_t)(&dst.pix[0]), C.int(dst.stride),
			C.int(len(c.start)), C.int(src.ch), (*C.int32_t)(&c.start[0]), (*C.int32_t)(&c.k[0]), C.int(c.ksize), C.int(c.maxCount), C.int(shift), C.int(from))
	}
}

func vpass(dst, src rows, width int, c *coeffs, shift int, acc []int32) {
	C.stk_vpass((*C.uint8_t)(&src.pix[0]), C.int(src.stride), (*C.uint8_t)(&dst.pix[0]), C.int(dst.stride), C.int(width),
		C.int(len(c.start)), (*C.int32_t)(&c.start[0]), (*C.int32_t)(&c.count[0]), (*C.int32_t)(&c.k[0]), C.int(c.ksize), C.int(shift),
		(*C.int32_t)(&acc[0]))
}

func writeImage(img *imageSpec, dst []byte, src rows, flip bool, dt dtype, l *luts) {
	if img.channels != 3 {
		img.write(dst, src, flip, dt, l)
		return
	}
	b2i := func(b bool) C.int {
		if b {
			return 1
		}
		return 0
	}
	C.stk_write3((*C.uint8_t)(&src.pix[0]), C.int(src.stride), C.int(img.outH), C.int(img.outW), b2i(flip), b2i(img.chw), C.int(dt.size()),
		(*C.float)(unsafe.Pointer(&l.f32[0][0])), (*C.uint16_t)(unsafe.Pointer(&l.f16[0][0])), (*C.uint8_t)(&dst[0]))
}
