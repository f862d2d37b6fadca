package dataset

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
)

func TestExpandBraces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"s3://b/train.tar", []string{"s3://b/train.tar"}},
		{"", []string{""}},
		{"s3://b/train-{000000..000003}.tar", []string{
			"s3://b/train-000000.tar", "s3://b/train-000001.tar", "s3://b/train-000002.tar", "s3://b/train-000003.tar"}},
		{"{8..11}", []string{"8", "9", "10", "11"}},
		{"{08..11}", []string{"08", "09", "10", "11"}},
		{"{8..011}", []string{"008", "009", "010", "011"}},
		{"{3..1}", []string{"3", "2", "1"}},
		{"{003..001}", []string{"003", "002", "001"}},
		{"{0..10..5}", []string{"0", "5", "10"}},
		{"{10..0..5}", []string{"10", "5", "0"}},
		{"{0..9..4}", []string{"0", "4", "8"}},
		{"{7..7}", []string{"7"}},
		{"{a..c}", []string{"a", "b", "c"}},
		{"{C..A}", []string{"C", "B", "A"}},
		{"{a,b,c}", []string{"a", "b", "c"}},
		{"x{a,b}y", []string{"xay", "xby"}},
		{"{a,b}{1..2}", []string{"a1", "a2", "b1", "b2"}},
		{"s3://b/{train,val}-{00..01}.tar", []string{
			"s3://b/train-00.tar", "s3://b/train-01.tar", "s3://b/val-00.tar", "s3://b/val-01.tar"}},
		{"{a,b{1..2},c}", []string{"a", "b1", "b2", "c"}},
		{"{a,{b,c}d}", []string{"a", "bd", "cd"}},
		{"train{,-extra}.tar", []string{"train.tar", "train-extra.tar"}},
		{"{a..b,c}", []string{"a..b", "c"}},
		{"{1..2,5}", []string{"1..2", "5"}},
		{`a\{b\}`, []string{"a{b}"}},
		{`{a\,b,c}`, []string{"a,b", "c"}},
		{`a\\b`, []string{`a\b`}},
		{"a,b", []string{"a,b"}},
		{"{x..y..2}", []string{"x"}},
	} {
		got, err := ExpandBraces(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ExpandBraces(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExpandBracesErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind error
		msg  string
	}{
		{"s3://b/{000..009.tar", storage.ErrBadURL, "unclosed"},
		{"s3://b/000..009}.tar", storage.ErrBadURL, "unmatched }"},
		{"{a,b}}", storage.ErrBadURL, "unmatched }"},
		{"{}", storage.ErrBadURL, "nothing in it"},
		{"{a}", storage.ErrBadURL, "single alternative"},
		{"{{a,b}}", storage.ErrBadURL, "single alternative"},
		{"{1..5..0}", storage.ErrBadURL, "bad step"},
		{"{0..99999999999999999999}", storage.ErrBadURL, "too large"},
		{`a\`, storage.ErrBadURL, "backslash"},
		{"{0..2000000}", storage.ErrTooLarge, "more than"},
		{"{0..1023}{0..1023}{0..1}", storage.ErrTooLarge, "more than"},
		{"{{0..1023}{0..1023},x}", storage.ErrTooLarge, "more than"},
	} {
		got, err := ExpandBraces(tc.in)
		var e *storage.Error
		if !errors.As(err, &e) || !errors.Is(err, tc.kind) || e.Object != tc.in || e.Op != "expand" || !strings.Contains(err.Error(), tc.msg) {
			name := tc.in
			if len(name) > 40 {
				name = name[:40] + "…"
			}
			t.Errorf("ExpandBraces(%q) = %d names, %v; want a %q error saying %q", name, len(got), err, tc.kind, tc.msg)
		}
	}
	if names, err := ExpandBraces(fmt.Sprintf("{1..%d}", MaxExpansion)); err != nil || len(names) != MaxExpansion {
		t.Errorf("exactly MaxExpansion names: %d, %v", len(names), err)
	}
}

// FuzzExpandBraces checks that the expander never panics or hangs, keeps
// its limit, and is exact where its result can be predicted.
func FuzzExpandBraces(f *testing.F) {
	for _, s := range []string{
		"s3://b/train-{000000..000099}.tar", "{a,b}{1..3}", "{a,{b,c}d}", `\{x\}`, "{}", "{a}", "{1..5..0}",
		"{z..a..3}", "x{,y}", "{0..9}{0..9}{0..9}", "}{", "{a,b", "file:///d/{00..10..3}/s-{a..c}.tgz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 200 {
			return
		}
		names, err := ExpandBraces(s)
		if err != nil {
			var e *storage.Error
			if !errors.As(err, &e) || e.Object != s || (!errors.Is(err, storage.ErrBadURL) && !errors.Is(err, storage.ErrTooLarge)) {
				t.Fatalf("ExpandBraces(%q): error %v is not an *Error of kind ErrBadURL/ErrTooLarge naming the pattern", s, err)
			}
			return
		}
		if len(names) == 0 || len(names) > MaxExpansion {
			t.Fatalf("ExpandBraces(%q) gave %d names", s, len(names))
		}
		if !strings.ContainsAny(s, `{}\`) && (len(names) != 1 || names[0] != s) {
			t.Fatalf("ExpandBraces(%q) = %q, want the pattern itself", s, names)
		}
		// Expanding a name again, escaped, gives the name back.
		esc := strings.NewReplacer(`\`, `\\`, "{", `\{`, "}", `\}`, ",", `\,`).Replace(names[0])
		if again, err := ExpandBraces(esc); err != nil || len(again) != 1 || again[0] != names[0] {
			t.Fatalf("ExpandBraces(%q) = %q, %v; want [%q]", esc, again, err, names[0])
		}
	})
}
