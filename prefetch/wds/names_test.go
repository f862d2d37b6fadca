package wds

import (
	"regexp"
	"strings"
	"testing"
)

// The webdataset regular expressions in Go's syntax, as oracles. Python's $
// also matches before a final newline; [^/]* swallows that newline anyway in
// baseRE, and metaRE spells it out.
var (
	baseRE = regexp.MustCompile(`^((?:.*/|)[^.]+)[.]([^/]*)\z`)
	metaRE = regexp.MustCompile(`^__[^/]*__(?:\z|\n\z|/)`)
)

func oracleSplit(name string) (key, field string, ok bool) {
	m := baseRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

func oracleMeta(name string) bool {
	top := !strings.Contains(name, "/") && strings.HasPrefix(name, "__") && strings.HasSuffix(name, "__")
	return top || metaRE.MatchString(name)
}

func TestSplitKey(t *testing.T) {
	tests := []struct {
		name, key, field string // key "" and field "-": skipped
	}{
		{"a/b/000123.seg.png", "a/b/000123", "seg.png"},
		{"000123.jpg", "000123", "jpg"},
		{"a.b/c.d", "a.b/c", "d"},
		{"a.b/c", "", "-"},            // no dot in the file name
		{"README", "", "-"},           // no dot at all
		{".hidden", "", "-"},          // nothing before the dot
		{"a/.hidden", "a/", "hidden"}, // [^.]+ may span the slash
		{"x/y/.h", "x/y/", "h"},
		{"a.b/.c", "", "-"},   // a dot before the last slash stops that
		{"a/b.c/.d", "", "-"}, // likewise
		{"a//.x", "a//", "x"},
		{"sample.", "sample", ""},
		{"a.b/", "", "-"}, // the field may not contain '/'
		{"a\nb/c.d", "a\nb/c", "d"},
		{"a/b\n/.c", "a/b\n/", "c"},
		{"a.x/b\n/.c", "a.x/b\n/", "c"},
		{"a.b\nx/y/.c", "", "-"}, // "." does not match "\n": .*/ cannot reach the slashes
		{"a.bx/y/.c", "a.bx/y/", "c"},
		{"k.JPG\n", "k", "JPG\n"},
	}
	for _, tc := range tests {
		key, field, ok := splitKey(tc.name)
		if !ok {
			key, field = "", "-"
		}
		if key != tc.key || field != tc.field {
			t.Errorf("splitKey(%q) = %q, %q; want %q, %q", tc.name, key, field, tc.key, tc.field)
		}
		if ok2 := checkOracle(t, tc.name); ok2 != ok {
			t.Errorf("%q: the table disagrees with the regexp", tc.name)
		}
	}
}

// checkOracle compares splitKey with the regular expression it replaces.
func checkOracle(t *testing.T, name string) bool {
	t.Helper()
	key, field, ok := splitKey(name)
	wkey, wfield, wok := oracleSplit(name)
	if key != wkey || field != wfield || ok != wok {
		t.Errorf("splitKey(%q) = %q, %q, %v; the regexp says %q, %q, %v", name, key, field, ok, wkey, wfield, wok)
	}
	if got, want := isMeta(name), oracleMeta(name); got != want {
		t.Errorf("isMeta(%q) = %v, want %v", name, got, want)
	}
	return wok
}

func TestIsMeta(t *testing.T) {
	tests := []struct {
		name string
		meta bool
	}{
		{"__index__", true}, {"__", true}, {"___", true}, {"__a__/x.json", true}, {"__a__\n", true},
		{"____/x", true}, {"__a__b.txt", false}, {"x/__a__", false}, {"__a_", false}, {"_a__", false},
		{"__a/b__", false}, {"___/x", false}, {"__a__\n\n", false},
	}
	for _, tc := range tests {
		if got := isMeta(tc.name); got != tc.meta {
			t.Errorf("isMeta(%q) = %v, want %v", tc.name, got, tc.meta)
		}
		checkOracle(t, tc.name)
	}
}

// FuzzSplitKey checks splitKey and isMeta against the regular expressions.
func FuzzSplitKey(f *testing.F) {
	for _, s := range []string{"a/b/000123.seg.png", "a/.h", "a.b/.c", "__a__/x.y", "a\nb/c.d", "x/y/.z/", "é.Σ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) { checkOracle(t, name) })
}

func TestLowerField(t *testing.T) {
	// Expected values are Python's str.lower().
	tests := []struct{ in, want string }{
		{"jpg", "jpg"}, {"JPG", "jpg"}, {"Seg.PNG", "seg.png"},
		{"ÉCRIT", "écrit"}, {"ＰＮＧ", "ｐｎｇ"},
		{"İ", "i\u0307"},
		{"ΑΣ", "ας"}, {"Σ", "σ"}, {"ΑΣΑ", "ασα"}, {"ΑΣ.ΤΧΤ", "ασ.τχτ"}, {"ΑΣ'", "ας'"}, {"Α'Σ", "α'ς"}, {"ΑΣ\u0301", "ας\u0301"},
		{"A\xffB", "a\xffb"}, {"Σ\xff", "σ\xff"}, {"\xffΣ", "\xffσ"},
	}
	for _, tc := range tests {
		if got := lowerField(tc.in); got != tc.want {
			t.Errorf("lowerField(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
