package wds

import (
	"slices"
	"testing"
)

func TestFieldSamplesCountsSamplesPerName(t *testing.T) {
	f := func(name string, off int64) Field { return Field{Name: name, Offset: off, Size: 1} }
	x, err := NewShardIndex([]Sample{
		{Key: "a", Fields: []Field{f("cls", 0), f("jpg", 1), f("txt", 2)}},
		{Key: "b", Fields: []Field{f("cls", 3), f("jpg", 4)}},
		{Key: "c", Fields: []Field{f("cls", 5), f("jpg", 6), f("txt", 7)}},
		{Key: "d", Fields: []Field{f("json", 8)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	names, samples := x.FieldSamples()
	if want := []string{"cls", "jpg", "json", "txt"}; !slices.Equal(names, want) {
		t.Fatalf("names %q, want %q", names, want)
	}
	if want := []int{3, 3, 1, 2}; !slices.Equal(samples, want) {
		t.Fatalf("samples %v, want %v", samples, want)
	}
	// The same after the compact form's round trip.
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := UnmarshalShardIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if n2, s2 := y.FieldSamples(); !slices.Equal(n2, names) || !slices.Equal(s2, samples) {
		t.Fatalf("after MarshalBinary: %q %v", n2, s2)
	}
	empty, _ := NewShardIndex(nil)
	if n, s := empty.FieldSamples(); len(n) != 0 || len(s) != 0 {
		t.Fatalf("empty shard: %q %v", n, s)
	}
}
