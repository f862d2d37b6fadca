package pipeline

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// npyArray is a parsed .npy file: its type, shape and the bytes of its
// values (little-endian, C order).
type npyArray struct {
	dtype dtype
	shape []int
	data  []byte
}

const maxNPYHeader = 1 << 16

// parseNPY reads a .npy file (format 1, 2 or 3): little-endian or
// byte-sized numbers and bools, C order (or rank <= 1), no more than
// maxSampleBytes of values, which must all be there.
func parseNPY(b []byte) (npyArray, error) {
	var a npyArray
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return a, kindError(ErrDecode, "npy: no magic string (%d bytes)", len(b))
	}
	major := b[6]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return a, kindError(ErrDecode, "npy: truncated header length")
		}
		n := binary.LittleEndian.Uint32(b[8:12])
		if n > maxNPYHeader {
			return a, kindError(ErrDecode, "npy: header of %d bytes (at most %d)", n, maxNPYHeader)
		}
		hlen, start = int(n), 12
	default:
		return a, kindError(ErrDecode, "npy: format version %d", major)
	}
	if start+hlen > len(b) {
		return a, kindError(ErrDecode, "npy: header of %d bytes in a file of %d", hlen, len(b))
	}
	h, err := parseNPYHeader(string(b[start : start+hlen]))
	if err != nil {
		return a, kindError(ErrDecode, "npy header: %v", err)
	}
	dt, err := npyDType(h.descr)
	if err != nil {
		return a, kindError(ErrDecode, "npy: %v", err)
	}
	if h.fortran && len(h.shape) > 1 {
		return a, kindError(ErrDecode, "npy: Fortran order (save with np.ascontiguousarray)")
	}
	if len(h.shape) > maxRank {
		return a, kindError(ErrDecode, "npy: %d dimensions (at most %d)", len(h.shape), maxRank)
	}
	n := 1
	for _, d := range h.shape {
		if d < 0 || d > maxSampleBytes || n*d > maxSampleBytes/dt.size() {
			return a, kindError(ErrTooLarge, "npy: shape %v is over %d bytes", h.shape, maxSampleBytes)
		}
		n *= d
	}
	body := b[start+hlen:]
	if want := n * dt.size(); len(body) < want {
		return a, kindError(ErrDecode, "npy: %d bytes of values for shape %v of %s (want %d)", len(body), h.shape, dt, want)
	}
	return npyArray{dtype: dt, shape: h.shape, data: body[:n*dt.size()]}, nil
}

type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// parseNPYHeader reads the Python dict literal numpy writes:
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
func parseNPYHeader(s string) (npyHeader, error) {
	var h npyHeader
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return h, errorf("not a dict")
	}
	s = s[1 : len(s)-1]
	seen := map[string]bool{}
	for strings.TrimSpace(s) != "" {
		s = strings.TrimSpace(s)
		key, rest, ok := quoted(s)
		if !ok {
			return h, errorf("bad key at %q", clip(s))
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return h, errorf("no ':' after %q", key)
		}
		rest = strings.TrimSpace(rest[1:])
		switch key {
		case "descr":
			h.descr, rest, ok = quoted(rest)
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "True"):
				h.fortran, rest = true, rest[4:]
			case strings.HasPrefix(rest, "False"):
				rest = rest[5:]
			default:
				ok = false
			}
		case "shape":
			h.shape, rest, ok = tuple(rest)
		default:
			return h, errorf("unknown key %q", key)
		}
		if !ok {
			return h, errorf("bad value of %q at %q", key, clip(rest))
		}
		seen[key] = true
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, ",") {
			rest = rest[1:]
		} else if strings.TrimSpace(rest) != "" {
			return h, errorf("no ',' at %q", clip(rest))
		}
		s = rest
	}
	if !seen["descr"] || !seen["shape"] {
		return h, errorf("descr or shape missing")
	}
	return h, nil
}

func clip(s string) string { return s[:min(len(s), 20)] }

// quoted reads a '...' or "..." string with no escapes.
func quoted(s string) (string, string, bool) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') {
		return "", s, false
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", s, false
	}
	return s[1 : 1+end], s[end+2:], true
}

// tuple reads (), (n,) or (a, b, ...) of non-negative integers.
func tuple(s string) ([]int, string, bool) {
	if !strings.HasPrefix(s, "(") {
		return nil, s, false
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return nil, s, false
	}
	shape := []int{}
	for _, f := range strings.Split(s[1:end], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		f = strings.TrimSuffix(f, "L") // Python 2's longs
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, s, false
		}
		shape = append(shape, n)
	}
	return shape, s[end+1:], true
}

// npyDType maps a numpy descr to a dtype: little-endian ('<') or
// byte-sized ('|'), or '=' (native, taken as little-endian).
func npyDType(descr string) (dtype, error) {
	if len(descr) < 2 {
		return dtNone, errorf("descr %q", descr)
	}
	order, code := descr[0], descr[1:]
	if order == '>' {
		return dtNone, errorf("descr %q is big-endian (save little-endian)", descr)
	}
	if order != '<' && order != '|' && order != '=' {
		return dtNone, errorf("descr %q", descr)
	}
	names := map[string]dtype{
		"b1": dtBool, "u1": dtUint8, "i1": dtInt8, "u2": dtUint16, "i2": dtInt16, "u4": dtUint32, "i4": dtInt32,
		"u8": dtUint64, "i8": dtInt64, "f2": dtFloat16, "f4": dtFloat32, "f8": dtFloat64,
	}
	dt, ok := names[code]
	if !ok {
		return dtNone, errorf("descr %q: want a number or bool type", descr)
	}
	return dt, nil
}
