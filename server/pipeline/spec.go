package pipeline

import (
	"fmt"
	"math"
	"strings"

	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// kind is what an output decodes its field as.
type kind uint8

const (
	kindImage kind = iota // JPEG, PNG or WebP, told by the bytes
	kindJPEG
	kindPNG
	kindWebP
	kindNPY
	kindJSON
	kindInt
	kindText
)

var kindNames = map[string]kind{
	"image": kindImage, "jpeg": kindJPEG, "png": kindPNG, "webp": kindWebP,
	"npy": kindNPY, "json": kindJSON, "int": kindInt, "text": kindText,
}

func (k kind) image() bool { return k <= kindWebP }

// Limits on what a request may ask for: they keep every size computed
// from them far from overflowing, and one sample's output bounded.
const (
	maxOutputs     = 64
	maxSide        = 1 << 14 // pixels on a side of an output image
	maxSampleBytes = 64 << 20
	maxRank        = 8
	maxFieldName   = 256
)

// Pipeline is a compiled, checked pipeline: safe for concurrent use by
// any number of batches.
type Pipeline struct {
	seed    uint64
	outputs []*output
	mask    bool // on_error "mask"
}

// output is one tensor of the batch.
type output struct {
	name   string
	fields []string // alternatives, the first present is read
	kind   kind
	dtype  dtype // dtNone: npy keeps the file's type
	shape  []int // npy, json: declared shape (fixed), or nil
	fixed  bool  // shape was declared
	img    *imageSpec
}

// imageSpec is an image output's ops, checked and in their fused form.
type imageSpec struct {
	channels   int // 1 or 3
	chw        bool
	resize     *stokerv1.Resize
	rrc        *stokerv1.RandomResizedCrop // first op when set
	rrcOp      int                         // its index among the ops (the generator's key)
	cropH      int                         // center crop, 0 when none
	cropW      int
	flip       float64 // probability, 0 when no flip op
	flipOp     int
	norm       bool
	mean, std  [3]float32
	outH, outW int
	params     bool
	fullRes    bool
	luts       *luts // pixel to output value, for float outputs
}

// Compile checks a request's pipeline and makes it ready to run. The
// error (ErrSpec) names the output and the op at fault.
func Compile(spec *stokerv1.Pipeline) (*Pipeline, error) {
	p := &Pipeline{seed: spec.GetSeed()}
	switch spec.GetOnError() {
	case "", "fail":
	case "mask":
		p.mask = true
	default:
		return nil, specError("on_error %q: want \"fail\" or \"mask\"", spec.GetOnError())
	}
	outs := spec.GetOutputs()
	if len(outs) == 0 {
		return nil, specError("no outputs")
	}
	if len(outs) > maxOutputs {
		return nil, specError("%d outputs: at most %d", len(outs), maxOutputs)
	}
	names := map[string]bool{}
	for i, o := range outs {
		out, err := compileOutput(o)
		if err != nil {
			return nil, specError("output %d (%q): %v", i, o.GetName(), err)
		}
		for _, n := range out.tensorNames() {
			if names[n] {
				return nil, specError("output %d: tensor name %q is used twice", i, n)
			}
			names[n] = true
		}
		p.outputs = append(p.outputs, out)
	}
	return p, nil
}

// tensorNames are the tensors an output makes.
func (o *output) tensorNames() []string {
	if o.img != nil && o.img.params {
		return []string{o.name, o.name + ".params"}
	}
	return []string{o.name}
}

func compileOutput(o *stokerv1.PipelineOutput) (*output, error) {
	out := &output{name: o.GetName()}
	switch {
	case out.name == "":
		return nil, errorf("name is empty")
	case strings.HasPrefix(out.name, "__"):
		return nil, errorf("name must not start with \"__\"")
	case len(out.name) > maxFieldName:
		return nil, errorf("name is longer than %d bytes", maxFieldName)
	}
	for _, f := range strings.Split(o.GetField(), ";") {
		if f = strings.TrimSpace(f); f != "" {
			out.fields = append(out.fields, f)
		}
	}
	if len(out.fields) == 0 {
		return nil, errorf("field is empty")
	}
	k, ok := kindNames[o.GetDecode()]
	if !ok {
		return nil, errorf("decode %q: want image, jpeg, png, webp, npy, json, int or text", o.GetDecode())
	}
	out.kind = k
	if !k.image() {
		if len(o.GetOps()) > 0 || o.GetLayout() != "" || o.GetChannels() != 0 || o.GetParams() || o.GetFullResolution() {
			return nil, errorf("ops, layout, channels, params and full_resolution are for images, not decode %q", o.GetDecode())
		}
	}
	if o.GetShape() != nil && k != kindNPY && k != kindJSON {
		return nil, errorf("shape is for npy and json, not decode %q", o.GetDecode())
	}
	dt, ok := parseDType(o.GetDtype())
	if !ok {
		return nil, errorf("dtype %q is unknown", o.GetDtype())
	}
	switch k {
	case kindInt:
		switch dt {
		case dtNone:
			dt = dtInt64
		case dtInt64, dtInt32:
		default:
			return nil, errorf("dtype %q: an int is int64 or int32", dt)
		}
	case kindText:
		if dt != dtNone && dt != dtString {
			return nil, errorf("dtype %q: text is string", dt)
		}
		dt = dtString
	case kindNPY, kindJSON:
		if dt == dtString {
			return nil, errorf("dtype string: %s values are numbers", o.GetDecode())
		}
		if dt == dtNone && k == kindJSON {
			dt = dtFloat32
		}
		if s := o.GetShape(); s != nil {
			if len(s.GetDims()) > maxRank {
				return nil, errorf("shape has %d dimensions: at most %d", len(s.GetDims()), maxRank)
			}
			n := uint64(1)
			for _, d := range s.GetDims() {
				if d > maxSampleBytes || n*d > maxSampleBytes {
					return nil, errorf("shape %v: over %d elements", s.GetDims(), maxSampleBytes)
				}
				n *= d
				out.shape = append(out.shape, int(d))
			}
			out.fixed = true
		}
	}
	out.dtype = dt
	if k.image() {
		img, err := compileImage(o, dt)
		if err != nil {
			return nil, err
		}
		out.img = img
		out.dtype = dtUint8
		if img.norm {
			out.dtype = dtFloat32
		}
		if dt != dtNone {
			out.dtype = dt
		}
	}
	return out, nil
}

// errorf is a cause inside a spec error (Compile adds the kind and the output).
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// compileImage checks an image output's ops: [resize | random_resized_crop]
// [center_crop], then horizontal_flip and normalize in any order.
func compileImage(o *stokerv1.PipelineOutput, dt dtype) (*imageSpec, error) {
	img := &imageSpec{channels: 3, params: o.GetParams(), fullRes: o.GetFullResolution()}
	switch o.GetChannels() {
	case 0, 3:
	case 1:
		img.channels = 1
	default:
		return nil, errorf("channels %d: want 1 or 3", o.GetChannels())
	}
	switch o.GetLayout() {
	case "", "HWC":
	case "CHW":
		img.chw = true
	default:
		return nil, errorf("layout %q: want HWC or CHW", o.GetLayout())
	}
	stage := 0 // 1: resized or rrc, 2: cropped, 3: flip or normalize seen
	for i, op := range o.GetOps() {
		at := func(format string, args ...any) error {
			return errorf("op %d: %s", i, fmt.Sprintf(format, args...))
		}
		switch v := op.GetOp().(type) {
		case *stokerv1.ImageOp_Resize:
			r := v.Resize
			if stage >= 1 {
				return nil, at("resize must come first (one resize or random_resized_crop, then a crop)")
			}
			switch {
			case r.GetShorter() > 0 && r.GetHeight() == 0 && r.GetWidth() == 0:
				if r.GetShorter() > maxSide {
					return nil, at("resize shorter %d: at most %d", r.GetShorter(), maxSide)
				}
			case r.GetShorter() == 0 && r.GetHeight() > 0 && r.GetWidth() > 0:
				if r.GetHeight() > maxSide || r.GetWidth() > maxSide {
					return nil, at("resize %dx%d: at most %d on a side", r.GetHeight(), r.GetWidth(), maxSide)
				}
				img.outH, img.outW = int(r.GetHeight()), int(r.GetWidth())
			default:
				return nil, at("resize: give shorter, or height and width")
			}
			img.resize, stage = r, 1
		case *stokerv1.ImageOp_RandomResizedCrop:
			r := v.RandomResizedCrop
			if stage >= 1 {
				return nil, at("random_resized_crop must be the first op (it crops the decoded image)")
			}
			if err := checkRRC(r); err != nil {
				return nil, at("random_resized_crop: %v", err)
			}
			img.rrc, img.rrcOp, stage = r, i, 1
			img.outH, img.outW = int(r.GetHeight()), int(r.GetWidth())
		case *stokerv1.ImageOp_CenterCrop:
			c := v.CenterCrop
			if stage >= 2 {
				return nil, at("center_crop: one crop, before flip and normalize")
			}
			if c.GetHeight() == 0 || c.GetWidth() == 0 || c.GetHeight() > maxSide || c.GetWidth() > maxSide {
				return nil, at("center_crop %dx%d: each side in [1, %d]", c.GetHeight(), c.GetWidth(), maxSide)
			}
			img.cropH, img.cropW, stage = int(c.GetHeight()), int(c.GetWidth()), 2
			img.outH, img.outW = img.cropH, img.cropW
		case *stokerv1.ImageOp_HorizontalFlip:
			p := 0.5
			if v.HorizontalFlip.P != nil {
				p = v.HorizontalFlip.GetP()
			}
			if !(p >= 0 && p <= 1) {
				return nil, at("horizontal_flip p %v: want [0, 1]", p)
			}
			if img.flip > 0 || img.flipOp > 0 {
				return nil, at("horizontal_flip twice")
			}
			img.flip, img.flipOp, stage = p, i, 3
		case *stokerv1.ImageOp_Normalize:
			if img.norm {
				return nil, at("normalize twice")
			}
			if err := img.setNormalize(v.Normalize); err != nil {
				return nil, at("normalize: %v", err)
			}
			stage = 3
		default:
			return nil, at("unknown op (empty, or from a newer client)")
		}
	}
	if img.outH == 0 {
		return nil, errorf("the image's size is not fixed: end with center_crop, random_resized_crop or resize to height and width")
	}
	switch dt {
	case dtNone, dtUint8, dtFloat16, dtFloat32:
	default:
		return nil, errorf("dtype %q: an image is uint8, float16 or float32", dt)
	}
	if img.norm && dt == dtUint8 {
		return nil, errorf("dtype uint8 cannot hold normalized values: use float32 or float16")
	}
	if n := img.outH * img.outW * img.channels * 4; n > maxSampleBytes {
		return nil, errorf("%dx%dx%d is over %d bytes per sample", img.outH, img.outW, img.channels, maxSampleBytes)
	}
	img.luts = newLUTs(img)
	return img, nil
}

func checkRRC(r *stokerv1.RandomResizedCrop) error {
	if r.GetHeight() == 0 || r.GetWidth() == 0 || r.GetHeight() > maxSide || r.GetWidth() > maxSide {
		return errorf("size %dx%d: each side in [1, %d]", r.GetHeight(), r.GetWidth(), maxSide)
	}
	s0, s1, r0, r1 := rrcBounds(r)
	if !(s0 > 0 && s0 <= s1 && s1 <= 1) {
		return errorf("scale (%v, %v): want 0 < min <= max <= 1", s0, s1)
	}
	if !(r0 > 0 && r0 <= r1 && !math.IsInf(r1, 0)) {
		return errorf("ratio (%v, %v): want 0 < min <= max", r0, r1)
	}
	return nil
}

// rrcBounds are r's scale and ratio, zeros taken as torchvision's
// defaults.
func rrcBounds(r *stokerv1.RandomResizedCrop) (s0, s1, r0, r1 float64) {
	s0, s1, r0, r1 = r.GetScaleMin(), r.GetScaleMax(), r.GetRatioMin(), r.GetRatioMax()
	if s0 == 0 && s1 == 0 {
		s0, s1 = 0.08, 1
	}
	if r0 == 0 && r1 == 0 {
		r0, r1 = 3.0/4, 4.0/3
	}
	return
}

func (img *imageSpec) setNormalize(n *stokerv1.Normalize) error {
	mean, std := n.GetMean(), n.GetStd()
	if len(mean) != len(std) || (len(mean) != 1 && len(mean) != img.channels) {
		return errorf("%d means and %d stds for %d channels: give one or one per channel", len(mean), len(std), img.channels)
	}
	for c := range img.channels {
		m, s := mean[min(c, len(mean)-1)], std[min(c, len(std)-1)]
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) || math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || s == 0 {
			return errorf("mean %v, std %v: want finite numbers, std not 0", m, s)
		}
		img.mean[c], img.std[c] = m, s
	}
	img.norm = true
	return nil
}
