package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
	"strings"
	"testing"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// photos are inputs at positions pos, each with a JPEG (or PNG) and a
// label.
func photos(t testing.TB, positions ...int) []Input {
	files := []string{"photo.jpg", "progressive.jpg", "444.jpg", "photo.png", "gray.jpg"}
	var in []Input
	for _, pos := range positions {
		f := files[pos%len(files)]
		name := "jpg"
		if strings.HasSuffix(f, ".png") {
			name = "png"
		}
		in = append(in, Input{Key: fmt.Sprintf("s%04d", pos), Object: "file:///d/shard.tar", Position: pos,
			Fields: []Field{{Name: name, Data: testdata(t, f)}, {Name: "cls", Data: fmt.Appendf(nil, "%d", pos%10)}}})
	}
	return in
}

func TestImagenetBatch(t *testing.T) {
	pool := newTestPool(t, Config{Workers: 3})
	p := compile(t, imagenet(42))
	b, dst, err := run(t, p, pool, 3, photos(t, 0, 1, 2, 3, 4, 5, 6))
	if err != nil {
		t.Fatal(err)
	}
	img, px := tensor(t, b, dst, "image")
	if !equalInts(img.Shape, []int{7, 3, 224, 224}) || img.DType != "float32" {
		t.Fatalf("image tensor %v %s", img.Shape, img.DType)
	}
	// Normalized values of ImageNet's statistics lie in [-2.2, 2.7].
	for i := 0; i < len(px); i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(px[i:]))
		if !(v >= -2.2 && v <= 2.7) {
			t.Fatalf("element %d is %v", i/4, v)
		}
	}
	lab, lb := tensor(t, b, dst, "label")
	if lab.DType != "int64" || !equalInts(lab.Shape, []int{7}) {
		t.Fatalf("label tensor %v %s", lab.Shape, lab.DType)
	}
	for i := range 7 {
		if v := int64(binary.LittleEndian.Uint64(lb[8*i:])); v != int64(i%10) {
			t.Errorf("label %d is %d", i, v)
		}
	}
	pt, pb := tensor(t, b, dst, "image.params")
	if !equalInts(pt.Shape, []int{7, 5}) {
		t.Fatalf("params shape %v", pt.Shape)
	}
	flips := 0
	for i := range 7 {
		top, left, h, w := int32(binary.LittleEndian.Uint32(pb[20*i:])), int32(binary.LittleEndian.Uint32(pb[20*i+4:])),
			int32(binary.LittleEndian.Uint32(pb[20*i+8:])), int32(binary.LittleEndian.Uint32(pb[20*i+12:]))
		if top < 0 || left < 0 || h < 1 || w < 1 {
			t.Errorf("sample %d: crop (%d, %d, %d, %d)", i, top, left, h, w)
		}
		flips += int(binary.LittleEndian.Uint32(pb[20*i+16:]))
	}
	t.Logf("%d of 7 flipped", flips)
}

// A sample's tensors depend on (seed, epoch, position) and its bytes
// only: not on the batch it is in, its place there, or the workers.
func TestDeterministicPerSample(t *testing.T) {
	p := compile(t, imagenet(7))
	rowsOf := func(pool *Pool, epoch uint64, positions ...int) map[int][]byte {
		b, dst, err := run(t, p, pool, epoch, photos(t, positions...))
		if err != nil {
			t.Fatal(err)
		}
		img, px := tensor(t, b, dst, "image")
		out := map[int][]byte{}
		for i, pos := range positions {
			out[pos] = px[i*img.RowBytes : (i+1)*img.RowBytes]
		}
		return out
	}
	one, three := newTestPool(t, Config{Workers: 1}), newTestPool(t, Config{Workers: 3})
	a := rowsOf(one, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	b := rowsOf(three, 0, 9, 3, 6, 0)
	c := rowsOf(three, 0, 1, 4, 7, 2, 5, 8)
	for pos, row := range a {
		other := b[pos]
		if other == nil {
			other = c[pos]
		}
		if !bytes.Equal(row, other) {
			t.Errorf("position %d: different tensors in another batch", pos)
		}
	}
	// Another epoch, or another position of the same bytes, draws anew.
	e1 := rowsOf(one, 1, 0)
	if bytes.Equal(e1[0], a[0]) {
		t.Error("epoch 1 gave position 0 the augmentation of epoch 0")
	}
	if bytes.Equal(a[0], a[5]) { // photos 0 and 5 are the same file
		t.Error("positions 0 and 5 (the same image) got the same augmentation")
	}
}

func TestValueOutputs(t *testing.T) {
	npy := func(descr string, shape string, body []byte) []byte {
		h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
		for (10+len(h)+1)%64 != 0 {
			h += " "
		}
		h += "\n"
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
		return append(append(b, h...), body...)
	}
	f32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	spec := &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{
		{Name: "emb", Field: "npy", Decode: "npy"},
		{Name: "emb16", Field: "npy", Decode: "npy", Dtype: "float16"},
		{Name: "box", Field: "json", Decode: "json", Dtype: "int32"},
		{Name: "caption", Field: "txt", Decode: "text"},
		{Name: "label", Field: "cls", Decode: "int", Dtype: "int32"},
	}}
	p := compile(t, spec)
	in := []Input{
		{Key: "a", Fields: []Field{{"npy", npy("<f4", "(2, 2)", f32(1, 2, 3, 4))}, {"json", []byte("[[1, 2], [3, 4]]")}, {"txt", []byte("héllo")}, {"cls", []byte(" 7\n")}}},
		{Key: "b", Fields: []Field{{"npy", npy("<f4", "(2, 2)", f32(-1, 0.5, 1e5, 65520))}, {"json", []byte("[[5,6],[7,8]]")}, {"txt", []byte("")}, {"cls", []byte("-3")}}},
	}
	b, dst, err := run(t, p, newTestPool(t, Config{Workers: 2}), 0, in)
	if err != nil {
		t.Fatal(err)
	}
	emb, eb := tensor(t, b, dst, "emb")
	if emb.DType != "float32" || !equalInts(emb.Shape, []int{2, 2, 2}) || !bytes.Equal(eb, append(f32(1, 2, 3, 4), f32(-1, 0.5, 1e5, 65520)...)) {
		t.Errorf("emb: %s %v % x", emb.DType, emb.Shape, eb)
	}
	e16, hb := tensor(t, b, dst, "emb16")
	want16 := []uint16{0x3c00, 0x4000, 0x4200, 0x4400, 0xbc00, 0x3800, 0x7c00, 0x7c00} // 1e5 and 65520 overflow to Inf
	for i, w := range want16 {
		if got := binary.LittleEndian.Uint16(hb[2*i:]); got != w {
			t.Errorf("emb16[%d] = %#04x, want %#04x (%s %v)", i, got, w, e16.DType, e16.Shape)
		}
	}
	box, bb := tensor(t, b, dst, "box")
	for i := range 8 {
		if v := int32(binary.LittleEndian.Uint32(bb[4*i:])); v != int32(i+1) || box.DType != "int32" {
			t.Errorf("box[%d] = %d", i, v)
		}
	}
	cap, cb := tensor(t, b, dst, "caption")
	if !equalInts(cap.Lengths, []int{6, 0}) || string(cb) != "héllo" {
		t.Errorf("caption: %v %q", cap.Lengths, cb)
	}
	_, lb := tensor(t, b, dst, "label")
	if a, c := int32(binary.LittleEndian.Uint32(lb)), int32(binary.LittleEndian.Uint32(lb[4:])); a != 7 || c != -3 {
		t.Errorf("labels %d %d", a, c)
	}
}

func TestCompileErrors(t *testing.T) {
	img := func(o *stokerv1.PipelineOutput) *stokerv1.Pipeline {
		if o.Name == "" {
			o.Name = "image"
		}
		if o.Field == "" {
			o.Field = "jpg"
		}
		if o.Decode == "" {
			o.Decode = "image"
		}
		return &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{o}}
	}
	for _, c := range []struct {
		spec *stokerv1.Pipeline
		want string
	}{
		{&stokerv1.Pipeline{}, "no outputs"},
		{img(&stokerv1.PipelineOutput{Decode: "gif", Ops: []*stokerv1.ImageOp{cropOp(2, 2)}}), `decode "gif"`},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{{}}}), "op 0: unknown op"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{resizeOp(256)}}), "not fixed"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{resizeOp(256), rrcOp(224, 224)}}), "op 1: random_resized_crop must be the first op"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{cropOp(4, 4), resizeOp(2)}}), "op 1: resize must come first"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{cropOp(4, 4), normOp()}, Dtype: "uint8"}), "cannot hold normalized"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{cropOp(4, 4)}, Layout: "NHWC"}), `layout "NHWC"`},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{cropOp(4, 4), flipOp(1.5)}}), "horizontal_flip p 1.5"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{cropOp(1<<20, 4)}}), "each side in"},
		{img(&stokerv1.PipelineOutput{Name: "__x", Ops: []*stokerv1.ImageOp{cropOp(4, 4)}}), `must not start with "__"`},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{{Op: &stokerv1.ImageOp_RandomResizedCrop{RandomResizedCrop: &stokerv1.RandomResizedCrop{Height: 4, Width: 4, ScaleMin: 0.5, ScaleMax: 2}}}}}), "scale (0.5, 2)"},
		{img(&stokerv1.PipelineOutput{Ops: []*stokerv1.ImageOp{{Op: &stokerv1.ImageOp_Normalize{Normalize: &stokerv1.Normalize{Mean: []float32{0, 0}, Std: []float32{1, 1}}}}, cropOp(4, 4)}}), "2 means and 2 stds for 3 channels"},
		{&stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "x", Field: "cls", Decode: "int"}, {Name: "x", Field: "txt", Decode: "text"}}}, `tensor name "x" is used twice`},
		{&stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "x", Field: "cls", Decode: "int", Dtype: "float32"}}}, "an int is int64 or int32"},
		{&stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "x", Field: "cls", Decode: "int", Layout: "CHW"}}}, "are for images"},
		{&stokerv1.Pipeline{OnError: "skip", Outputs: []*stokerv1.PipelineOutput{{Name: "x", Field: "cls", Decode: "int"}}}, `on_error "skip"`},
	} {
		_, err := Compile(c.spec)
		if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an ErrSpec saying %q, got %v", c.want, err)
		}
	}
}

// pngBomb is a valid PNG header of w x h RGB pixels with a few bytes of
// image data: tiny, and w·h·4 bytes once decoded.
func pngBomb(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(b, typ...)
		b = append(b, data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", []byte{0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1})...)
	return append(out, chunk("IEND", nil)...)
}

func TestBadInput(t *testing.T) {
	pool := newTestPool(t, Config{Workers: 2, MemoryBytes: 64 << 20})
	p := compile(t, imagenet(1))
	good := photos(t, 0)[0]
	with := func(key string, fields ...Field) []Input {
		return []Input{good, {Key: key, Object: "s3://b/train-000007.tar", Position: 41, Fields: fields}}
	}
	cls := Field{"cls", []byte("1")}
	photo := testdata(t, "photo.jpg")
	for _, c := range []struct {
		name   string
		inputs []Input
		kind   error
		says   string
	}{
		{"truncated JPEG", with("cut", Field{"jpg", photo[:len(photo)/2]}, cls), ErrDecode, "JPEG"},
		{"not an image", with("junk", Field{"jpg", []byte("<html>not found</html>")}, cls), ErrDecode, "not a JPEG, PNG or WebP"},
		{"corrupt header", with("hdr", Field{"jpg", append([]byte{0xff, 0xd8, 0xff, 0xc0, 0, 3}, make([]byte, 40)...)}, cls), ErrDecode, "JPEG"},
		{"PNG bomb", with("bomb", Field{"png", pngBomb(100_000, 100_000)}, cls), ErrTooLarge, "over the limit of 89478485"},
		{"PNG over the memory budget", with("big", Field{"png", pngBomb(9000, 9000)}, cls), ErrTooLarge, "over the pool's"},
		{"missing field", with("nolabel", Field{"jpg", photo}), ErrMissingField, `none of ["cls"]`},
		{"bad label", with("lab", Field{"jpg", photo}, Field{"cls", []byte("seven")}), ErrDecode, `"seven" is not a decimal integer`},
		{"image smaller than its crop", []Input{{Key: "tiny", Object: "o", Fields: []Field{{"jpg", photo}, cls}}}, ErrShape, "center_crop 600x600"},
	} {
		pp := p
		if errors.Is(c.kind, ErrShape) {
			pp = compile(t, &stokerv1.Pipeline{Outputs: []*stokerv1.PipelineOutput{{Name: "image", Field: "jpg", Decode: "image", Ops: []*stokerv1.ImageOp{cropOp(600, 600)}}}})
		}
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := run(t, pp, pool, 0, c.inputs)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		var se *SampleError
		if !errors.As(err, &se) || !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: want a SampleError of kind %v saying %q, got %v", c.name, c.kind, c.says, err)
			continue
		}
		if se.Key != c.inputs[len(c.inputs)-1].Key || !strings.Contains(err.Error(), c.inputs[len(c.inputs)-1].Object) {
			t.Errorf("%s: the error does not name the sample and its shard: %v", c.name, err)
		}
		if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 80<<20 {
			t.Errorf("%s: allocated %d MiB for a bad sample", c.name, grew>>20)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// A masking pipeline zeroes the failed sample's rows, marks it invalid,
// keeps its error, and gives the others their tensors.
func TestMask(t *testing.T) {
	spec := imagenet(3)
	spec.OnError = "mask"
	p := compile(t, spec)
	pool := newTestPool(t, Config{Workers: 2})
	in := photos(t, 0, 1, 2)
	in[1].Fields[0].Data = in[1].Fields[0].Data[:200] // truncated
	in = append(in, Input{Key: "nolabel", Position: 3, Fields: []Field{{Name: "jpg", Data: testdata(t, "photo.jpg")}}})
	b, dst, err := run(t, p, pool, 0, in)
	if err != nil {
		t.Fatal(err)
	}
	_, valid := tensor(t, b, dst, "__valid__")
	if !bytes.Equal(valid, []byte{1, 0, 1, 0}) {
		t.Fatalf("__valid__ %v, want [1 0 1 0]", valid)
	}
	errs := b.Errors()
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], ErrDecode) || !errors.Is(errs[3], ErrMissingField) {
		t.Fatalf("errors %v", errs)
	}
	for _, name := range []string{"image", "label", "image.params"} {
		tt, px := tensor(t, b, dst, name)
		for _, i := range []int{1, 3} {
			if row := px[i*tt.RowBytes : (i+1)*tt.RowBytes]; bytes.Count(row, []byte{0}) != len(row) {
				t.Errorf("%s row %d is not zeros", name, i)
			}
		}
		if row := px[0:tt.RowBytes]; bytes.Count(row, []byte{0xa5}) > len(row)/4 {
			t.Errorf("%s row 0 was not written", name)
		}
	}
}
