package wds

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds the naming rules of the Python webdataset library
// (webdataset/tariterators.py), reproduced exactly so that a shard indexed
// here yields the samples, keys and field names a webdataset reader yields.

// reservedFields are the keys webdataset's group_by_keys puts in every sample
// dict before adding fields; a member whose field name equals one of them
// hits webdataset's duplicate check and raises, so it is an error here too.
var reservedFields = [...]string{"__key__", "__url__"}

// isMeta reports whether webdataset's tar_file_iterator skips the member name
// as metadata. It combines the library's two tests:
//
//   - a top-level name (no '/') that starts and ends with "__", and
//   - re.match(r"__[^/]*__($|/)", name), where Python's $ also matches before
//     a final newline.
func isMeta(name string) bool {
	if !strings.HasPrefix(name, "__") {
		return false
	}
	slash := strings.IndexByte(name, '/')
	if slash < 0 && strings.HasSuffix(name, "__") {
		return true // first test; also covers the regexp ending at $
	}
	if slash >= 0 { // the regexp ending at "/": the first segment is __X__
		seg := name[:slash]
		return len(seg) >= 4 && strings.HasSuffix(seg, "__")
	}
	// The regexp's $ before a final newline: "__X__\n".
	return len(name) >= 5 && strings.HasSuffix(name, "__\n")
}

// splitKey splits a member name into sample key and field name as
// webdataset's base_plus_ext does with re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$").
// ok is false when the regexp does not match (webdataset skips the member).
//
// Whenever the regexp matches, the split is at D, the first dot after the
// last '/'. It matches if D exists and the prefix alternative can end at a
// slash j (one before the first newline, since '.' does not match "\n") with
// no dot between j and D and at least one byte in between, or, failing that,
// the empty alternative works: no dot before D and D > 0. Searching like this
// is linear, where trying every slash would be quadratic in the name length.
func splitKey(name string) (key, field string, ok bool) {
	last := strings.LastIndexByte(name, '/')
	d := strings.IndexByte(name[last+1:], '.')
	if d < 0 {
		return "", "", false
	}
	d += last + 1
	dotBefore := strings.LastIndexByte(name[:last+1], '.') // -1 if none
	limit := d - 1                                         // j < d-1: at least one non-dot byte after the slash
	if nl := strings.IndexByte(name, '\n'); nl >= 0 && nl < limit {
		limit = nl
	}
	j := -1
	if limit > 0 {
		j = strings.LastIndexByte(name[:limit], '/')
	}
	if (j >= 0 && j > dotBefore) || (dotBefore < 0 && d > 0) {
		return name[:d], name[d+1:], true
	}
	return "", "", false
}

// lowerField lowercases a field name the way Python's str.lower() does, as
// webdataset's group_by_keys does by default: full Unicode case mapping,
// including U+0130 (İ → "i̇") and the final-sigma rule, with bytes that are
// not valid UTF-8 passed through unchanged (Python decodes tar names with
// surrogateescape, and lower() leaves those surrogates alone).
func lowerField(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return lowerUnicode(s)
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if !upper {
		return s
	}
	return strings.ToLower(s)
}

func lowerUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteByte(s[i]) // not UTF-8: passed through
		case r == '\u0130':
			b.WriteString("i\u0307")
		case r == '\u03a3':
			if finalSigma(s, i, i+n) {
				b.WriteRune('\u03c2')
			} else {
				b.WriteRune('\u03c3')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
		i += n
	}
	return b.String()
}

// finalSigma reports whether the capital sigma at s[i:j] is in the
// Final_Sigma context as CPython's handle_capital_sigma decides it: a cased
// letter before it and none after it, skipping case-ignorable runes.
func finalSigma(s string, i, j int) bool {
	before := false
	for k := i; k > 0; {
		r, n := utf8.DecodeLastRuneInString(s[:k])
		k -= n
		if !caseIgnorable(r, n) {
			before = cased(r, n)
			break
		}
	}
	if !before {
		return false
	}
	for k := j; k < len(s); {
		r, n := utf8.DecodeRuneInString(s[k:])
		k += n
		if !caseIgnorable(r, n) {
			return !cased(r, n)
		}
	}
	return true
}

// cased is Unicode's Cased property (Lowercase, Uppercase or Lt).
func cased(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return false
	}
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// caseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk, and
// Word_Break MidLetter, MidNumLet or Single_Quote.
func caseIgnorable(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return false
	}
	switch r {
	case '\'', '.', ':', '\u00b7', '\u0387', '\u055f', '\u05f4', '\u2018', '\u2019',
		'\u2024', '\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
