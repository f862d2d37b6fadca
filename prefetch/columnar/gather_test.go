package columnar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// selections returns row selections over units of the given sizes: empty,
// single rows, whole units in order, runs, shuffled batches of several
// sizes, one unit's rows reversed, and rows repeated.
func selections(sizes []int64, seed uint64) map[string][]Row {
	r := rand.New(rand.NewPCG(seed, 1))
	var all []Row
	for u, n := range sizes {
		for i := range int32(n) {
			all = append(all, Row{Unit: int32(u), Row: i})
		}
	}
	last := len(sizes) - 1
	out := map[string][]Row{
		"empty":      {},
		"first row":  all[:1],
		"last row":   all[len(all)-1:],
		"file order": all,
		"one unit":   append([]Row(nil), all[:sizes[0]]...),
		"repeated":   {all[0], all[0], all[len(all)-1], all[0]},
	}
	rev := slices.Clone(out["one unit"])
	slices.Reverse(rev)
	out["one unit reversed"] = rev
	// Runs: a few consecutive rows of a random unit at a time.
	var runs []Row
	for len(runs) < 300 {
		u := r.IntN(len(sizes))
		lo := r.Int64N(sizes[u])
		for i := lo; i < min(sizes[u], lo+1+r.Int64N(8)); i++ {
			runs = append(runs, Row{Unit: int32(u), Row: int32(i)})
		}
	}
	out["runs"] = runs
	perm := slices.Clone(all)
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	for _, n := range []int{1, 2, 7, 64, 256, 1024} {
		out[fmt.Sprintf("shuffled %d", n)] = perm[:min(n, len(perm))]
	}
	out[fmt.Sprintf("single row of unit %d", last)] = []Row{{Unit: int32(last), Row: int32(sizes[last] - 1)}}
	return out
}

// checkGather fails unless Gather and the take path give equal, valid
// batches for every selection, and the batch survives an IPC round trip.
func checkGather(t *testing.T, s *arrow.Schema, recs []arrow.RecordBatch, seed uint64) {
	t.Helper()
	ctx := context.Background()
	units := map[int32]arrow.RecordBatch{}
	var sizes []int64
	for u, r := range recs {
		units[int32(u)] = r
		sizes = append(sizes, r.NumRows())
	}
	for name, rows := range selections(sizes, seed) {
		got, err := Gather(ctx, s, units, rows)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := gatherTake(ctx, s, units, rows)
		if err != nil {
			t.Fatalf("%s: take path: %v", name, err)
		}
		if got.NumRows() != int64(len(rows)) {
			t.Fatalf("%s: %d rows, want %d", name, got.NumRows(), len(rows))
		}
		if err := array.ValidateRecordFull(got); err != nil {
			t.Fatalf("%s: invalid batch: %v", name, err)
		}
		if !recordsEqual(got, want) {
			for i := range got.Columns() {
				if !array.ApproxEqual(got.Column(i), want.Column(i), sameFloats...) {
					t.Fatalf("%s: column %q differs:\ngot  %.400v\nwant %.400v", name, s.Field(i).Name, got.Column(i), want.Column(i))
				}
			}
			t.Fatalf("%s: batches differ", name)
		}
		back := ipcRoundTrip(t, got)
		if !recordsEqual(back, want) {
			t.Fatalf("%s: the batch read back from IPC differs", name)
		}
		back.Release()
		got.Release()
		want.Release()
	}
}

// sameFloats compares floats bit for bit but for NaNs, which are equal.
var sameFloats = []array.EqualOption{array.WithNaNsEqual(true), array.WithAbsTolerance(0)}

// recordsEqual is array.RecordEqual with NaNs equal.
func recordsEqual(a, b arrow.RecordBatch) bool {
	return array.RecordApproxEqual(a, b, sameFloats...)
}

func ipcRoundTrip(t *testing.T, rec arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Next() {
		t.Fatalf("no batch read back: %v", r.Err())
	}
	out := r.RecordBatch()
	out.Retain()
	return out
}

// copied fails unless every column of recs takes the copy path, except the
// named ones.
func copied(t *testing.T, s *arrow.Schema, recs []arrow.RecordBatch, except ...string) {
	t.Helper()
	spans := []span{{src: 0, off: 0, n: 1}}
	if len(recs) > 1 {
		spans = append(spans, span{src: 1, off: 0, n: 1})
	}
	for i, f := range s.Fields() {
		c, err := copyColumn(memory.DefaultAllocator, f.Type, recs, i, spans, len(spans))
		switch {
		case slices.Contains(except, f.Name):
			if !errors.Is(err, errNoCopy) {
				t.Fatalf("column %q (%s) took the copy path (err %v), want the take path", f.Name, f.Type, err)
			}
		case err != nil:
			t.Fatalf("column %q (%s): %v", f.Name, f.Type, err)
		default:
			c.Release()
		}
	}
}

// The copy path gives what the take path gives, on every pyarrow fixture
// (nulls, strings, binary, lists of strings, fixed-size lists, structs of
// lists, maps, dictionaries, timestamps, dates, decimals), all columns,
// sliced and projected.
func TestGatherFixtures(t *testing.T) {
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			_, recs := decodeAll(t, formatOf(name), data, nil)
			s := recs[0].Schema()
			copied(t, s, recs)
			checkGather(t, s, recs, 1)
			checkGather(t, s, sliced(recs), 2)
			cols := []string{"m", "nested", "dec", "cat", "tags", "s", "flag"}
			_, recs = decodeAll(t, formatOf(name), data, cols)
			checkGather(t, recs[0].Schema(), recs, 3)
		})
	}
}

// Units of the synthetic schema, decoded from Parquet and as written
// (Arrow IPC), and sliced so that arrays have offsets.
func TestGatherSynthetic(t *testing.T) {
	recs := syntheticRecs(300, 1, 77, 512)
	t.Run("built", func(t *testing.T) {
		copied(t, SyntheticSchema, recs)
		checkGather(t, SyntheticSchema, recs, 3)
	})
	t.Run("parquet", func(t *testing.T) { checkGather(t, SyntheticSchema, syntheticUnits(t, 3, 500), 4) })
	t.Run("sliced", func(t *testing.T) { checkGather(t, SyntheticSchema, sliced(recs), 5) })
}

// sliced returns slices of recs (most of them with an offset), so that
// their arrays, and their children, have offsets.
func sliced(recs []arrow.RecordBatch) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	for i, r := range recs {
		n := r.NumRows()
		lo, hi := int64(i%2)*min(3, n/2), n-int64(i%3)*(n/4)
		out = append(out, r.NewSlice(lo, hi))
	}
	return out
}

// Types the fixtures lack: large offsets, bools and fixed-size binary with
// offsets, nested lists, a null column, dictionaries that differ between
// units, and an extension type (on the take path).
func TestGatherTypes(t *testing.T) {
	s := arrow.NewSchema([]arrow.Field{
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "lb", Type: arrow.BinaryTypes.LargeBinary, Nullable: true},
		{Name: "ll", Type: arrow.LargeListOf(arrow.ListOf(arrow.PrimitiveTypes.Int16)), Nullable: true},
		{Name: "bool", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "fsb", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}, Nullable: true},
		{Name: "null", Type: arrow.Null, Nullable: true},
		{Name: "dict", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "uuid", Type: extensions.NewUUIDType(), Nullable: true},
	}, nil)
	r := rand.New(rand.NewPCG(6, 6))
	unit := func(n int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, s)
		defer b.Release()
		ls := b.Field(0).(*array.LargeStringBuilder)
		lb := b.Field(1).(*array.BinaryBuilder)
		ll := b.Field(2).(*array.LargeListBuilder)
		lli := ll.ValueBuilder().(*array.ListBuilder)
		llv := lli.ValueBuilder().(*array.Int16Builder)
		bl := b.Field(3).(*array.BooleanBuilder)
		fsb := b.Field(4).(*array.FixedSizeBinaryBuilder)
		nb := b.Field(5).(*array.NullBuilder)
		db := b.Field(6).(*array.BinaryDictionaryBuilder)
		ub := b.Field(7).(*extensions.UUIDBuilder)
		for range n {
			null := r.IntN(5) == 0
			word := fmt.Sprintf("w%d", r.IntN(40))
			if null {
				ls.AppendNull()
				lb.AppendNull()
				ll.AppendNull()
				bl.AppendNull()
				fsb.AppendNull()
				db.AppendNull()
				ub.AppendNull()
			} else {
				ls.Append(word)
				lb.Append([]byte(word)[:r.IntN(len(word))])
				ll.Append(true)
				for range r.IntN(3) {
					lli.Append(true)
					for range r.IntN(4) {
						llv.Append(int16(r.IntN(100)))
					}
				}
				bl.Append(r.IntN(2) == 0)
				fsb.Append([]byte{byte(r.IntN(256)), 1, 2})
				if err := db.AppendString(word[:2]); err != nil {
					t.Fatal(err)
				}
				ub.AppendBytes([16]byte{byte(r.IntN(256)), 15: 1})
			}
			nb.AppendNull()
		}
		return b.NewRecordBatch()
	}
	var recs []arrow.RecordBatch
	for _, n := range []int{90, 1, 33, 64} {
		u := unit(n)
		recs = append(recs, u.NewSlice(0, u.NumRows()), u.NewSlice(int64(n/3), int64(n)))
	}
	copied(t, s, recs, "uuid")     // extensions take the take path
	checkGather(t, s, recs, 7)     // the units' dictionaries differ
	checkGather(t, s, recs[:2], 8) // slices of one unit share theirs
}

func TestGatherErrors(t *testing.T) {
	recs := syntheticRecs(5, 7)
	units := map[int32]arrow.RecordBatch{1: recs[0], 2: recs[1]}
	for _, rows := range [][]Row{{{1, 0}, {3, 0}}, {{2, 7}}, {{1, -1}}} {
		if out, err := Gather(context.Background(), SyntheticSchema, units, rows); err == nil {
			out.Release()
			t.Fatalf("%v: no error", rows)
		}
	}
}
