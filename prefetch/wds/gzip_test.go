package wds

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecompress(t *testing.T) {
	text := []byte(body(51, 3000) + "some text that compresses, some text that compresses")
	one := gz(t, text)
	flip := func(i int) []byte { b := bytes.Clone(one); b[i] ^= 0x40; return b }
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		corrupt bool
	}{
		{name: "not gzip", in: text, want: text},
		{name: "empty", in: []byte{}, want: []byte{}},
		{name: "one byte of the magic", in: []byte{0x1f}, want: []byte{0x1f}},
		{name: "gzip", in: one, want: text},
		{name: "two members", in: cat(gz(t, text[:100]), gz(t, text[100:])), want: text},
		{name: "empty member", in: gz(t, nil), want: []byte{}},
		{name: "zero padding after", in: cat(one, make([]byte, 1000)), want: text},
		{name: "zero padding between", in: cat(gz(t, text[:7]), make([]byte, 9), gz(t, text[7:])), want: text},
		{name: "garbage after", in: cat(one, []byte("trailing junk")), corrupt: true},
		{name: "magic only", in: gzipMagic, corrupt: true},
		{name: "not deflate", in: []byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0}, corrupt: true},
		{name: "bad crc", in: flip(len(one) - 6), corrupt: true},
		{name: "bad length", in: flip(len(one) - 2), corrupt: true},
		{name: "damaged deflate data", in: flip(len(one) / 2), corrupt: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decompress(tc.in)
			if tc.corrupt {
				_ = wantErr(t, err, ErrCorrupt, "", -1)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
			if !bytes.HasPrefix(tc.in, gzipMagic) && len(tc.in) > 0 && &got[0] != &tc.in[0] {
				t.Errorf("plain data was copied")
			}
		})
	}
}

// TestDecompressTruncated cuts a gzip stream at every byte after the magic.
func TestDecompressTruncated(t *testing.T) {
	z := gz(t, []byte(body(52, 5000)))
	for cut := len(gzipMagic); cut < len(z); cut++ {
		_, err := Decompress(z[:cut])
		e := wantErr(t, err, ErrCorrupt, "", -1)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut %d: %v does not say the stream is truncated", cut, e)
		}
	}
}

// TestNewReader streams a gzipped tar through small reads, and checks that
// damage and reader errors come out of Index as they should.
func TestNewReader(t *testing.T) {
	big := body(53, 100_000) // incompressible, so a cut gzip ends inside it
	data := makeTar(t, tar.FormatGNU, []entry{file("k.txt", "hello"), file("k.bin", big)})
	z := gz(t, data)
	r, err := NewReader(iotest.OneByteReader(bytes.NewReader(z)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Index(r)
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, data, got, []wantSample{{"k", []wantField{{"txt", "hello"}, {"bin", big}}}})

	t.Run("cut inside a member", func(t *testing.T) {
		r, err := NewReader(bytes.NewReader(z[:len(z)/2]))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Index(r)
		e := wantErr(t, err, ErrCorrupt, "k.bin", -1)
		if e.Offset <= 2*blockSize || e.Offset >= int64(len(data)) {
			t.Errorf("offset %d is not inside k.bin", e.Offset)
		}
	})
	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("disk on fire")
		r, err := NewReader(io.MultiReader(bytes.NewReader(z[:len(z)/2]), iotest.ErrReader(boom)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err = Index(r); !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want the reader's error and not ErrCorrupt", err)
		}
	})
	t.Run("reader error before the magic", func(t *testing.T) {
		boom := errors.New("no route to host")
		if _, err := NewReader(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})
}

// gzBomb returns gzip members that inflate to n zero bytes: one member of
// up to 1 MiB of zeros, repeated (concatenated members are one stream).
func gzBomb(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	member := min(n, 1<<20)
	if _, err := zw.Write(make([]byte, member)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if n%member != 0 {
		t.Fatalf("%d is not a multiple of %d", n, member)
	}
	return bytes.Repeat(buf.Bytes(), n/member)
}

// allocated returns the bytes f allocated on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// DecompressLimit keeps to its limit: exactly the limit passes, one byte
// more is ErrTooLarge, and a bomb stops at the limit instead of inflating:
// what it allocates is bounded by the limit, not by the bomb.
func TestDecompressLimit(t *testing.T) {
	text := []byte(body(54, 100_000))
	one := gz(t, text)
	two := cat(gz(t, text[:40_000]), gz(t, text[40_000:])) // ISIZE says 60000: too small a hint
	lying := bytes.Clone(one)
	copy(lying[len(lying)-4:], []byte{0xff, 0xff, 0, 0}) // ISIZE 65535, a plausible lie: the CRC check fails
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int64
		want  []byte
		kind  error
	}{
		{"gzip at the limit", one, int64(len(text)), text, nil},
		{"gzip one byte over", one, int64(len(text)) - 1, nil, ErrTooLarge},
		{"gzip far over", one, 1000, nil, ErrTooLarge},
		{"two members at the limit", two, int64(len(text)), text, nil},
		{"two members one over", two, int64(len(text)) - 1, nil, ErrTooLarge},
		{"no limit", two, 0, text, nil},
		{"no limit, no hint", cat(one, gz(t, nil)), 0, text, nil}, // the last member is empty: ISIZE 0
		{"no hint, over the limit", cat(one, gz(t, nil)), 1000, nil, ErrTooLarge},
		{"lying size", lying, 1 << 20, nil, ErrCorrupt},
		{"plain at the limit", text, int64(len(text)), text, nil},
		{"plain one over", text, int64(len(text)) - 1, nil, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecompressLimit(tc.in, tc.limit)
			if tc.kind != nil {
				e := wantErr(t, err, tc.kind, "", -1)
				if errors.Is(tc.kind, ErrTooLarge) && (e.Offset != tc.limit || !strings.Contains(err.Error(), strconv.FormatInt(tc.limit, 10))) {
					t.Errorf("error %q does not name the limit %d", err, tc.limit)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}

	t.Run("bomb", func(t *testing.T) {
		const inflated, limit = 256 << 20, 4 << 20
		bomb := gzBomb(t, inflated)
		var err error
		n := allocated(func() { _, err = DecompressLimit(bomb, limit) })
		_ = wantErr(t, err, ErrTooLarge, "", limit)
		if n > 4*limit {
			t.Errorf("decompressing a %d-byte bomb (%d inflated) with a limit of %d allocated %d bytes", len(bomb), inflated, limit, n)
		}
		t.Logf("a %d-byte bomb of %d MiB, limit %d MiB: %d KiB allocated", len(bomb), inflated>>20, limit>>20, n>>10)
	})

	t.Run("an exact hint allocates once", func(t *testing.T) {
		var err error
		n := allocated(func() { _, err = DecompressLimit(one, 1<<30) })
		if err != nil {
			t.Fatal(err)
		}
		if n > uint64(len(text))+128<<10 { // the buffer, plus the gzip reader's window and tables
			t.Errorf("allocated %d bytes for %d tar bytes: the buffer grew", n, len(text))
		}
	})
}

// A one-member bomb whose trailer tells its size truthfully, over the
// limit, is refused without allocating a buffer for it.
func TestDecompressLimitTruthfulBomb(t *testing.T) {
	const inflated, limit = 32 << 20, 1 << 20
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, inflated)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	n := allocated(func() { _, err = DecompressLimit(buf.Bytes(), limit) })
	_ = wantErr(t, err, ErrTooLarge, "", limit)
	if n > limit/2 {
		t.Errorf("refusing a %d MiB bomb allocated %d bytes", inflated>>20, n)
	}
}
