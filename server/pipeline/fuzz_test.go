package pipeline

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// FuzzNPY: any bytes parse or fail with ErrDecode/ErrTooLarge; a parse
// holds exactly the values its shape says.
func FuzzNPY(f *testing.F) {
	f.Add([]byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }             \n\x00\x00\x80?\x00\x00\x00@"))
	f.Add([]byte("\x93NUMPY\x02\x00\x20\x00\x00\x00{'descr':'|u1','shape':(),}  \n\x07"))
	f.Add([]byte("\x93NUMPY\x01\x00\x30\x00{'descr': '>i8', 'fortran_order': True, 'shape': (3, 4), }"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseNPY(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		n := a.dtype.size()
		for _, d := range a.shape {
			n *= d
		}
		if len(a.data) != n {
			t.Fatalf("shape %v of %s with %d bytes", a.shape, a.dtype, len(a.data))
		}
	})
}

// FuzzJSON: any bytes parse or fail with ErrDecode; a parse is
// rectangular.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{"1", "[1, 2.5]", "[[1,2],[3,4]]", "[[1],[2,3]]", "[]", "[[]]", `{"a": 1}`, "[[[[[[[[[[1]]]]]]]]]]", "1e400"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseJSON(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		n := 1
		for _, d := range v.shape {
			n *= d
		}
		if n != len(v.nums) {
			t.Fatalf("shape %v with %d numbers", v.shape, len(v.nums))
		}
	})
}

// FuzzImage: any bytes as an image field end in tensors or a
// SampleError, within the pool's limits, never a crash.
func FuzzImage(f *testing.F) {
	for _, name := range []string{"photo.png", "alpha.png", "photo.webp", "cmyk.jpg", "gray.jpg", "444.jpg"} {
		f.Add(testdata(f, name))
	}
	f.Add(pngBomb(100_000, 100_000))
	f.Add(pngBomb(3000, 3000))
	f.Add([]byte{0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0xff, 0xff, 0xff, 0xff, 1, 1, 0x11, 0})
	pool := NewPool(Config{Workers: 1, MemoryBytes: 32 << 20, MaxImagePixels: 4 << 20})
	f.Cleanup(pool.Close)
	p, err := Compile(&stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "im", Field: "img", Decode: "image", Params: true,
		Ops: []*stokerv1.ImageOp{rrcOp(16, 24), flipOp(0.5), normOp()}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := p.Prepare(0, []Input{{Key: "k", Fields: []Field{{Name: "img", Data: data}}}})
		if err != nil {
			t.Fatal(err)
		}
		err = pool.Run(context.Background(), b, make([]byte, b.Size()))
		if err != nil && !IsSampleError(err) {
			t.Fatalf("not a sample's error: %v", err)
		}
	})
}

// FuzzCompile: any request bytes compile or fail with ErrSpec.
func FuzzCompile(f *testing.F) {
	for _, spec := range []*stokerv1.Pipeline{imagenet(1), {Outputs: []*stokerv1.PipelineOutput{{Name: "x", Field: "npy", Decode: "npy", Shape: &stokerv1.TensorShape{Dims: []uint64{3, 1 << 40}}}}}} {
		b, err := proto.Marshal(spec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var spec stokerv1.Pipeline
		if proto.Unmarshal(b, &spec) != nil {
			return
		}
		if _, err := Compile(&spec); err != nil && !errors.Is(err, ErrSpec) {
			t.Fatalf("error of no kind: %v", err)
		}
	})
}
