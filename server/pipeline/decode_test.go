package pipeline

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// Decoding only a region (libjpeg-turbo's crop and skip) gives exactly
// the pixels of the whole image's decode there, at every DCT scale.
func TestJPEGRegionIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, name := range []string{"photo.jpg", "progressive.jpg", "444.jpg", "gray.jpg", "cmyk.jpg"} {
		data := testdata(t, name)
		w, h, _, err := jpegHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		scales := []int{1}
		if hasDCTScale {
			scales = []int{1, 2, 4, 8}
		}
		for _, d := range scales {
			sw, sh := (w+d-1)/d, (h+d-1)/d
			for _, ch := range []int{3, 1} {
				full, err := decodeJPEG(data, d, ch, 0, 0, sw, sh, nil, 1<<30)
				if err != nil {
					t.Fatalf("%s 1/%d: %v", name, d, err)
				}
				for range 15 {
					rw, rh := 1+r.IntN(sw), 1+r.IntN(sh)
					x0, y0 := r.IntN(sw-rw+1), r.IntN(sh-rh+1)
					part, err := decodeJPEG(data, d, ch, x0, y0, rw, rh, nil, 1<<30)
					if err != nil {
						t.Fatalf("%s 1/%d region %dx%d at %d,%d: %v", name, d, rw, rh, x0, y0, err)
					}
					for y := range rh {
						want := full.pix[(y0+y)*full.stride+x0*ch : (y0+y)*full.stride+(x0+rw)*ch]
						if got := part.pix[y*part.stride : y*part.stride+rw*ch]; !bytes.Equal(got, want) {
							t.Fatalf("%s 1/%d %d ch: region %dx%d at %d,%d: row %d differs from the whole decode", name, d, ch, rw, rh, x0, y0, y)
						}
					}
				}
			}
		}
	}
}

// libjpeg-turbo (fancy upsampling) and Go's image/jpeg (its own IDCT,
// nearest-neighbour chroma) agree to within two levels on average, up to
// 65 at sharp colour edges on 4:2:0 images; Pillow and torchvision use
// libjpeg-turbo, so the Python tests hold the libjpeg build to them
// exactly and the Go build to this.
func TestJPEGDecodersAgree(t *testing.T) {
	for _, name := range []string{"photo.jpg", "progressive.jpg", "444.jpg", "gray.jpg", "cmyk.jpg"} {
		data := testdata(t, name)
		w, h, _, _ := jpegHeader(data)
		ours, err := decodeJPEG(data, 1, 3, 0, 0, w, h, nil, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		im, err := decodeJPEGGo(data)
		if err != nil {
			t.Fatal(err)
		}
		goRows := region(im, 0, 0, w, h, 3, nil)
		sum, worst := 0.0, 0.0
		for i := range ours.pix[:w*h*3] {
			d := math.Abs(float64(ours.pix[i]) - float64(goRows.pix[i]))
			sum += d
			worst = max(worst, d)
		}
		mean := sum / float64(w*h*3)
		t.Logf("%s: mean |libjpeg - Go| %.3f, max %v (%s)", name, mean, worst, JPEGDecoder)
		if mean > 2 {
			t.Errorf("%s: decoders differ by %.2f levels on average", name, mean)
		}
	}
}

func TestImageFormats(t *testing.T) {
	pool := newTestPool(t, Config{Workers: 2})
	for _, c := range []struct {
		file, decode string
		ch           uint32
	}{
		{"photo.jpg", "image", 3}, {"photo.jpg", "jpeg", 1}, {"progressive.jpg", "image", 3}, {"gray.jpg", "image", 3},
		{"cmyk.jpg", "jpeg", 3}, {"photo.png", "png", 3}, {"alpha.png", "image", 3}, {"alpha.png", "image", 1}, {"photo.webp", "webp", 3},
	} {
		spec := &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "im", Field: "img", Decode: c.decode, Channels: c.ch,
			Ops: []*stokerv1.ImageOp{resizeHWOp(32, 40)}}}}
		p := compile(t, spec)
		b, dst, err := run(t, p, pool, 0, []Input{{Key: c.file, Fields: []Field{{Name: "img", Data: testdata(t, c.file)}}}})
		if err != nil {
			t.Fatalf("%s as %s: %v", c.file, c.decode, err)
		}
		tt, px := tensor(t, b, dst, "im")
		if want := []int{1, 32, 40, int(c.ch)}; !equalInts(tt.Shape, want) {
			t.Fatalf("%s: shape %v, want %v", c.file, tt.Shape, want)
		}
		if bytes.Count(px, []byte{0xa5}) == len(px) {
			t.Fatalf("%s: the row was not written", c.file)
		}
		if c.file == "gray.jpg" { // a gray image's channels are equal
			for i := 0; i < len(px); i += 3 {
				if px[i] != px[i+1] || px[i] != px[i+2] {
					t.Fatalf("gray.jpg: pixel %d is %v", i/3, px[i:i+3])
				}
			}
		}
	}
	// A decode that names a format refuses another.
	p := compile(t, &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "im", Field: "img", Decode: "png", Ops: []*stokerv1.ImageOp{cropOp(8, 8)}}}})
	_, _, err := run(t, p, pool, 0, []Input{{Key: "k1", Object: "s3://b/shard-0.tar", Fields: []Field{{Name: "img", Data: testdata(t, "photo.jpg")}}}})
	if !errors.Is(err, ErrDecode) || !bytes.Contains([]byte(err.Error()), []byte("a JPEG image, not PNG")) || !bytes.Contains([]byte(err.Error()), []byte(`"k1"`)) {
		t.Errorf("a JPEG as png: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
