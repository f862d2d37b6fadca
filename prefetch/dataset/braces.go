package dataset

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// MaxExpansion caps how many names ExpandBraces returns.
const MaxExpansion = 1 << 20

// ExpandBraces expands brace patterns the way the python webdataset
// library (braceexpand) does, for dataset URLs:
//
//   - {000000..000099}: a numeric range, both ends included; a bound with a
//     leading zero zero-pads every number to the wider bound's width;
//     descending ranges count down; {0..100..10} takes a step
//   - {a..e}: a range of single letters
//   - {train,val,x{1..2}}: a list of alternatives, which may nest
//   - several braces: the cartesian product, the leftmost varying slowest
//   - \{ \} \, \\: a literal brace, comma or backslash
//
// A pattern without braces expands to itself. An unbalanced brace, an
// empty brace or one with a single alternative ({a}) is ErrBadURL; more
// than MaxExpansion names is ErrTooLarge. Errors are *Error values with Op
// "expand". ExpandBraces is a pure function, safe for concurrent use.
func ExpandBraces(pattern string) ([]string, error) {
	p := braceParser{s: pattern}
	out, err := p.seq(false)
	if err == nil && p.i < len(p.s) {
		err = fmt.Errorf("unmatched } at byte %d", p.i)
	}
	if err != nil {
		kind := storage.ErrBadURL
		if errors.Is(err, errTooMany) {
			kind = storage.ErrTooLarge
		}
		return nil, &storage.Error{Op: "expand", Object: pattern, Kind: kind, Err: err}
	}
	return out, nil
}

var errTooMany = fmt.Errorf("expands to more than %d names", MaxExpansion)

// braceParser is a recursive-descent parser over s; i is the next byte.
type braceParser struct {
	s string
	i int
}

// seq expands a run of literals and braces up to the end of s, or, inside
// a brace (inBrace), up to an unescaped ',' or '}', which it leaves unread.
func (p *braceParser) seq(inBrace bool) ([]string, error) {
	out := []string{""}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			for k := range out {
				out[k] += lit.String()
			}
			lit.Reset()
		}
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, errors.New("pattern ends in a lone backslash")
			}
			lit.WriteByte(p.s[p.i+1])
			p.i += 2
		case c == '{':
			flush()
			alts, err := p.brace()
			if err != nil {
				return nil, err
			}
			if len(out)*len(alts) > MaxExpansion {
				return nil, errTooMany
			}
			next := make([]string, 0, len(out)*len(alts))
			for _, head := range out {
				for _, a := range alts {
					next = append(next, head+a)
				}
			}
			out = next
		case c == '}' || (c == ',' && inBrace):
			if !inBrace {
				return nil, fmt.Errorf("unmatched } at byte %d", p.i)
			}
			flush()
			return out, nil
		default:
			lit.WriteByte(c)
			p.i++
		}
	}
	if inBrace {
		return nil, errors.New("unclosed {")
	}
	flush()
	return out, nil
}

// brace expands the brace that starts at p.i and reads past its '}'.
func (p *braceParser) brace() ([]string, error) {
	start := p.i
	p.i++ // '{'
	if end := strings.IndexByte(p.s[p.i:], '}'); end >= 0 {
		if r, ok, err := expandRange(p.s[p.i : p.i+end]); ok || err != nil {
			if err != nil {
				return nil, fmt.Errorf("brace at byte %d: %w", start, err)
			}
			p.i += end + 1
			return r, nil
		}
	}
	var alts []string
	parts := 0
	for {
		part, err := p.seq(true)
		if err != nil {
			return nil, err
		}
		parts++
		alts = append(alts, part...)
		if len(alts) > MaxExpansion {
			return nil, errTooMany
		}
		if p.s[p.i] == '}' {
			p.i++
			break
		}
		p.i++ // ','
	}
	if parts < 2 {
		return nil, fmt.Errorf("brace at byte %d has %s: want {a,b} or {0..9} (escape a literal brace as \\{)",
			start, map[bool]string{true: "nothing in it", false: "a single alternative"}[p.i == start+2])
	}
	return alts, nil
}

// expandRange expands the inside of a range brace: "lo..hi" or
// "lo..hi..step" with decimal or single-letter bounds. ok is false when
// body is not shaped as a range at all.
func expandRange(body string) (out []string, ok bool, err error) {
	f := strings.Split(body, "..")
	if len(f) != 2 && len(f) != 3 {
		return nil, false, nil
	}
	step := int64(1)
	if len(f) == 3 {
		if !isDigits(f[2]) {
			return nil, false, nil
		}
		step, err = strconv.ParseInt(f[2], 10, 64)
		if err != nil || step == 0 {
			return nil, true, fmt.Errorf("bad step %q", f[2])
		}
	}
	lo, hi := f[0], f[1]
	switch {
	case isDigits(lo) && isDigits(hi):
		a, err1 := strconv.ParseInt(lo, 10, 64)
		b, err2 := strconv.ParseInt(hi, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, true, fmt.Errorf("range bound too large in %q", body)
		}
		width := 0
		if (len(lo) > 1 && lo[0] == '0') || (len(hi) > 1 && hi[0] == '0') {
			width = max(len(lo), len(hi))
		}
		return numberRange(a, b, step, width)
	case len(lo) == 1 && len(hi) == 1 && isLetter(lo[0]) && isLetter(hi[0]):
		r, _, err := numberRange(int64(lo[0]), int64(hi[0]), step, 0)
		if err != nil {
			return nil, true, err
		}
		for k := range r {
			n, _ := strconv.Atoi(r[k])
			r[k] = string(rune(n))
		}
		return r, true, nil
	}
	return nil, false, nil
}

// numberRange lists a..b by step (counting down when b < a), each number
// zero-padded to width.
func numberRange(a, b, step int64, width int) ([]string, bool, error) {
	span := b - a
	if span < 0 {
		span, step = -span, -step
	}
	if span/max(step, -step) >= MaxExpansion {
		return nil, true, errTooMany
	}
	n := span/max(step, -step) + 1
	out := make([]string, n)
	for k := range n {
		s := strconv.FormatInt(a+k*step, 10)
		if len(s) < width {
			s = strings.Repeat("0", width-len(s)) + s
		}
		out[k] = s
	}
	return out, true, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
