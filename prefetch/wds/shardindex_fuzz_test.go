package wds

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// rawIndex builds an encoded index by hand, for inputs MarshalBinary never
// writes.
type rawIndex struct{ b []byte }

func newRaw(size uint64, names []string, shapes [][]uint64, samples uint64) *rawIndex {
	r := &rawIndex{b: append([]byte(codecMagic), codecVersion)}
	r.u(size).u(uint64(len(names)))
	for _, n := range names {
		r.u(uint64(len(n)))
		r.b = append(r.b, n...)
	}
	r.u(uint64(len(shapes)))
	for _, s := range shapes {
		r.u(uint64(len(s)))
		for _, id := range s {
			r.u(id)
		}
	}
	return r.u(samples)
}

func (r *rawIndex) u(v uint64) *rawIndex { r.b = binary.AppendUvarint(r.b, v); return r }
func (r *rawIndex) s(v int64) *rawIndex  { r.b = binary.AppendVarint(r.b, v); return r }

// sample appends a sample's shape and key; then call field for each field.
func (r *rawIndex) sample(shape, shared uint64, suffix string) *rawIndex {
	r.u(shape).u(shared).u(uint64(len(suffix)))
	r.b = append(r.b, suffix...)
	return r
}

func (r *rawIndex) field(delta int64, size uint64) *rawIndex { return r.s(delta).u(size) }

// done appends the checksum.
func (r *rawIndex) done() []byte {
	return binary.LittleEndian.AppendUint32(r.b, crc32.Checksum(r.b, castagnoli))
}

// TestUnmarshalShardIndexRejects feeds encodings that are well formed but
// wrong, each with a valid checksum, and damaged ones.
func TestUnmarshalShardIndexRejects(t *testing.T) {
	one := []string{"a"}
	good := newRaw(2048, one, [][]uint64{{0}}, 1).sample(0, 0, "k").field(0, 10).done()
	if x, err := UnmarshalShardIndex(good); err != nil || x.Len() != 1 || x.Field(0, 0) != (Field{"a", 512, 10}) {
		t.Fatalf("the valid base case: %v", err)
	}
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	bomb := newRaw(1<<40, one, [][]uint64{{0}}, 300).sample(0, 0, strings.Repeat("k", 1000)).field(0, 0)
	for i := range 299 {
		bomb.sample(0, 999, string(rune('a'+i%26))).field(0, 0)
	}
	tests := map[string][]byte{
		"empty":                {},
		"bad magic":            flip(good, 0),
		"bad version":          flip(good, 4),
		"bad checksum":         flip(good, len(good)-1),
		"flipped body byte":    flip(good, 7),
		"truncated":            good[:len(good)-5],
		"trailing bytes":       newRaw(2048, one, [][]uint64{{0}}, 1).sample(0, 0, "k").field(0, 10).u(0).done(),
		"field past size":      newRaw(600, one, [][]uint64{{0}}, 1).sample(0, 0, "k").field(0, 100).done(),
		"field overlaps":       newRaw(4096, one, [][]uint64{{0}}, 2).sample(0, 0, "k").field(0, 100).sample(0, 0, "l").field(-1000, 10).done(),
		"negative offset":      newRaw(4096, one, [][]uint64{{0}}, 1).sample(0, 0, "k").field(-1000, 1).done(),
		"offset overflows":     newRaw(1<<62, one, [][]uint64{{0}}, 1).sample(0, 0, "k").field(1<<63-1, 1).done(),
		"names unsorted":       newRaw(4096, []string{"b", "a"}, [][]uint64{{0, 1}}, 1).sample(0, 0, "k").field(0, 1).field(0, 1).done(),
		"name in no sample":    newRaw(4096, []string{"a", "b"}, [][]uint64{{0}}, 1).sample(0, 0, "k").field(0, 1).done(),
		"shape in no sample":   newRaw(4096, one, [][]uint64{{0}, {0}}, 1).sample(0, 0, "k").field(0, 1).done(),
		"name twice in shape":  newRaw(4096, []string{"a", "b"}, [][]uint64{{0, 0}}, 1).sample(0, 0, "k").field(0, 1).field(0, 1).done(),
		"empty shape":          newRaw(4096, one, [][]uint64{{}}, 1).sample(0, 0, "k").done(),
		"name id out of range": newRaw(4096, one, [][]uint64{{1}}, 1).sample(0, 0, "k").field(0, 1).done(),
		"shape out of range":   newRaw(4096, one, [][]uint64{{0}}, 1).sample(1, 0, "k").field(0, 1).done(),
		"huge sample count":    newRaw(4096, one, [][]uint64{{0}}, 1<<40).sample(0, 0, "k").field(0, 1).done(),
		"huge name count":      (&rawIndex{b: append([]byte(codecMagic), codecVersion)}).u(4096).u(1 << 20).u(0).u(0).done(),
		"empty key":            newRaw(4096, one, [][]uint64{{0}}, 1).sample(0, 0, "").field(0, 1).done(),
		"key repeats":          newRaw(4096, one, [][]uint64{{0}}, 2).sample(0, 0, "k").field(0, 1).sample(0, 1, "").field(0, 1).done(),
		"shared past previous": newRaw(4096, one, [][]uint64{{0}}, 2).sample(0, 0, "k").field(0, 1).sample(0, 2, "x").field(0, 1).done(),
		"key bomb":             bomb.done(),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			x, err := UnmarshalShardIndex(b)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v (%v), want an ErrCorrupt *Error", err, x)
			}
			if e.Offset < 0 || e.Offset > int64(len(b)) {
				t.Fatalf("error offset %d outside the %d bytes: %v", e.Offset, len(b), err)
			}
		})
	}
}

// Keys that share long prefixes but would expand past the bound are stored
// whole, so every index MarshalBinary writes reads back.
func TestMarshalLongSharedKeys(t *testing.T) {
	var entries []entry
	prefix := strings.Repeat("p", 900) + "/"
	for i := range 100 {
		entries = append(entries, file(prefix+string(rune('a'+i%26))+string(rune('a'+i/26))+".cls", "1"))
	}
	data := makeTar(t, tar.FormatPAX, entries)
	x, err := IndexShard(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	shared := x.encode(true)
	if uint64(len(x.keys)) <= keyRatio*uint64(len(shared)) {
		t.Fatalf("keys of %d bytes from %d encoded: the test needs keys past the bound", len(x.keys), len(shared))
	}
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalShardIndex(b)
	if err != nil || !back.Equal(x) {
		t.Fatalf("read back: %v", err)
	}
}

// FuzzUnmarshalShardIndex feeds UnmarshalShardIndex arbitrary bytes: it
// must not panic, must fail only with an ErrCorrupt *Error, and an index it
// accepts must keep its invariants (fields in order within Size, memory a
// bounded multiple of the input) and read back equal from MarshalBinary.
func FuzzUnmarshalShardIndex(f *testing.F) {
	for _, shard := range [][]byte{
		makeTar(f, tar.FormatUSTAR, []entry{file("a.jpg", "x"), file("a.cls", "1"), file("b.jpg", body(61, 600)), file("b.cls", "2")}),
		makeTar(f, tar.FormatPAX, []entry{file("d/"+strings.Repeat("L", 110)+".json", "{}"), file("é.Σ", ""), file("k.", "z")}),
		makeTar(f, tar.FormatGNU, []entry{file("s0.bin", ""), file("s511.bin", body(4, 511)), file("s513.bin", body(6, 513))}),
		makeTar(f, tar.FormatUSTAR, nil),
		imageShard(f, 20, 9),
	} {
		x, err := IndexShard(strings.NewReader(string(shard)))
		if err != nil {
			f.Fatal(err)
		}
		b, err := x.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(newRaw(2048, []string{"a"}, [][]uint64{{0}}, 1).sample(0, 0, "k").field(0, 10).done())
	f.Add([]byte(codecMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := UnmarshalShardIndex(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not an ErrCorrupt *Error", err)
			}
			return
		}
		if limit := int64(keyRatio+8) * int64(len(b)+64); x.MemBytes() > limit {
			t.Fatalf("%d bytes decode to %d bytes of memory, over %d", len(b), x.MemBytes(), limit)
		}
		prevEnd := int64(0)
		for j := range x.Len() {
			if x.Key(j) == "" || x.NumFields(j) == 0 || (j > 0 && x.Key(j) == x.Key(j-1)) {
				t.Fatalf("sample %d: key %q, %d fields", j, x.Key(j), x.NumFields(j))
			}
			for k := range x.NumFields(j) {
				fl := x.Field(j, k)
				if fl.Offset < prevEnd || fl.Size < 0 || fl.Offset+fl.Size > x.Size() {
					t.Fatalf("sample %d field %+v: before %d or past %d", j, fl, prevEnd, x.Size())
				}
				prevEnd = fl.Offset + fl.Size
			}
		}
		again, err := x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalShardIndex(again)
		if err != nil || !back.Equal(x) {
			t.Fatalf("re-encoded index reads back as %v, %v", back, err)
		}
	})
}
