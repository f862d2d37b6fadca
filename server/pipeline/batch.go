package pipeline

import (
	"errors"
	"slices"
)

// Input is one sample of a step.
type Input struct {
	Key      string
	Object   string // its shard's object, named in errors
	Position int    // its position in the epoch's order
	Fields   []Field
	// Deferred says the fields' Data is not here yet (their names are):
	// Prepare checks the fields are there but reads none, and the
	// sample's rows come from PutRows, or from Fill then a run. Only for
	// a pipeline whose rows do not depend on the data (FixedRows).
	Deferred bool
}

// Field is one field of a sample: its name after the key ("jpg").
type Field struct {
	Name string
	Data []byte
}

// Tensor is one tensor of a batch and its place in the batch's buffer:
// Len bytes at Offset, rows of RowBytes each, or for a string tensor rows
// of Lengths[i] bytes one after another.
type Tensor struct {
	Name     string
	DType    string
	Shape    []int // rows first
	Offset   int
	Len      int
	RowBytes int
	Lengths  []int // string tensors
}

// RowRange is the bytes of rows [lo, hi) of t, relative to t.Offset.
func (t *Tensor) RowRange(lo, hi int) (off, n int) {
	if t.Lengths == nil {
		return lo * t.RowBytes, (hi - lo) * t.RowBytes
	}
	for _, l := range t.Lengths[:lo] {
		off += l
	}
	for _, l := range t.Lengths[lo:hi] {
		n += l
	}
	return off, n
}

// tensorAlign aligns every tensor in a batch's buffer (for SIMD loads
// and any element type).
const tensorAlign = 64

// Batch is one step's samples on their way through a pipeline: Prepare
// reads what sizes the tensors (headers, numbers, text), Pool.Run does
// the rest into the caller's buffer. Not safe for concurrent use.
type Batch struct {
	p       *Pipeline
	epoch   uint64
	inputs  []Input
	tensors []Tensor
	size    int
	errs    []error    // per sample: the error that masked it
	data    [][][]byte // [output][sample]: the field read
	fields  [][]string // [output][sample]: its name
	ints    [][]int64  // int outputs
	jsons   [][]jsonValue
	npys    [][]npyArray
	first   []int // per output: tensor index
	valid   int   // tensor index of __valid__, -1 when not masking
}

// Prepare finds each output's field in each sample, reads what the
// tensors' shapes depend on, and lays the tensors out. A sample that
// fails is a *SampleError (naming it and the output), returned at once,
// or in a masking pipeline noted in Errors.
func (p *Pipeline) Prepare(epoch uint64, inputs []Input) (*Batch, error) {
	n := len(inputs)
	b := &Batch{p: p, epoch: epoch, inputs: inputs, errs: make([]error, n), valid: -1}
	b.data = make([][][]byte, len(p.outputs))
	b.fields = make([][]string, len(p.outputs))
	b.ints = make([][]int64, len(p.outputs))
	b.jsons = make([][]jsonValue, len(p.outputs))
	b.npys = make([][]npyArray, len(p.outputs))
	for oi, o := range p.outputs {
		b.data[oi] = make([][]byte, n)
		b.fields[oi] = make([]string, n)
		switch o.kind {
		case kindInt:
			b.ints[oi] = make([]int64, n)
		case kindJSON:
			b.jsons[oi] = make([]jsonValue, n)
		case kindNPY:
			b.npys[oi] = make([]npyArray, n)
		}
		for i := range inputs {
			if b.errs[i] != nil {
				continue
			}
			if err := b.read(oi, o, i); err != nil {
				if !p.mask {
					return nil, err
				}
				b.errs[i] = err
			}
		}
	}
	if err := b.layout(); err != nil {
		return nil, err
	}
	return b, nil
}

// read finds output o's field in sample i and reads what it needs now.
func (b *Batch) read(oi int, o *output, i int) error {
	in := &b.inputs[i]
	fail := func(field string, err error) error {
		return &SampleError{Key: in.Key, Object: in.Object, Position: in.Position, Output: o.name, Field: field, Err: err}
	}
	if in.Deferred && !b.p.FixedRows() {
		return fail("", errorf("pipeline: sample %q deferred in a pipeline whose rows depend on the data", in.Key))
	}
	var data []byte
	name := ""
	for _, want := range o.fields {
		for _, f := range in.Fields {
			if f.Name == want {
				data, name = f.Data, f.Name
				break
			}
		}
		if name != "" {
			break
		}
	}
	if name == "" {
		have := make([]string, len(in.Fields))
		for k, f := range in.Fields {
			have[k] = f.Name
		}
		return fail("", kindError(ErrMissingField, "none of %q (the sample has %q)", o.fields, have))
	}
	b.data[oi][i], b.fields[oi][i] = data, name
	if in.Deferred {
		return nil
	}
	var err error
	switch o.kind {
	case kindInt:
		b.ints[oi][i], err = parseInt(data, o.dtype)
	case kindText:
		if len(data) > maxSampleBytes {
			err = kindError(ErrTooLarge, "text of %d bytes (at most %d)", len(data), maxSampleBytes)
		} else {
			err = checkText(data)
		}
	case kindJSON:
		if len(data) > maxSampleBytes {
			err = kindError(ErrTooLarge, "json of %d bytes (at most %d)", len(data), maxSampleBytes)
			break
		}
		b.jsons[oi][i], err = parseJSON(data)
		if err == nil {
			err = o.checkShape(b.jsons[oi][i].shape)
		}
	case kindNPY:
		b.npys[oi][i], err = parseNPY(data)
		if err == nil {
			err = o.checkShape(b.npys[oi][i].shape)
		}
	}
	if err != nil {
		return fail(name, err)
	}
	return nil
}

// checkShape checks a value's shape against the declared one.
func (o *output) checkShape(shape []int) error {
	if o.fixed && !slices.Equal(shape, o.shape) {
		return kindError(ErrShape, "shape %v, not the declared %v", shape, o.shape)
	}
	return nil
}

// layout sizes every tensor and places it in the buffer. Samples whose
// npy or json shape differs from the first good sample's fail (or are
// masked).
func (b *Batch) layout() error {
	n := len(b.inputs)
	off := 0
	add := func(t Tensor) {
		off = (off + tensorAlign - 1) / tensorAlign * tensorAlign
		t.Offset = off
		if t.Lengths == nil {
			t.Len = t.RowBytes * n
		}
		off += t.Len
		b.tensors = append(b.tensors, t)
	}
	b.first = make([]int, len(b.p.outputs))
	for oi, o := range b.p.outputs {
		b.first[oi] = len(b.tensors)
		switch o.kind {
		case kindInt:
			add(Tensor{Name: o.name, DType: o.dtype.String(), Shape: []int{n}, RowBytes: o.dtype.size()})
		case kindText:
			t := Tensor{Name: o.name, DType: "string", Shape: []int{n}, Lengths: make([]int, n)}
			for i, d := range b.data[oi] {
				if b.errs[i] == nil {
					t.Lengths[i] = len(d)
					t.Len += len(d)
				}
			}
			add(t)
		case kindJSON, kindNPY:
			dt, shape, err := b.valueShape(oi, o)
			if err != nil {
				return err
			}
			per := dt.size()
			for _, d := range shape {
				per *= d
			}
			add(Tensor{Name: o.name, DType: dt.String(), Shape: append([]int{n}, shape...), RowBytes: per})
		default:
			img := o.img
			shape := []int{n, img.outH, img.outW, img.channels}
			if img.chw {
				shape = []int{n, img.channels, img.outH, img.outW}
			}
			add(Tensor{Name: o.name, DType: o.dtype.String(), Shape: shape, RowBytes: img.outH * img.outW * img.channels * o.dtype.size()})
			if img.params {
				add(Tensor{Name: o.name + ".params", DType: "int32", Shape: []int{n, 5}, RowBytes: 20})
			}
		}
	}
	if b.p.mask {
		b.valid = len(b.tensors)
		add(Tensor{Name: "__valid__", DType: "uint8", Shape: []int{n}, RowBytes: 1})
	}
	b.size = off
	return nil
}

// valueShape is the element type and per-sample shape of an npy or json
// output: declared, or the first good sample's, which every other sample
// must match.
func (b *Batch) valueShape(oi int, o *output) (dtype, []int, error) {
	dt, shape, set := o.dtype, o.shape, o.fixed
	for i := range b.inputs {
		if b.errs[i] != nil {
			continue
		}
		var s []int
		var from dtype
		if o.kind == kindNPY {
			s, from = b.npys[oi][i].shape, b.npys[oi][i].dtype
		} else {
			s = b.jsons[oi][i].shape
		}
		if dt == dtNone {
			dt = from
		}
		if !set {
			shape, set = s, true
			continue
		}
		if !slices.Equal(s, shape) || (o.kind == kindNPY && o.dtype == dtNone && from != dt) {
			in := &b.inputs[i]
			err := &SampleError{Key: in.Key, Object: in.Object, Position: in.Position, Output: o.name, Field: b.fields[oi][i],
				Err: kindError(ErrShape, "%s %v, where the batch's first sample has %s %v (declare shape and dtype to fix them)", from, s, dt, shape)}
			if !b.p.mask {
				return dt, nil, err
			}
			b.errs[i] = err
		}
	}
	if dt == dtNone {
		dt = dtFloat32 // every sample failed: any type holds the zeros
	}
	return dt, shape, nil
}

// Size is the bytes of the buffer the batch's tensors need.
func (b *Batch) Size() int { return b.size }

// Tensors are the batch's tensors, in the pipeline's order (an image's
// params after it, __valid__ last).
func (b *Batch) Tensors() []Tensor { return b.tensors }

// Len is the number of samples (rows).
func (b *Batch) Len() int { return len(b.inputs) }

// Errors are the samples' errors in a masking pipeline (nil for the
// samples that made it), complete after Pool.Run.
func (b *Batch) Errors() []error { return b.errs }

// IsSampleError says whether err is about one sample's data (not the
// pipeline or the server).
func IsSampleError(err error) bool {
	var se *SampleError
	return errors.As(err, &se)
}

// RowBytes is the bytes of sample i's rows in all tensors.
func (b *Batch) RowBytes(i int) int {
	n := 0
	for ti := range b.tensors {
		_, ln := b.tensors[ti].RowRange(i, i+1)
		n += ln
	}
	return n
}

// Outputs are the batch's tensors but a masking pipeline's __valid__:
// those a sample's rows (SampleRows, PutRows) are of.
func (b *Batch) Outputs() []Tensor {
	if b.valid < 0 {
		return b.tensors
	}
	return slices.Delete(slices.Clone(b.tensors), b.valid, b.valid+1)
}

// SampleRows are sample i's rows of each of Outputs, in dst (the buffer
// the batch ran into): slices of it, not copies.
func (b *Batch) SampleRows(i int, dst []byte) [][]byte {
	rows := make([][]byte, 0, len(b.tensors))
	for ti := range b.tensors {
		if ti == b.valid {
			continue
		}
		t := &b.tensors[ti]
		off, n := t.RowRange(i, i+1)
		rows = append(rows, dst[t.Offset+off:t.Offset+off+n:t.Offset+off+n])
	}
	return rows
}

// PutRows writes sample i's rows of each of Outputs, computed elsewhere
// (another node ran the same pipeline on the same sample), into dst, and
// marks the sample valid. It writes nothing and returns false unless
// there is one row per output and each is the length the sample's rows
// have here, and the sample was not masked in Prepare.
func (b *Batch) PutRows(i int, rows [][]byte, dst []byte) bool {
	if i < 0 || i >= len(b.inputs) || b.errs[i] != nil || len(rows) != len(b.Outputs()) {
		return false
	}
	k := 0
	for ti := range b.tensors {
		if ti == b.valid {
			continue
		}
		t := &b.tensors[ti]
		if _, n := t.RowRange(i, i+1); n != len(rows[k]) {
			return false
		}
		k++
	}
	k = 0
	for ti := range b.tensors {
		t := &b.tensors[ti]
		off, _ := t.RowRange(i, i+1)
		if ti == b.valid {
			dst[t.Offset+i] = 1
			continue
		}
		copy(dst[t.Offset+off:], rows[k])
		k++
	}
	return true
}

// Masking is the pipeline with on_error "mask": a batch of it keeps going
// past a failed sample, each sample with its own error (a node
// preprocessing samples for another reports each one's fate).
func (p *Pipeline) Masking() *Pipeline {
	q := *p
	q.mask = true
	return &q
}

// Key is sample i's key.
func (b *Batch) Key(i int) string { return b.inputs[i].Key }

// FixedRows says whether every output's row size and layout are the
// pipeline's alone (images and ints), not the data's (text, json, npy):
// then a sample can be Deferred.
func (p *Pipeline) FixedRows() bool {
	for _, o := range p.outputs {
		if !o.kind.image() && o.kind != kindInt {
			return false
		}
	}
	return true
}

// Fill gives a Deferred sample its fields and reads them as Prepare
// would have; the sample is then run like any other (Pool.RunSamples).
// A sample that fails is a *SampleError, returned, or in a masking
// pipeline noted in Errors.
func (b *Batch) Fill(i int, fields []Field) error {
	in := &b.inputs[i]
	if !in.Deferred {
		return errorf("pipeline: sample %q filled, but it was not deferred", in.Key)
	}
	in.Fields, in.Deferred = fields, false
	for oi, o := range b.p.outputs {
		if err := b.read(oi, o, i); err != nil {
			if !b.p.mask {
				return err
			}
			b.errs[i] = err
			return nil
		}
	}
	return nil
}

// Deferred says whether sample i's fields are still to come (Fill).
func (b *Batch) Deferred(i int) bool { return b.inputs[i].Deferred }
