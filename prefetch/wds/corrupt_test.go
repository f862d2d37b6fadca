package wds

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// prefix is the part of full whose fields lie within the first cut bytes,
// which is what an index of a tar cut at a member boundary must be.
func prefix(full []Sample, cut int64) []Sample {
	var out []Sample
	for _, s := range full {
		var fields []Field
		for _, f := range s.Fields {
			if f.Offset+f.Size <= cut && f.Offset <= cut {
				fields = append(fields, f)
			}
		}
		if len(fields) > 0 {
			out = append(out, Sample{Key: s.Key, Fields: fields})
		}
	}
	return out
}

// TestTruncatedPlain cuts a ustar tar of regular members (no extended
// headers) at every byte and knows the exact answer for each cut: a valid
// shorter index where no member's data is cut (the rest of a block's padding
// and the end-of-archive blocks may be missing), else ErrCorrupt naming the
// member whose data is cut, or the offset of the cut header.
func TestTruncatedPlain(t *testing.T) {
	entries := []entry{
		file("a.jpg", body(21, 700)), file("a.cls", ""), file("a.txt", body(22, 512)),
		file("b.jpg", body(23, 1)), file("c.bin", body(24, 1030)),
	}
	data := makeTar(t, tar.FormatUSTAR, entries)
	full, err := IndexBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	var fields []Field // in archive order
	for _, s := range full {
		fields = append(fields, s.Fields...)
	}
	for cut := int64(0); cut < int64(len(data)); cut++ {
		got, err := IndexBytes(data[:cut])
		// What must happen at this cut.
		wantOK, member, at := cut >= fields[len(fields)-1].Offset+fields[len(fields)-1].Size, "", cut
		for i, f := range fields {
			hdr, end := f.Offset-blockSize, f.Offset+f.Size
			switch {
			case cut == 0:
				at = 0 // an empty file
			case cut > hdr && cut < f.Offset:
				at = hdr // inside a header
			case cut >= f.Offset && cut < end:
				member = entries[i].name // inside data
			case cut >= end && cut <= alignUp(end):
				wantOK = true // in the padding after complete data
			}
		}
		if wantOK {
			if err != nil {
				t.Fatalf("cut %d: %v, want an index of %d fields", cut, err, len(prefix(full, cut)))
			}
			if want := prefix(full, cut); !reflect.DeepEqual(got, want) {
				t.Fatalf("cut %d: got %s\nwant %s", cut, describe(got), describe(want))
			}
			continue
		}
		e := wantErr(t, err, ErrCorrupt, member, at)
		if member != "" && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut %d: %v does not wrap io.ErrUnexpectedEOF", cut, e)
		}
	}
}

// TestTruncatedAnyFormat cuts tars with extended headers, long names and
// directories at every byte: each cut gives either ErrCorrupt or an index
// that is the prefix of the whole one, with no field cut short and every
// field within the cut.
func TestTruncatedAnyFormat(t *testing.T) {
	long := strings.Repeat("x", 150)
	entries := []entry{
		{name: "d/", typ: tar.TypeDir},
		file("d/"+long+".jpg", body(31, 900)), file("d/"+long+".é.TXT", "é"),
		file("short.cls", "1"), file("zéro.bin", ""),
	}
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		data := makeTar(t, format, entries)
		full, err := IndexBytes(data)
		if err != nil || len(full) != 3 {
			t.Fatalf("%v: %v, %s", format, err, describe(full))
		}
		accepted := 0
		for cut := int64(0); cut < int64(len(data)); cut++ {
			got, err := IndexBytes(data[:cut])
			if err != nil {
				if e := wantErr(t, err, ErrCorrupt, "", -1); e.Offset < 0 || e.Offset > cut {
					t.Fatalf("%v cut %d: error offset out of range: %v", format, cut, err)
				}
				continue
			}
			accepted++
			if err := Validate(got, cut); err != nil {
				t.Fatalf("%v cut %d: %v", format, cut, err)
			}
			if want := prefix(full, cut); !reflect.DeepEqual(got, want) {
				t.Fatalf("%v cut %d: got %s\nwant %s", format, cut, describe(got), describe(want))
			}
			for _, s := range full {
				for _, f := range s.Fields {
					if cut > f.Offset-blockSize && cut < f.Offset+f.Size {
						t.Fatalf("%v cut %d: accepted inside field %q at %d+%d", format, cut, f.Name, f.Offset, f.Size)
					}
				}
			}
		}
		if accepted == 0 {
			t.Errorf("%v: no cut accepted; the end-of-archive region alone should be", format)
		}
	}
}

// TestDamagedTar covers bad bytes other than truncation.
func TestDamagedTar(t *testing.T) {
	plain := makeTar(t, tar.FormatUSTAR, []entry{file("a.jpg", "first"), file("b.jpg", "second")})
	// b.jpg's header is the third block.
	const second = 2 * blockSize
	withChecksum := func(data []byte, hdr int) []byte { // recompute a header's checksum
		blk := data[hdr : hdr+blockSize]
		copy(blk[148:156], "        ")
		sum := 0
		for _, c := range blk {
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return data
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(plain)) }
	pax := makeTar(t, tar.FormatPAX, []entry{file("a.jpg", "first"), file(strings.Repeat("p", 120)+".txt", "x")})
	paxHdr := bytes.Index(pax, []byte("PaxHeaders")) // the x header of the second member
	paxHdr -= paxHdr % blockSize

	tests := []struct {
		name   string
		data   []byte
		member string // want this member named; "" for a clean index
		offset int64
		kind   error
		want   []wantSample
	}{
		{name: "checksum of the first header", data: edit(func(b []byte) []byte { b[150] ^= 1; return b }), kind: ErrCorrupt, offset: 0},
		{name: "name byte of the second header", data: edit(func(b []byte) []byte { b[second+1] = 'X'; return b }), kind: ErrCorrupt, offset: second},
		{name: "size too large", data: edit(func(b []byte) []byte {
			copy(b[second+124:], "77777777777\x00")
			return withChecksum(b, second)
		}), kind: ErrCorrupt, member: "b.jpg", offset: int64(len(plain))},
		{name: "size not a number", data: edit(func(b []byte) []byte {
			copy(b[second+124:], "12z45\x00\x00\x00\x00\x00\x00\x00")
			return withChecksum(b, second)
		}), kind: ErrCorrupt, offset: second},
		{name: "lone zero block, then garbage", data: append(append(bytes.Clone(plain[:second]), make([]byte, blockSize)...), bytes.Repeat([]byte{'g'}, 700)...),
			want: []wantSample{{"a", []wantField{{"jpg", "first"}}}}},
		{name: "pax header without its member", data: append(bytes.Clone(pax[:paxHdr+2*blockSize]), make([]byte, 2*blockSize)...), kind: ErrCorrupt, offset: int64(paxHdr)},
		{name: "empty file", data: nil, kind: ErrCorrupt, offset: 0},
		{name: "short zero block", data: make([]byte, 100), kind: ErrCorrupt, offset: 0},
		{name: "one zero block", data: make([]byte, blockSize), want: nil},
		{name: "end marker only", data: make([]byte, 2*blockSize), want: nil},
		{name: "gzip not decompressed", data: []byte("\x1f\x8b\x08\x00 and so on" + strings.Repeat("\x00", 600)), kind: ErrCorrupt, offset: 0},
		{name: "duplicate field", data: makeTar(t, tar.FormatUSTAR, []entry{file("k.jpg", "1"), file("k.txt", "2"), file("k.JPG", "3")}),
			kind: ErrCorrupt, member: "k.JPG", offset: 4 * blockSize},
		{name: "field named like webdataset's key", data: makeTar(t, tar.FormatUSTAR, []entry{file("k.__key__", "1")}), kind: ErrCorrupt, member: "k.__key__", offset: 0},
		{name: "field named like webdataset's url", data: makeTar(t, tar.FormatUSTAR, []entry{file("k.__url__", "1")}), kind: ErrCorrupt, member: "k.__url__", offset: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IndexBytes(tc.data)
			if tc.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkSamples(t, tc.data, got, tc.want)
				return
			}
			_ = wantErr(t, err, tc.kind, tc.member, tc.offset)
			if got != nil {
				t.Errorf("got samples with an error: %s", describe(got))
			}
		})
	}
}

// TestReaderError checks that an error from the reader is passed on, not
// taken for a corrupt shard.
func TestReaderError(t *testing.T) {
	data := makeTar(t, tar.FormatUSTAR, []entry{file("a.jpg", body(41, 2000))})
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(boom))
	_, err := Index(r)
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want the reader's error and not ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), "offset 1000") {
		t.Errorf("%v does not say where", err)
	}
}
