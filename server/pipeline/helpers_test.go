package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// testdata reads a file of testdata/ (images Pillow wrote: photo-like
// noise and shapes; see the README there).
func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Op builders.
func rrcOp(h, w uint32) *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_RandomResizedCrop{RandomResizedCrop: &stokerv1.RandomResizedCrop{Height: h, Width: w}}}
}
func resizeOp(shorter uint32) *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_Resize{Resize: &stokerv1.Resize{Shorter: shorter}}}
}
func resizeHWOp(h, w uint32) *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_Resize{Resize: &stokerv1.Resize{Height: h, Width: w}}}
}
func cropOp(h, w uint32) *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_CenterCrop{CenterCrop: &stokerv1.CenterCrop{Height: h, Width: w}}}
}
func flipOp(p float64) *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_HorizontalFlip{HorizontalFlip: &stokerv1.HorizontalFlip{P: &p}}}
}
func normOp() *stokerv1.ImageOp {
	return &stokerv1.ImageOp{Op: &stokerv1.ImageOp_Normalize{Normalize: &stokerv1.Normalize{
		Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}}}
}

// imagenet is ImageNet's training pipeline: random-resized crop to 224,
// flip, normalize, CHW float32; and the label.
func imagenet(seed uint64) *stokerv1.Pipeline {
	return &stokerv1.Pipeline{Seed: seed, Outputs: []*stokerv1.PipelineOutput{
		{Name: "image", Field: "jpg;png", Decode: "image", Layout: "CHW", Params: true,
			Ops: []*stokerv1.ImageOp{rrcOp(224, 224), flipOp(0.5), normOp()}},
		{Name: "label", Field: "cls", Decode: "int"},
	}}
}

// compile compiles spec or fails the test.
func compile(t testing.TB, spec *stokerv1.Pipeline) *Pipeline {
	t.Helper()
	p, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run prepares and runs inputs through p on a pool of workers, returning
// the batch and its buffer.
func run(t testing.TB, p *Pipeline, pool *Pool, epoch uint64, inputs []Input) (*Batch, []byte, error) {
	t.Helper()
	b, err := p.Prepare(epoch, inputs)
	if err != nil {
		return nil, nil, err
	}
	dst := make([]byte, b.Size())
	for i := range dst {
		dst[i] = 0xa5 // stale bytes a row must overwrite
	}
	return b, dst, pool.Run(context.Background(), b, dst)
}

// tensor returns the bytes of a batch's tensor by name.
func tensor(t testing.TB, b *Batch, dst []byte, name string) (Tensor, []byte) {
	t.Helper()
	for _, tt := range b.Tensors() {
		if tt.Name == name {
			return tt, dst[tt.Offset : tt.Offset+tt.Len]
		}
	}
	t.Fatalf("no tensor %q", name)
	return Tensor{}, nil
}

func newTestPool(t testing.TB, cfg Config) *Pool {
	p := NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}
