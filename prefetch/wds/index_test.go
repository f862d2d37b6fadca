package wds

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

var allFormats = []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU}

// TestIndexFormats indexes tars written by archive/tar in each format and
// checks keys, field names, order and every field's bytes.
func TestIndexFormats(t *testing.T) {
	jpg1, jpg2, png := body(1, 3000), body(2, 1024), body(3, 700)
	long := "long/" + strings.Repeat("d", 120) + "/" + strings.Repeat("n", 130)
	tests := []struct {
		name    string
		formats []tar.Format
		entries []entry
		want    []wantSample
	}{{
		name:    "samples",
		formats: allFormats,
		entries: []entry{
			{name: "train/", typ: tar.TypeDir},
			file("train/000001.jpg", jpg1),
			file("train/000001.cls", "7"),
			{name: "train/000001.alt.jpg", typ: tar.TypeSymlink, link: "000001.jpg"},
			file("train/000001.seg.PNG", png),
			file("train/000002.JPG", jpg2),
			file("train/000002.cls", "3"),
		},
		want: []wantSample{
			{"train/000001", []wantField{{"jpg", jpg1}, {"cls", "7"}, {"seg.png", png}}},
			{"train/000002", []wantField{{"jpg", jpg2}, {"cls", "3"}}},
		},
	}, {
		name:    "skipped members",
		formats: allFormats,
		entries: []entry{
			file("__index__", "meta"),
			file("__x__", "meta"),
			file("__meta__/info.json", "{}"),
			file("README", "no dot"),
			file(".hidden", "top-level dot file"),
			file("v1.2/.cls", "dot in the folder"),
			file("a.jpg", "A"),
			{name: "a.txt", typ: tar.TypeLink, link: "a.jpg"},
			{name: "a.fifo", typ: tar.TypeFifo},
			{name: "a.dev", typ: tar.TypeChar},
			{name: "a.d/", typ: tar.TypeDir},
			file("a.cls", "1"),
			file("__a__b.txt", "not meta"),
			file("x/__meta__/y.json", "not meta below the top"),
		},
		want: []wantSample{
			{"a", []wantField{{"jpg", "A"}, {"cls", "1"}}},
			{"__a__b", []wantField{{"txt", "not meta"}}},
			{"x/__meta__/y", []wantField{{"json", "not meta below the top"}}},
		},
	}, {
		name:    "block padding edges",
		formats: allFormats,
		entries: []entry{
			file("s0.bin", ""), file("s1.bin", "x"), file("s511.bin", body(4, 511)),
			file("s512.bin", body(5, 512)), file("s513.bin", body(6, 513)), file("s1024.bin", body(7, 1024)),
		},
		want: []wantSample{
			{"s0", []wantField{{"bin", ""}}}, {"s1", []wantField{{"bin", "x"}}},
			{"s511", []wantField{{"bin", body(4, 511)}}}, {"s512", []wantField{{"bin", body(5, 512)}}},
			{"s513", []wantField{{"bin", body(6, 513)}}}, {"s1024", []wantField{{"bin", body(7, 1024)}}},
		},
	}, {
		name:    "keys and dots",
		formats: allFormats,
		entries: []entry{
			file("a.jpg", "1"), file("b.jpg", "2"), file("a.cls", "3"), // a again: a new sample
			file("x/y.z/000001.tar.gz", "4"),
			file("a/.jpg", "5"), // base_plus_ext keeps it: key "a/"
			file("sample.", "6"),
			file("c.JPEG", "7"), file("c.jpg", "8"),
			{name: "c.raw", typ: tar.TypeCont, body: "9"},
		},
		want: []wantSample{
			{"a", []wantField{{"jpg", "1"}}}, {"b", []wantField{{"jpg", "2"}}}, {"a", []wantField{{"cls", "3"}}},
			{"x/y.z/000001", []wantField{{"tar.gz", "4"}}},
			{"a/", []wantField{{"jpg", "5"}}},
			{"sample", []wantField{{"", "6"}}},
			{"c", []wantField{{"jpeg", "7"}, {"jpg", "8"}, {"raw", "9"}}},
		},
	}, {
		name:    "ustar prefix",
		formats: allFormats,
		entries: []entry{file(strings.Repeat("p", 70)+"/"+strings.Repeat("q", 70)+"/000001.JSON", "{}")},
		want:    []wantSample{{strings.Repeat("p", 70) + "/" + strings.Repeat("q", 70) + "/000001", []wantField{{"json", "{}"}}}},
	}, {
		name:    "long names",
		formats: []tar.Format{tar.FormatPAX, tar.FormatGNU},
		entries: []entry{
			{name: "long/" + strings.Repeat("d", 120) + "/", typ: tar.TypeDir},
			file(long+".JPG", jpg1), file(long+".cls", "5"),
		},
		want: []wantSample{{long, []wantField{{"jpg", jpg1}, {"cls", "5"}}}},
	}, {
		name:    "non-ASCII names",
		formats: []tar.Format{tar.FormatPAX},
		entries: []entry{
			file("données/échantillon.JPG", "1"), file("données/échantillon.Légende.TXT", "2"),
			file("κλειδί.ΑΣ", "3"), file("κλειδί.ΑΣ.ΤΧΤ", "4"), file("İmage.PNG", "5"), file("İmage.İ", "6"),
			file("日本/写真.ＰＮＧ", "7"),
		},
		want: []wantSample{
			{"données/échantillon", []wantField{{"jpg", "1"}, {"légende.txt", "2"}}},
			{"κλειδί", []wantField{{"ας", "3"}, {"ασ.τχτ", "4"}}}, // Python's final sigma
			{"İmage", []wantField{{"png", "5"}, {"i\u0307", "6"}}},
			{"日本/写真", []wantField{{"ｐｎｇ", "7"}}},
		},
	}, {
		name:    "pax global header",
		formats: []tar.Format{tar.FormatPAX},
		entries: []entry{
			{name: "global", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "shard 7"}},
			file("a.txt", "1"),
			{name: "g.txt", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "again"}},
			file("a.json", "2"),
		},
		want: []wantSample{{"a", []wantField{{"txt", "1"}, {"json", "2"}}}},
	}}
	for _, tc := range tests {
		for _, format := range tc.formats {
			t.Run(tc.name+"/"+format.String(), func(t *testing.T) {
				data := makeTar(t, format, tc.entries)
				got, err := IndexBytes(data)
				if err != nil {
					t.Fatal(err)
				}
				checkSamples(t, data, got, tc.want)
			})
		}
	}
}

// TestIndexReaders checks that the offsets do not depend on how the reader
// splits its reads.
func TestIndexReaders(t *testing.T) {
	data := makeTar(t, tar.FormatPAX, []entry{
		file("a/"+strings.Repeat("x", 200)+".jpg", body(8, 5000)), file("b.cls", "1"), file("c.seg.png", body(9, 513)),
	})
	want, err := IndexBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]func() any{
		"one byte": func() any { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":     func() any { return iotest.HalfReader(bytes.NewReader(data)) },
		"data+EOF": func() any { return iotest.DataErrReader(bytes.NewReader(data)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := Index(r().(interface{ Read([]byte) (int, error) }))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %s\nwant %s", describe(got), describe(want))
			}
		})
	}
}

// TestJSON pins the on-disk form of the index.
func TestJSON(t *testing.T) {
	data := makeTar(t, tar.FormatUSTAR, []entry{file("k.jpg", "abc"), file("k.cls", "")})
	samples, err := IndexBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(samples)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"key":"k","fields":[{"name":"jpg","offset":512,"size":3},{"name":"cls","offset":1536,"size":0}]}]`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var back []Sample
	if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(back, samples) {
		t.Fatalf("round trip: %v, %s", err, describe(back))
	}
}
