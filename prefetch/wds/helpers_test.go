package wds

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// entry is one tar member to write in a test.
type entry struct {
	name string
	typ  byte   // tar.TypeReg when zero
	body string // contents of a regular member
	link string // target of a link
	pax  map[string]string
}

// file is a regular member.
func file(name, body string) entry { return entry{name: name, typ: tar.TypeReg, body: body} }

// wantField is a field the index must hold, with the bytes it must slice.
type wantField struct{ name, body string }

// wantSample is a sample the index must hold.
type wantSample struct {
	key    string
	fields []wantField
}

// makeTar writes entries with archive/tar in format.
func makeTar(t testing.TB, format tar.Format, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, ModTime: mtime, Format: format, PAXRecords: e.pax}
		if typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: typ, Name: e.name, PAXRecords: e.pax, Format: format}
		}
		if typ == tar.TypeReg || typ == tar.TypeCont {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing header of %q in %v: %v", e.name, format, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("writing %q: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkSamples compares an index with what it must hold: keys, field names
// and their order, and every field's bytes as sliced from tarBytes.
func checkSamples(t testing.TB, tarBytes []byte, got []Sample, want []wantSample) {
	t.Helper()
	if err := Validate(got, int64(len(tarBytes))); err != nil {
		t.Fatalf("index out of bounds: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d:\n got  %s\n want %s", len(got), len(want), describe(got), describeWant(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Key != w.key || len(g.Fields) != len(w.fields) {
			t.Fatalf("sample %d: got %s, want %s", i, describe(got[i:i+1]), describeWant(want[i:i+1]))
		}
		for j, wf := range w.fields {
			gf := g.Fields[j]
			if gf.Name != wf.name {
				t.Errorf("sample %q field %d: name %q, want %q", w.key, j, gf.Name, wf.name)
			}
			data, err := FieldData(tarBytes, gf)
			if err != nil {
				t.Fatalf("sample %q field %q: %v", w.key, gf.Name, err)
			}
			if string(data) != wf.body {
				t.Errorf("sample %q field %q: %d bytes %.40q, want %d bytes %.40q", w.key, gf.Name, len(data), data, len(wf.body), wf.body)
			}
		}
	}
}

func describe(samples []Sample) string {
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "%q{", s.Key)
		for _, f := range s.Fields {
			fmt.Fprintf(&b, " %q@%d+%d", f.Name, f.Offset, f.Size)
		}
		b.WriteString(" } ")
	}
	return b.String()
}

func describeWant(samples []wantSample) string {
	var b strings.Builder
	for _, s := range samples {
		fmt.Fprintf(&b, "%q{", s.key)
		for _, f := range s.fields {
			fmt.Fprintf(&b, " %q+%d", f.name, len(f.body))
		}
		b.WriteString(" } ")
	}
	return b.String()
}

// body returns n pseudo-random bytes, the same for the same seed.
func body(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// wantErr checks that err is an *Error of kind, naming member (when not
// empty) at offset (when not negative), and returns it.
func wantErr(t testing.TB, err error, kind error, member string, offset int64) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, kind) {
		t.Fatalf("got error %v, want a %v *Error", err, kind)
	}
	if member != "" && e.Member != member {
		t.Errorf("error %q names member %q, want %q", err, e.Member, member)
	}
	if offset >= 0 && e.Offset != offset {
		t.Errorf("error %q at offset %d, want %d", err, e.Offset, offset)
	}
	return e
}
