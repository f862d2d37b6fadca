package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseInt reads a WebDataset .cls: an ASCII decimal integer, blanks
// around it allowed.
func parseInt(b []byte, dt dtype) (int64, error) {
	s := strings.TrimSpace(string(b[:min(len(b), 64)]))
	if len(b) > 64 {
		return 0, kindError(ErrDecode, "int: %d bytes is not an integer", len(b))
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, kindError(ErrDecode, "int: %q is not a decimal integer", s)
	}
	if dt == dtInt32 && (v < math.MinInt32 || v > math.MaxInt32) {
		return 0, kindError(ErrDecode, "int: %d is out of int32's range", v)
	}
	return v, nil
}

// checkText checks that b is UTF-8.
func checkText(b []byte) error {
	if !utf8.Valid(b) {
		return kindError(ErrDecode, "text: not UTF-8")
	}
	return nil
}

// jsonValue is a JSON number or rectangular array of numbers: its shape
// and its numbers in C order.
type jsonValue struct {
	shape []int
	nums  []json.Number
}

// parseJSON reads a number or a rectangular array of them.
func parseJSON(b []byte) (jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonValue{}, kindError(ErrDecode, "json: %v", err)
	}
	var out jsonValue
	if err := out.walk(v, 0); err != nil {
		return jsonValue{}, kindError(ErrDecode, "json: %v", err)
	}
	return out, nil
}

// walk appends v's numbers, fixing the shape by the first element at
// each depth.
func (j *jsonValue) walk(v any, depth int) error {
	switch x := v.(type) {
	case json.Number:
		if depth != len(j.shape) {
			return errorf("a number where an array of %v was", j.shape[depth:])
		}
		j.nums = append(j.nums, x)
		return nil
	case []any:
		if depth > maxRank {
			return errorf("more than %d nested arrays", maxRank)
		}
		switch {
		case depth == len(j.shape) && len(j.nums) == 0:
			j.shape = append(j.shape, len(x))
		case depth >= len(j.shape):
			return errorf("an array where a number was")
		case j.shape[depth] != len(x):
			return errorf("arrays of %d and %d elements at depth %d (not rectangular)", j.shape[depth], len(x), depth)
		}
		for _, e := range x {
			if err := j.walk(e, depth+1); err != nil {
				return err
			}
		}
		if len(x) == 0 && depth+1 < len(j.shape) {
			return errorf("an empty array inside arrays")
		}
		return nil
	}
	return errorf("%T is not a number or an array", v)
}

// putNumber writes element i of a dt tensor from a JSON number.
func putNumber(dst []byte, i int, dt dtype, n json.Number) error {
	if dt.isFloat() {
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return kindError(ErrDecode, "json: %s: %v", n, err)
		}
		putFloat(dst, i, dt, f)
		return nil
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) {
			return kindError(ErrDecode, "json: %s is not an integer for %s", n, dt)
		}
		v = int64(f)
	}
	putInt(dst, i, dt, v)
	return nil
}

// putFloat writes element i of a float tensor.
func putFloat(dst []byte, i int, dt dtype, f float64) {
	switch dt {
	case dtFloat16:
		binary.LittleEndian.PutUint16(dst[2*i:], float16(float32(f)))
	case dtFloat32:
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(f)))
	case dtFloat64:
		binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(f))
	default:
		putInt(dst, i, dt, int64(f))
	}
}

// putInt writes element i of an integer or bool tensor (C's conversion:
// the low bytes; bool is v != 0).
func putInt(dst []byte, i int, dt dtype, v int64) {
	switch dt {
	case dtBool:
		dst[i] = 0
		if v != 0 {
			dst[i] = 1
		}
	case dtUint8, dtInt8:
		dst[i] = byte(v)
	case dtUint16, dtInt16:
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(v))
	case dtUint32, dtInt32:
		binary.LittleEndian.PutUint32(dst[4*i:], uint32(v))
	case dtUint64, dtInt64:
		binary.LittleEndian.PutUint64(dst[8*i:], uint64(v))
	default:
		putFloat(dst, i, dt, float64(v))
	}
}

// getNumber reads element i of a dt array as an int64 or a float64.
func getNumber(src []byte, i int, dt dtype) (int64, float64, bool) {
	switch dt {
	case dtBool, dtUint8:
		return int64(src[i]), 0, false
	case dtInt8:
		return int64(int8(src[i])), 0, false
	case dtUint16:
		return int64(binary.LittleEndian.Uint16(src[2*i:])), 0, false
	case dtInt16:
		return int64(int16(binary.LittleEndian.Uint16(src[2*i:]))), 0, false
	case dtUint32:
		return int64(binary.LittleEndian.Uint32(src[4*i:])), 0, false
	case dtInt32:
		return int64(int32(binary.LittleEndian.Uint32(src[4*i:]))), 0, false
	case dtUint64, dtInt64:
		return int64(binary.LittleEndian.Uint64(src[8*i:])), 0, false
	case dtFloat16:
		return 0, float64(halfToFloat(binary.LittleEndian.Uint16(src[2*i:]))), true
	case dtFloat32:
		return 0, float64(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))), true
	default:
		return 0, math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])), true
	}
}

// cast writes n elements of src (type from) into dst as type to: a copy
// when they are the same, else numpy's astype for these types (floats to
// integers truncate toward zero).
func cast(dst, src []byte, n int, from, to dtype) {
	if from == to {
		copy(dst, src[:n*from.size()])
		return
	}
	for i := range n {
		iv, fv, isFloat := getNumber(src, i, from)
		switch {
		case isFloat && to.isFloat():
			putFloat(dst, i, to, fv)
		case isFloat:
			if math.IsNaN(fv) || math.IsInf(fv, 0) {
				fv = 0
			}
			putInt(dst, i, to, int64(fv))
		case to.isFloat():
			if from == dtUint64 {
				putFloat(dst, i, to, float64(uint64(iv)))
			} else {
				putFloat(dst, i, to, float64(iv))
			}
		default:
			putInt(dst, i, to, iv)
		}
	}
}

// halfToFloat widens a half-precision value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalize
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}
